from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sidecar.logqueue.framing import HEADER_SIZE, encode_frame
from sidecar.logqueue.spool import FsyncPolicy, Spool, SpoolLocked, SpoolPosition
from tests.logqueue.spools import crash, drain, framed, payloads, read_all, segments

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_records_come_back_in_order_across_segments(spool: Spool, directory: Path) -> None:
    records = payloads(100)
    assert all(spool.append(record) for record in records)
    assert len(segments(directory)) > 5
    assert drain(spool) == records
    assert spool.pending_bytes == 0
    assert len(segments(directory)) == 1  # only the active one is left


def test_reopening_resumes_at_the_checkpoint_in_a_new_segment(directory: Path) -> None:
    records = payloads(50)
    with Spool(directory, max_bytes=1 << 20, segment_bytes=1000) as spool:
        for record in records:
            spool.append(record)
        batch = spool.read_batch(20)
        spool.commit(batch.end)
        spool.read_batch(10)  # read but not committed: comes back after the restart
        before = {path.name: path.stat().st_size for path in segments(directory)}
    with Spool(directory, max_bytes=1 << 20, segment_bytes=1000) as spool:
        assert spool.pending_bytes == framed(records[20:])
        assert spool.append(b"new")
        assert read_all(spool) == [*records[20:], b"new"]
        for name, size in before.items():  # segments of the previous run are never appended to
            path = directory / name
            assert not path.exists() or path.stat().st_size == size


def test_a_crash_replays_exactly_what_was_not_committed(directory: Path) -> None:
    records = payloads(40)
    spool = Spool(directory, max_bytes=1 << 20, segment_bytes=500)
    spool.open()
    for record in records:
        spool.append(record)
    spool.commit(spool.read_batch(15).end)
    spool.read_batch(5)
    crash(spool)
    with Spool(directory, max_bytes=1 << 20, segment_bytes=500) as reopened:
        assert drain(reopened) == records[15:]
    with Spool(directory, max_bytes=1 << 20, segment_bytes=500) as reopened:
        assert read_all(reopened) == []


def test_a_sigkilled_process_leaves_its_uncommitted_records_for_the_next(directory: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from sidecar.logqueue.spool import Spool
        spool = Spool({str(directory)!r}, max_bytes=1 << 20, segment_bytes=2000, fsync="never")
        spool.open()
        for index in range(200):
            spool.append(b"record %06d" % index)
        spool.commit(spool.read_batch(120).end)
        spool.read_batch(50)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    process = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, check=False
    )
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()
    with Spool(directory, max_bytes=1 << 20, segment_bytes=2000) as spool:
        assert drain(spool) == [b"record %06d" % index for index in range(120, 200)]


def test_a_full_spool_drops_and_counts_then_recovers_after_a_commit(spool: Spool) -> None:
    small = Spool(spool.directory.parent / "small", max_bytes=1000, segment_bytes=300)
    with small:
        record = b"r" * 88  # 100 bytes framed
        accepted = [small.append(record) for _ in range(13)]
        assert accepted == [True] * 10 + [False] * 3
        assert small.lost_records == 3
        assert small.pending_bytes == 1000
        small.commit(small.read_batch(4).end)
        assert small.pending_bytes == 600
        assert small.append(record)
        assert small.lost_records == 3
        assert len(drain(small)) == 7


def test_a_second_opener_is_told_which_directory_is_taken(directory: Path) -> None:
    with Spool(directory, max_bytes=1000, segment_bytes=100):
        second = Spool(directory, max_bytes=1000, segment_bytes=100)
        with pytest.raises(SpoolLocked, match=str(directory)) as raised:
            second.open()
        assert f"process {os.getpid()}" in str(raised.value)
    with Spool(directory, max_bytes=1000, segment_bytes=100):  # free again once closed
        pass


def test_pending_bytes_counts_everything_not_committed(spool: Spool) -> None:
    records = payloads(25, size=33)
    for record in records:
        spool.append(record)
    assert spool.pending_bytes == framed(records)
    batch = spool.read_batch(10)
    assert spool.pending_bytes == framed(records)  # read is not stored
    spool.commit(batch.end)
    assert spool.pending_bytes == framed(records[10:])
    spool.commit(spool.read_batch(100).end)
    assert spool.pending_bytes == 0


def test_an_unreadable_checkpoint_replays_everything(directory: Path) -> None:
    records = payloads(5)
    with Spool(directory, max_bytes=1 << 20, segment_bytes=1 << 20) as spool:
        for record in records:
            spool.append(record)
        spool.commit(spool.read_batch(2).end)
    assert json.loads((directory / "checkpoint").read_text())["offset"] == framed(records[:2])
    (directory / "checkpoint").write_text("{not json")
    with Spool(directory, max_bytes=1 << 20, segment_bytes=1 << 20) as spool:
        assert read_all(spool) == records


@pytest.mark.parametrize("fsync", ["always", "interval", "never"])
def test_every_fsync_policy_keeps_the_records(directory: Path, fsync: FsyncPolicy) -> None:
    records = payloads(30)
    with Spool(directory, max_bytes=1 << 20, segment_bytes=500, fsync=fsync) as spool:
        for record in records:
            spool.append(record)
        spool.sync()
    with Spool(directory, max_bytes=1 << 20, segment_bytes=500, fsync=fsync) as spool:
        assert drain(spool) == records


