"""The writer's side of the spool: read batches after the cursor, move the checkpoint.

:class:`SpoolReading` is the half of :class:`~sidecar.logqueue.spool.Spool` the log writer
calls: :meth:`~SpoolReading.read_batch` returns records after the read cursor (skipping and
counting damage), :meth:`~SpoolReading.commit` writes the checkpoint once they are stored and
deletes the segments wholly before it, :meth:`~SpoolReading.rewind` goes back to the
checkpoint. The segment tables it walks are kept by the append side in ``spool.py``; both run
under the same mutex where ``commit`` may run in a worker thread.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sidecar.logqueue import segments
from sidecar.logqueue.framing import Skipped
from sidecar.logqueue.segments import FsyncPolicy, SpoolPosition

logger = logging.getLogger("sidecar.spool")

DEFAULT_BATCH_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    """Records read in order; ``end`` is where the next read starts (commit it once stored)."""

    records: list[bytes]
    end: SpoolPosition


class SpoolReading:
    """Reading and committing, over the state :class:`~sidecar.logqueue.spool.Spool` keeps."""

    # Set up by Spool.__init__ and kept by its append side.
    directory: Path
    fsync: FsyncPolicy
    _mutex: threading.Lock
    _fd: int
    _dir_fd: int
    _active_id: int
    _active_size: int
    _sizes: dict[int, int]
    _starts: dict[int, int]
    _unsynced: dict[int, int]
    _committed: SpoolPosition
    _committed_abs: int
    _cursor: SpoolPosition
    _read_high: SpoolPosition
    _last_record_end: SpoolPosition
    _reader: segments.SegmentReader
    _torn: set[SpoolPosition]
    _corrupt: int

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
        self._free_stored_segment()
        cursor = max(self._cursor, self._committed)
        if (held := self._reader.segment) is not None and held < cursor.segment:
            self._reader.close()  # maybe deleted by commit(): let its space go
        while len(records) < max_records:
            segment = cursor.segment
            sealed = segment != self._active_id
            end = self._sizes.get(segment) if sealed else self._active_size
            if end is None or cursor.offset >= end:
                if not sealed:
                    break
                self._reader.release(segment)
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
            self._corrupt += self._count_damage(segment, scan.skipped)  # logged by the reader
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
            if position > self._committed and position.segment in self._starts:
                self._committed = position
                self._committed_abs = self._starts[position.segment] + position.offset
            finished = [segment for segment in self._sizes if segment < self._committed.segment]
            for segment in finished:
                del self._sizes[segment]
                del self._starts[segment]
            stored = [
                self._unsynced.pop(segment) for segment in finished if segment in self._unsynced
            ]
        for fd in stored:  # in the database already: no need to fsync it
            os.close(fd)
        for segment in finished:
            segments.unlink_segment(self.directory, segment)

    def rewind(self) -> None:
        """Move the read cursor back to the checkpoint, to re-read an uncommitted batch."""
        self._cursor = self._committed

    # -- gauges --------------------------------------------------------------

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

    def _count_damage(self, segment: int, skipped: Iterable[Skipped]) -> int:
        """Damaged regions to count as corrupt: all but the torn frames append() counted."""
        count = 0
        for damage in skipped:
            torn = SpoolPosition(segment, damage.offset)
            if torn in self._torn:
                self._torn.discard(torn)
            else:
                count += 1
        return count

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

    def _free_stored_segment(self) -> None:
        """The append side's turn before a read (Spool: give back a stored active segment)."""
        raise NotImplementedError
