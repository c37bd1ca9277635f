"""The spool directory on disk: the lock, the checkpoint and the segment files.

One directory per process (held with ``flock``)::

    lock                          the flock; holds the owner's pid
    checkpoint                    {"segment": N, "offset": M}: everything before is stored
    00000000000000000042.seg      sealed segments (earlier, or left by a previous run)
    00000000000000000043.seg      the active segment: appended to by this process only

These helpers take and release the lock, read and atomically replace the
checkpoint, name, list, create, read, sync and delete segment files, and clear
out what a previous run left; the bookkeeping that ties them together lives in
:class:`sidecar.logqueue.spool.Spool`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from sidecar.errors import SidecarError
from sidecar.logqueue.framing import ScanResult, scan_frames

logger = logging.getLogger("sidecar.spool")

FsyncPolicy: TypeAlias = Literal["always", "interval", "never"]

SEGMENT_SUFFIX = ".seg"
CHECKPOINT_NAME = "checkpoint"
LOCK_NAME = "lock"


@dataclass(frozen=True, slots=True, order=True)
class SpoolPosition:
    """A place in the spool: a segment number and a byte offset inside it."""

    segment: int
    offset: int


class SpoolLocked(SidecarError):
    """Another process (or another Spool in this one) already uses the spool directory."""


@dataclass(frozen=True, slots=True)
class Recovery:
    """The spool directory once recovered: what is left to read, and this run's active segment."""

    resume: SpoolPosition  # where reading starts: the checkpoint, or the oldest segment
    sizes: dict[int, int]  # sealed segment -> size, for each one that may hold unstored records
    active_segment: int  # numbered after every segment seen
    active_fd: int  # from create_segment()


# -- the lock ------------------------------------------------------------------


