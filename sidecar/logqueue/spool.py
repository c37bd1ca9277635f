"""The durable local spool: framed records in segment files, and a checkpoint.

The proxy appends one record per request (:meth:`Spool.append`: one
``os.write`` of a pre-built frame to an ``O_APPEND`` file descriptor); the
writer reads batches (:meth:`Spool.read_batch`), stores them, then moves the
checkpoint past them (:meth:`Spool.commit`). Nothing waits on the database.

On disk, one directory per process holds a lock, a checkpoint and numbered
segment files (see :mod:`sidecar.logqueue.segments`). Every run starts a new
active segment, so a torn frame left by a crash always sits at the end of a
sealed segment, where the reader skips it. Records after the checkpoint are
replayed after a restart (at least once across crashes; the store's inserts
are idempotent), and within one process each record is returned once unless
:meth:`Spool.rewind` is called.

A record the disk refuses (full, or failing) is dropped whole and counted by
reason (:mod:`sidecar.logqueue.spoolhealth`): a partly written frame is cut off
again, no segment file is made per drop, and appending resumes by itself once
the writer's checkpoint frees space. Segments the checkpoint has moved past are
closed and deleted at once, so their space returns.

Threads: ``append``, ``read_batch`` and ``rewind`` belong to the owning thread
(the event loop); ``sync`` and ``commit`` may run in a worker thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from sidecar.logqueue import segments
from sidecar.logqueue.framing import encode_frame
from sidecar.logqueue.segments import (
    CHECKPOINT_NAME,
    LOCK_NAME,
    SEGMENT_SUFFIX,
    FsyncPolicy,
    SpoolLocked,
    SpoolPosition,
    segment_name,
)
from sidecar.logqueue.spoolhealth import DropLog, DropReason, drop_reason
from sidecar.logqueue.spoolreader import DEFAULT_BATCH_BYTES, SpoolBatch, SpoolReading

__all__ = [
    "CHECKPOINT_NAME",
    "DEFAULT_BATCH_BYTES",
    "LOCK_NAME",
    "SEGMENT_SUFFIX",
    "FsyncPolicy",
    "Spool",
    "SpoolBatch",
    "SpoolLocked",
    "SpoolPosition",
    "segment_name",
]

logger = logging.getLogger("sidecar.spool")

_MAX_UNSYNCED_SEGMENTS = 8  # sealed segments awaiting sync() before one is synced inline


class Spool(SpoolReading):
    """Segment files plus a checkpoint; see :mod:`sidecar.logqueue.segments` for the layout.

    This module holds the lifecycle and the append side (appends, rotation, sync); the writer's
    side (read_batch, commit, rewind) is :class:`~sidecar.logqueue.spoolreader.SpoolReading`.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int,
        segment_bytes: int,
        fsync: FsyncPolicy = "interval",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes <= 0 or segment_bytes <= 0:
            raise ValueError("max_bytes and segment_bytes must be positive")
        if fsync not in ("always", "interval", "never"):
            raise ValueError(f"fsync must be always, interval or never, not {fsync!r}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._mutex = threading.Lock()  # guards segment tables and fds shared with sync/commit
        self._fd = -1  # the active segment, write-only, O_APPEND
        self._dir_fd = -1
        self._lock_fd = -1
        self._active_id = 0
        self._active_size = 0
        self._sizes: dict[int, int] = {}  # sealed segment -> size
        self._starts: dict[int, int] = {}  # segment (sealed and active) -> absolute start
        self._written = 0  # absolute end of the data: start of the active segment + its size
        self._committed = SpoolPosition(0, 0)
        self._committed_abs = 0
        self._cursor = SpoolPosition(0, 0)
        self._read_high = SpoolPosition(0, 0)  # furthest position ever read
        self._last_record_end = SpoolPosition(0, 0)  # just after the last record returned
        self._reader = segments.SegmentReader(self.directory)
        self._unsynced: dict[int, int] = {}  # sealed segment -> its fd, not yet fsynced
        self._dir_dirty = False
        self._needs_rotate = False
        self._disk_failing = False  # the last append failed with an error from the disk
        self._torn: set[SpoolPosition] = set()  # frames cut short that could not be cut off
        self._drops = DropLog(self.directory, clock)
        self._corrupt = 0

    # -- lifecycle ---------------------------------------------------------

    def open(self) -> None:
        """Lock the directory, recover what a previous run left, start a new active segment."""
        if self._fd >= 0:
            raise RuntimeError(f"spool {self.directory} is already open")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = segments.take_lock(self.directory)
        try:
            self._dir_fd = os.open(self.directory, os.O_RDONLY)
            self._recover()
        except BaseException:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self._release_fds()
            raise

    def close(self) -> None:
        """Sync (unless fsync="never") and release the files and the lock. Idempotent."""
        if self._fd < 0:
            return
        self._close_reader()
        with self._mutex:
            fd, self._fd = self._fd, -1
            sealed, self._unsynced = self._unsynced, {}
        fds = [*sealed.values(), fd]
        if self.fsync != "never":
            fds.append(self._dir_fd)
            self._dir_fd = -1
        segments.fsync_and_close(self.directory, fds)
        self._release_fds()

    def __enter__(self) -> Spool:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the request path ----------------------------------------------------

    def append(self, payload: bytes) -> bool:
        """Append one record; False when it was dropped (see :attr:`last_drop_reason`)."""
        self._require_open()
        frame = encode_frame(payload)
        if self._written - self._committed_abs + len(frame) > self.max_bytes:
            cause = f"{self.pending_bytes} bytes wait for the database, spool.max_bytes is "
            self._drops.dropped("spool_full", f"{cause}{self.max_bytes}")
            return False
        try:
            if self._must_rotate(len(frame)):
                self._rotate()
            self._write(frame)
        except OSError as exc:
            self._disk_failing = True
            self._drops.dropped(drop_reason(exc), str(exc))
            return False
        self._disk_failing = False
        self._drops.appended()
        return True

    def sync(self) -> bool:
        """Flush appended records to disk (run it every fsync interval, off the loop if you like).

        True when every fsync succeeded (a failure is logged). Out of descriptors,
        it syncs the files in place instead of raising.
        """
        with self._mutex:
            if self._fd < 0:
                return True
            fds = list(self._unsynced.values())
            self._unsynced = {}
            in_place = [self._fd, self._dir_fd] if self._dir_dirty else [self._fd]
            self._dir_dirty = False
            try:
                for fd in in_place:
                    fds.append(os.dup(fd))
            except OSError:  # no descriptor to spare (EMFILE): fsync while holding the mutex
                synced = segments.fsync_each(self.directory, in_place)
                return segments.fsync_and_close(self.directory, fds) and synced
        return segments.fsync_and_close(self.directory, fds)

    # -- gauges --------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        """Bytes on disk not yet committed (read or not)."""
        return self._written - self._committed_abs

    @property
    def lost_records(self) -> int:
        """Records dropped by append() (spool full, or the disk refused the write)."""
        return self._drops.total

    @property
    def last_drop_reason(self) -> DropReason | None:
        """Why append() last dropped a record: spool_full, disk_full or io_error."""
        return self._drops.last_reason

    def health(self) -> str:
        """``ok``; or ``degraded: dropping records (...)`` a while after a drop; or nearly full."""
        if (dropping := self._drops.dropping()) is not None:
            return f"degraded: {dropping}"
        if self.pending_bytes >= self.max_bytes * 0.9:
            return f"nearly full ({self.pending_bytes} bytes)"
        return "ok"

    # -- internals -------------------------------------------------------------

    def _release_fds(self) -> None:
        dir_fd, lock_fd = self._dir_fd, self._lock_fd
        self._dir_fd = self._lock_fd = -1
        segments.release_lock(dir_fd, lock_fd)

    def _recover(self) -> None:
        recovery = segments.recover_directory(self.directory, self._dir_fd, self.fsync)
        self._active_id, self._fd = recovery.active_segment, recovery.active_fd
        self._active_size = 0
        start = 0
        for segment, size in sorted(recovery.sizes.items()):
            self._starts[segment] = start
            start += size
        self._starts[self._active_id] = start
        self._sizes = recovery.sizes
        self._written = start
        committed = self._skip_finished(recovery.resume)
        self._committed = self._cursor = self._read_high = self._last_record_end = committed
        self._committed_abs = self._starts[committed.segment] + committed.offset
        if self.pending_bytes:
            logger.info(
                "spool %s: replaying %d bytes left by a previous run, from %s",
                self.directory,
                self.pending_bytes,
                committed,
            )

    def _must_rotate(self, size: int) -> bool:
        if self._needs_rotate:
            return True
        if not self._active_size:
            return False
        if self._active_size + size > self.segment_bytes:
            return True
        # The disk refused the last append and all of this segment is stored: start a new one
        # so this one is deleted and its space is there for the record.
        return self._disk_failing and self._committed_abs == self._written

    def _free_stored_segment(self) -> None:
        """While the disk refuses appends, give back the active segment once all of it is stored."""
        if self._disk_failing and self._active_size and self._committed_abs == self._written:
            try:
                self._rotate()
            except OSError as exc:
                logger.debug("spool %s: cannot start a new segment yet: %s", self.directory, exc)

    def _write(self, frame: bytes) -> None:
        """Append ``frame`` whole, or raise with the active segment as it was (or sealed away)."""
        try:
            segments.append_frame(self._fd, frame, self._active_size)
        except segments.TornFrame as exc:
            # Sealed, the torn frame is skipped by the reader; it is not counted as
            # corrupt there, since append() counts it as dropped.
            logger.warning("spool %s: cannot cut off a torn record: %s", self.directory, exc)
            self._torn.add(SpoolPosition(self._active_id, self._active_size))
            self._active_size += exc.written
            self._written += exc.written
            self._needs_rotate = True
            raise
        self._active_size += len(frame)
        self._written += len(frame)

    def _rotate(self) -> None:
        new_id = self._active_id + 1
        old_fd, old_id = self._fd, self._active_id
        size = os.fstat(old_fd).st_size  # the truth, even after a failed write
        fd = segments.create_segment(self.directory, new_id, self.fsync)
        to_sync = -1
        with self._mutex:
            end = self._starts[old_id] + size
            self._sizes[old_id] = size
            self._starts[new_id] = self._written = end
            self._active_id, self._fd, self._active_size = new_id, fd, 0
            self._needs_rotate = False
            stored = self._committed_abs >= end
            if stored:  # nothing in it to read again: delete it now, not at the next commit
                del self._sizes[old_id], self._starts[old_id]
                self._committed = SpoolPosition(new_id, 0)
            elif self.fsync == "interval":
                self._unsynced[old_id] = old_fd
                if len(self._unsynced) > _MAX_UNSYNCED_SEGMENTS:
                    to_sync = self._unsynced.pop(min(self._unsynced))
            if self.fsync == "interval":
                self._dir_dirty = True
        if stored:
            self._reader.release(old_id)
            os.close(old_fd)
            segments.unlink_segment(self.directory, old_id)
        elif self.fsync != "interval":
            os.close(old_fd)  # "always": written with O_DSYNC
        if self.fsync == "always":
            os.fsync(self._dir_fd)
        if to_sync >= 0:  # nobody calls sync(): do it here rather than pile up fds
            segments.fsync_and_close(self.directory, [to_sync])

    def _close_reader(self) -> None:
        self._reader.close()