def test_sealed_segments_wait_for_sync_without_piling_up(directory: Path) -> None:
    with Spool(directory, max_bytes=1 << 20, segment_bytes=60) as spool:
        for record in payloads(40):
            spool.append(record)
        assert len(spool._unsynced) <= 8
        spool.sync()
        assert spool._unsynced == {}


def half_then_disk_full(real_write: Callable[[int, bytes], int]) -> Callable[[int, bytes], int]:
    def write(fd: int, data: bytes) -> int:
        if len(data) > 40:  # the kernel writes what fits, then refuses the rest
            return real_write(fd, data[:30])
        raise OSError(errno.ENOSPC, "No space left on device")

    return write


def test_a_torn_record_is_counted_once_as_lost_and_cut_off_the_segment(
    spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool.append(b"before")
    real_write = os.write
    monkeypatch.setattr(os, "write", half_then_disk_full(real_write))
    assert not spool.append(b"x" * 50)
    monkeypatch.setattr(os, "write", real_write)
    assert spool.lost_records == 1
    assert spool.last_drop_reason == "disk_full"
    [segment] = segments(spool.directory)
    assert segment.stat().st_size == len(encode_frame(b"before"))  # the 30 bytes are gone
    assert spool.append(b"after")
    assert drain(spool) == [b"before", b"after"]
    assert spool.corrupt_records == 0  # dropped at append, not counted again when read
    assert spool.pending_bytes == 0


def test_a_torn_record_that_cannot_be_cut_off_is_sealed_away_and_still_counted_once(
    spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_truncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    spool.append(b"before")
    real_write = os.write
    monkeypatch.setattr(os, "write", half_then_disk_full(real_write))
    monkeypatch.setattr(os, "ftruncate", no_truncate)
    assert not spool.append(b"x" * 50)
    monkeypatch.setattr(os, "write", real_write)
    assert spool.append(b"after")  # in a new segment: the torn frame ends a sealed one
    assert drain(spool) == [b"before", b"after"]
    assert spool.lost_records == 1
    assert spool.corrupt_records == 0
    assert spool.pending_bytes == 0


def test_append_after_close_is_a_programming_error(directory: Path) -> None:
    spool = Spool(directory, max_bytes=1000, segment_bytes=100)
    spool.open()
    spool.close()
    spool.close()  # idempotent
    with pytest.raises(RuntimeError, match="not open"):
        spool.append(b"late")


class SpoolAgainstAModel(RuleBasedStateMachine):
    """Random appends, reads, commits, rewinds, restarts and crashes, checked against a list."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.max_bytes = 1500
        self.segment_bytes = 0
        self.spool: Spool | None = None
        self.records: list[bytes] = []
        self.committed = 0  # records before this index are committed
        self.cursor = 0  # records before this index have been read
        self.ends: dict[int, SpoolPosition] = {}  # records read -> batch end

    @initialize(segment_bytes=st.integers(40, 700))
    def start(self, segment_bytes: int) -> None:
        self.segment_bytes = segment_bytes
        self.spool = self.open()

    def open(self) -> Spool:
        spool = Spool(
            self.tmp.name, max_bytes=self.max_bytes, segment_bytes=self.segment_bytes, fsync="never"
        )
        spool.open()
        self.cursor = self.committed
        self.ends = {}
        return spool

    @property
    def live(self) -> Spool:
        assert self.spool is not None
        return self.spool

    @rule(payload=st.binary(max_size=120))
    def append(self, payload: bytes) -> None:
        fits = framed(self.records[self.committed :]) + HEADER_SIZE + len(payload) <= self.max_bytes
        assert self.live.append(payload) == fits
        if fits:
            self.records.append(payload)

    @rule(count=st.integers(1, 8))
    def read(self, count: int) -> None:
        batch = self.live.read_batch(count)
        assert batch.records == self.records[self.cursor : self.cursor + count]
        self.cursor += len(batch.records)
        if batch.records:
            self.ends[self.cursor] = batch.end

    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        if not self.ends:
            return
        upto = data.draw(st.sampled_from(sorted(self.ends)))
        self.live.commit(self.ends[upto])
        self.committed = max(self.committed, upto)
        self.cursor = max(self.cursor, self.committed)

    @rule()
    def rewind(self) -> None:
        self.live.rewind()
        self.cursor = self.committed

    @rule()
    def restart(self) -> None:
        self.live.close()
        self.spool = self.open()

    @rule()
    def crash(self) -> None:
        crash(self.live)
        self.spool = self.open()

    @invariant()
    def pending_matches(self) -> None:
        if self.spool is not None:
            assert self.spool.pending_bytes == framed(self.records[self.committed :])
            expected = self.cursor < len(self.records) or self.committed < self.cursor
            assert self.spool.has_pending() == expected
            assert self.spool.corrupt_records == 0

    def teardown(self) -> None:
        if self.spool is not None:
            self.spool.close()
        self.tmp.cleanup()


TestSpoolAgainstAModel = SpoolAgainstAModel.TestCase
TestSpoolAgainstAModel.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def test_sync_from_a_worker_thread_while_appending_and_rotating(directory: Path) -> None:
    records = payloads(2000)
    with Spool(directory, max_bytes=1 << 22, segment_bytes=2000) as spool:
        stop = threading.Event()

        def sync_until_stopped() -> None:
            while not stop.is_set():
                spool.sync()

        worker = threading.Thread(target=sync_until_stopped)
        worker.start()
        try:
            assert all(spool.append(record) for record in records)
        finally:
            stop.set()
            worker.join()
        assert drain(spool, batch=300) == records