def take_lock(directory: Path) -> int:
    """Hold ``directory``'s lock file (flock) and write our pid in it; the fd keeps the lock."""
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise SpoolLocked(
            f"spool directory {directory} is already in use by {_describe_process(holder)} "
            f"(it holds {path}); stop that process, or give each sidecar its own spool.dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _describe_process(pid: str) -> str:
    """``process 123 (sidecar serve --config x.yaml)``, as far as /proc tells."""
    if not pid.isdigit():
        return "another process"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()[:200].split(b"\0")
    except OSError:
        return f"process {pid}"
    command = " ".join(part.decode(errors="replace") for part in argv if part)
    return f"process {pid} ({command})" if command else f"process {pid}"


def release_lock(dir_fd: int, lock_fd: int) -> None:
    """Close the directory fd and the lock fd (which releases the flock); -1 means not open."""
    for fd in (dir_fd, lock_fd):
        if fd >= 0:
            os.close(fd)


# -- the checkpoint ------------------------------------------------------------


def read_checkpoint(directory: Path) -> SpoolPosition | None:
    """The stored checkpoint; None when there is none or it cannot be trusted (logged)."""
    path = directory / CHECKPOINT_NAME
    try:
        data = json.loads(path.read_bytes())
        segment, offset = data["segment"], data["offset"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        logger.warning("spool %s: unreadable checkpoint (%s); replaying it all", path, exc)
        return None
    if not (isinstance(segment, int) and isinstance(offset, int)) or min(segment, offset) < 0:
        logger.warning("spool %s: invalid checkpoint %r; replaying it all", path, data)
        return None
    return SpoolPosition(segment, offset)


def write_checkpoint(
    directory: Path, dir_fd: int, position: SpoolPosition, fsync: FsyncPolicy
) -> None:
    """Replace the checkpoint atomically (temp file + rename); fsync both unless fsync="never"."""
    data = json.dumps({"segment": position.segment, "offset": position.offset}).encode()
    path = directory / CHECKPOINT_NAME
    tmp = directory / f"{CHECKPOINT_NAME}.tmp"
    durable = fsync != "never"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data + b"\n")
        if durable:
            os.fsync(fd)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()  # a full disk: leave nothing half-written behind
        raise
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        os.fsync(dir_fd)


# -- segment files -------------------------------------------------------------


def segment_name(segment: int) -> str:
    return f"{segment:020d}{SEGMENT_SUFFIX}"


def segment_path(directory: Path, segment: int) -> Path:
    return directory / segment_name(segment)


def list_segments(directory: Path) -> list[int]:
    """The numbers of the segment files in ``directory``, in order."""
    segments = []
    for path in directory.glob(f"*{SEGMENT_SUFFIX}"):
        stem = path.name.removesuffix(SEGMENT_SUFFIX)
        if stem.isdigit():
            segments.append(int(stem))
    return sorted(segments)


def create_segment(directory: Path, segment: int, fsync: FsyncPolicy) -> int:
    """A new, empty segment file, opened write-only for appending (O_DSYNC if fsync="always")."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
    if fsync == "always":
        flags |= os.O_DSYNC
    return os.open(segment_path(directory, segment), flags, 0o644)


class TornFrame(OSError):
    """A write failed mid-frame and the file could not be cut back: ``written`` bytes remain."""

    def __init__(self, cause: OSError, written: int) -> None:
        super().__init__(cause.errno, f"{cause.strerror}; {written} bytes of the record remain")
        self.written = written


def append_frame(fd: int, frame: bytes, size: int) -> None:
    """Append ``frame`` whole to a file of ``size`` bytes, or raise with the file as it was.

    A short write (the disk filled up mid-frame) is cut off again with ftruncate,
    so no torn frame is left for a reader; if that fails too, :class:`TornFrame`.
    """
    written = 0
    try:
        written = os.write(fd, frame)
        while written < len(frame):
            more = os.write(fd, memoryview(frame)[written:])
            if more == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written += more
    except OSError as exc:
        if not written:
            raise
        try:
            os.ftruncate(fd, size)
        except OSError:
            raise TornFrame(exc, written) from exc
        raise


def unlink_segment(directory: Path, segment: int) -> None:
    """Delete a segment file; a missing one is fine, a failure is logged."""
    try:
        segment_path(directory, segment).unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("spool %s: could not delete segment %d: %s", directory, segment, exc)


def fsync_each(directory: Path, fds: list[int]) -> bool:
    """Fsync each fd (a failure is logged); True when every fsync succeeded."""
    synced = True
    for fd in fds:
        try:
            os.fsync(fd)
        except OSError as exc:
            synced = False
            logger.error("spool %s: fsync failed: %s", directory, exc)
    return synced


def fsync_and_close(directory: Path, fds: list[int]) -> bool:
    """:func:`fsync_each`, then close each fd."""
    try:
        return fsync_each(directory, fds)
    finally:
        for fd in fds:
            os.close(fd)


# -- reading -------------------------------------------------------------------


class SegmentReader:
    """Reads frames out of segment files through a read-only map of one at a time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._segment: int | None = None
        self._fd = -1
        self._map: mmap.mmap | None = None

    def view(self, segment: int, end: int) -> mmap.mmap | None:
        """A read-only map of at least ``end`` bytes of ``segment`` (None if it is gone)."""
        if self._segment != segment:
            self.close()
            try:
                self._fd = os.open(segment_path(self.directory, segment), os.O_RDONLY)
            except FileNotFoundError:
                logger.error("spool %s: segment %d vanished", self.directory, segment)
                return None
            self._segment = segment
        if self._map is None or len(self._map) < end:
            if self._map is not None:
                self._map.close()
                self._map = None
            try:
                self._map = mmap.mmap(self._fd, end, access=mmap.ACCESS_READ)
            except (OSError, ValueError) as exc:
                logger.error("spool %s: cannot read segment %d: %s", self.directory, segment, exc)
                return None
        return self._map

    def scan(
        self,
        segment: int,
        start: int,
        end: int,
        *,
        max_records: int,
        max_bytes: int,
        at_end: bool,
        at_least_one: bool,
    ) -> ScanResult | None:
        """:func:`scan_frames` over ``segment`` (None if it cannot be read); damage is logged."""
        view = self.view(segment, end)
        if view is None:
            return None
        scan = scan_frames(
            view,
            start,
            end,
            max_records=max_records,
            max_bytes=max_bytes,
            at_end=at_end,
            at_least_one=at_least_one,
        )
        for damage in scan.skipped:
            logger.warning(
                "spool %s: skipped %d damaged bytes at offset %d (a torn or corrupt record)",
                segment_path(self.directory, segment),
                damage.length,
                damage.offset,
            )
        return scan

    def release(self, segment: int) -> None:
        """Let go of ``segment`` if it is the one held open (so deleting it frees its space)."""
        if self._segment == segment:
            self.close()

    @property
    def segment(self) -> int | None:
        """The segment held open, if any."""
        return self._segment

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._segment = None


# -- recovery ------------------------------------------------------------------


def recover_directory(directory: Path, dir_fd: int, fsync: FsyncPolicy) -> Recovery:
    """Clear out what a previous run left and create this run's active segment.

    Deletes a half-written checkpoint, the segments the checkpoint covers and
    empty ones. ``resume`` may sit at the end of its segment, or past it when the
    segment lost data in a power failure (logged): the caller moves on to the next.
    """
    with contextlib.suppress(FileNotFoundError):
        (directory / f"{CHECKPOINT_NAME}.tmp").unlink()
    checkpoint = read_checkpoint(directory)
    found = list_segments(directory)
    floor = checkpoint.segment if checkpoint is not None else 0
    sizes: dict[int, int] = {}
    for segment in found:
        size = segment_path(directory, segment).stat().st_size
        if segment < floor or size == 0:
            unlink_segment(directory, segment)  # stored already, or nothing in it
        else:
            sizes[segment] = size
    active_segment = max([*found, floor]) + 1
    active_fd = create_segment(directory, active_segment, fsync)
    resume = SpoolPosition(min([*sizes, active_segment]), 0)
    if checkpoint is not None and checkpoint.segment in sizes:
        resume = checkpoint
        if checkpoint.offset > sizes[checkpoint.segment]:
            logger.warning(
                "spool %s: the checkpoint %s is past the end of its segment "
                "(data lost in a power failure?); resuming at the next segment",
                directory,
                checkpoint,
            )
    if fsync != "never":
        try:
            os.fsync(dir_fd)
        except BaseException:
            os.close(active_fd)
            raise
    return Recovery(resume, sizes, active_segment, active_fd)
