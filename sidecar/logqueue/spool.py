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

Threads: ``append``, ``read_batch`` and ``rewind`` belong to the owning thread
(the event loop); ``sync`` and ``commit`` may run in a worker thread.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
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

DEFAULT_BATCH_BYTES = 8 * 1024 * 1024
_MAX_UNSYNCED_SEGMENTS = 8  # sealed segments awaiting sync() before one is synced inline


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    """Records read in order; ``end`` is where the next read starts (commit it once stored)."""

    records: list[bytes]
    end: SpoolPosition


class Spool:
    """Segment files plus a checkpoint; see :mod:`sidecar.logqueue.segments` for the layout."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int,
        segment_bytes: int,
        fsync: FsyncPolicy = "interval",
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
        self._unsynced: list[int] = []  # fds of sealed segments not yet fsynced
        self._dir_dirty = False
        self._needs_rotate = False
        self._write_failing = False
        self._lost = 0
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
            sealed, self._unsynced = self._unsynced, []
        fds = [*sealed, fd]
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
        """Append one record; False when it was dropped (spool full or disk error), counted."""
        frame = encode_frame(payload)
        size = len(frame)
        if self._fd < 0:
            raise RuntimeError(f"spool {self.directory} is not open")
        if self._written - self._committed_abs + size > self.max_bytes:
            self._lost += 1
            return False
        if (self._active_size and self._active_size + size > self.segment_bytes) or (
            self._needs_rotate
        ):
            try:
                self._rotate()
            except OSError as exc:
                self._write_failed(exc)
                return False
        written = 0
        try:
            written = os.write(self._fd, frame)
            while written < size:  # a short write: the disk filled up mid-frame
                written += os.write(self._fd, frame[written:])
        except OSError as exc:
            self._active_size += written
            self._written += written
            self._needs_rotate = True  # seal the torn frame where the reader skips it
            self._write_failed(exc)
            return False
        self._active_size += size
        self._written += size
        if self._write_failing:
            self._write_failing = False
            logger.warning("spool %s: appending works again", self.directory)
        return True

    def sync(self) -> None:
        """Flush appended records to disk (run it every fsync interval, off the loop if you like)."""
        with self._mutex:
            if self._fd < 0:
                return
            fds = [*self._unsynced, os.dup(self._fd)]
            self._unsynced = []
            if self._dir_dirty:
                fds.append(os.dup(self._dir_fd))
                self._dir_dirty = False
        segments.fsync_and_close(self.directory, fds)

    # -- the writer's side -----------------------------------------------------

    def read_batch(self, max_records: int, max_bytes: int = DEFAULT_BATCH_BYTES) -> SpoolBatch:
        """Up to ``max_records`` records (``max_bytes`` of payload, at least one) after the cursor.

        Never blocks; an empty batch means nothing new. Damage is skipped and
        counted in :attr:`corrupt_records`.
        """
        self._require_open()
        if max_records < 1 or max_bytes < 1:
            raise ValueError("max_records and max_bytes must be at least 1")
        records: list[bytes] = []
        payload_bytes = 0
        cursor = max(self._cursor, self._committed)
        while len(records) < max_records:
            segment = cursor.segment
            sealed = segment != self._active_id
            end = self._sizes.get(segment) if sealed else self._active_size
            if end is None or cursor.offset >= end:
                if not sealed:
                    break
                cursor = SpoolPosition(self._segment_after(segment), 0)
                continue
            scan = self._reader.scan(
                segment,
                cursor.offset,
                end,
                max_records=max_records - len(records),
                max_bytes=max_bytes - payload_bytes,
                at_end=sealed,
                at_least_one=not records,
            )
            if scan is None:
                if not sealed:
                    break
                self._corrupt += 1  # an unreadable sealed segment: logged by the reader
                cursor = SpoolPosition(self._segment_after(segment), 0)
                continue
            records.extend(scan.records)
            payload_bytes += scan.payload_bytes
            self._corrupt += len(scan.skipped)  # each one logged by the reader
            if scan.last_record_end is not None:
                self._last_record_end = SpoolPosition(segment, scan.last_record_end)
            cursor = SpoolPosition(segment, scan.position)
            if scan.stopped != "end":
                break
        self._cursor = cursor
        self._read_high = max(self._read_high, cursor)
        if not records and self._committed < cursor and self._last_record_end <= self._committed:
            # Only damage lay between the checkpoint and the cursor: move past it for good.
            self.commit(cursor)
        return SpoolBatch(records, cursor)

    def commit(self, position: SpoolPosition) -> None:
        """Record that everything before ``position`` is stored; delete segments wholly before it."""
        self._require_open()
        with self._mutex:
            if position <= self._committed:
                return
            if position > self._read_high:
                raise ValueError(f"cannot commit {position}: not read yet ({self._read_high})")
            if position.segment not in self._starts:
                raise ValueError(f"cannot commit {position}: no such segment")
            position = self._skip_finished(position)
        try:
            segments.write_checkpoint(self.directory, self._dir_fd, position, self.fsync)
        except OSError as exc:
            # The records are stored, so moving on is safe: a crash now replays a
            # little more (idempotent inserts), and freeing segments may be what
            # lets the disk recover.
            logger.error("spool %s: could not write the checkpoint: %s", self.directory, exc)
        with self._mutex:
            self._committed = position
            self._committed_abs = self._starts[position.segment] + position.offset
            finished = [segment for segment in self._sizes if segment < position.segment]
            for segment in finished:
                del self._sizes[segment]
                del self._starts[segment]
        for segment in finished:
            segments.unlink_segment(self.directory, segment)

    def rewind(self) -> None:
        """Move the read cursor back to the checkpoint, to re-read an uncommitted batch."""
        self._cursor = self._committed

    # -- gauges --------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        """Bytes on disk not yet committed (read or not)."""
        return self._written - self._committed_abs

    @property
    def lost_records(self) -> int:
        """Records dropped by append() (spool full, or the disk refused the write)."""
        return self._lost

    @property
    def corrupt_records(self) -> int:
        """Damaged regions (torn or corrupt records) skipped by read_batch()."""
        return self._corrupt

    def has_pending(self) -> bool:
        """True while there is unread data or read records are not yet committed."""
        cursor = max(self._cursor, self._committed)
        unread = cursor < SpoolPosition(self._active_id, self._active_size)
        return unread or self._committed < self._last_record_end

    # -- internals -------------------------------------------------------------

    def _require_open(self) -> None:
        if self._fd < 0:
            raise RuntimeError(f"spool {self.directory} is not open")

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

    def _rotate(self) -> None:
        new_id = self._active_id + 1
        old_fd, old_id = self._fd, self._active_id
        size = os.fstat(old_fd).st_size  # the truth, even after a failed write
        fd = segments.create_segment(self.directory, new_id, self.fsync)
        to_sync = -1
        with self._mutex:
            self._sizes[old_id] = size
            self._starts[new_id] = self._written = self._starts[old_id] + size
            self._active_id, self._fd, self._active_size = new_id, fd, 0
            self._needs_rotate = False
            if self.fsync == "interval":
                self._unsynced.append(old_fd)
                self._dir_dirty = True
                if len(self._unsynced) > _MAX_UNSYNCED_SEGMENTS:
                    to_sync = self._unsynced.pop(0)
        if self.fsync == "always":
            os.close(old_fd)  # written with O_DSYNC
            os.fsync(self._dir_fd)
        elif self.fsync == "never":
            os.close(old_fd)
        elif to_sync >= 0:  # nobody calls sync(): do it here rather than pile up fds
            try:
                os.fsync(to_sync)
            finally:
                os.close(to_sync)

    def _write_failed(self, exc: OSError) -> None:
        self._lost += 1
        if not self._write_failing:
            self._write_failing = True
            logger.error(
                "spool %s: cannot append (%s); dropping records until the disk recovers",
                self.directory,
                exc,
            )

    def _segment_after(self, segment: int) -> int:
        with self._mutex:
            return self._segment_after_locked(segment)

    def _segment_after_locked(self, segment: int) -> int:
        later = [other for other in self._sizes if other > segment]
        return min(later) if later else self._active_id

    def _skip_finished(self, position: SpoolPosition) -> SpoolPosition:
        """The same place, moved past the end of a sealed segment it may sit at."""
        while position.offset >= self._sizes.get(position.segment, position.offset + 1):
            position = SpoolPosition(self._segment_after_locked(position.segment), 0)
        return position

    def _close_reader(self) -> None:
        self._reader.close()
