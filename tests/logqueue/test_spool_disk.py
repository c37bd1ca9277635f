"""The spool against its disk: full (a real 2 MiB tmpfs), failing, and coming back."""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from sidecar.logqueue import segments
from sidecar.logqueue.spool import Spool
from sidecar.testing.harness import running_sidecar
from sidecar.testing.servers import RunningServer
from sidecar.testing.tcp_relay import tcp_relay
from tests.helpers import sidecar_settings, wait_for, wait_for_rows
from tests.logqueue.smalldisk import deleted_segments_held, free_bytes, mount_small_disk
from tests.scenarios.operator import scrape

RECORD = b"r" * 1500
BIG_CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "x" * 2400}], "max_tokens": 3}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    yield from mount_small_disk(tmp_path / "disk")


def files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def drain(spool: Spool) -> int:
    count = 0
    while (batch := spool.read_batch(500)).records:
        count += len(batch.records)
        spool.commit(batch.end)
    return count


def fill(spool: Spool, count: int = 3000) -> int:
    """Append ``count`` records; returns how many were accepted."""
    return sum(spool.append(RECORD) for _ in range(count))


def test_a_full_disk_drops_records_by_reason_without_a_file_per_drop(disk: Path) -> None:
    directory = disk / "spool"
    with Spool(directory, max_bytes=1 << 30, segment_bytes=64 << 20) as spool:
        accepted = fill(spool)
        assert 1000 < accepted < 1400  # what fits in 2 MiB
        assert spool.lost_records == 3000 - accepted
        assert spool.last_drop_reason == "disk_full"
        assert files(directory) == ["00000000000000000001.seg", "lock"]
        [segment] = [directory / name for name in files(directory) if name.endswith(".seg")]
        assert segment.stat().st_size == accepted * (len(RECORD) + 12)  # no torn frame left


def test_when_the_stored_records_are_committed_the_space_returns_and_appending_resumes(
    disk: Path,
) -> None:
    directory = disk / "spool"
    with Spool(directory, max_bytes=1 << 30, segment_bytes=64 << 20) as spool:
        accepted = fill(spool)
        assert free_bytes(disk) < len(RECORD)
        assert drain(spool) == accepted
        spool.read_batch(500)  # the writer's next poll hands the stored segment back
        assert free_bytes(disk) > 1_900_000
        assert deleted_segments_held(directory) == []
        assert fill(spool, 100) == 100
        assert drain(spool) == 100
        assert spool.corrupt_records == 0
        assert len(files(directory)) <= 3  # lock, checkpoint, one segment


def test_segments_the_checkpoint_passed_are_closed_and_deleted_so_the_space_returns(
    disk: Path,
) -> None:
    directory = disk / "spool"
    with Spool(directory, max_bytes=1 << 30, segment_bytes=100_000) as spool:
        accepted = fill(spool)
        assert free_bytes(disk) < 100_000
        assert drain(spool) == accepted
        assert deleted_segments_held(directory) == []  # no fd or map on a deleted segment
        assert free_bytes(disk) > 1_800_000
        assert fill(spool, 100) == 100
        assert drain(spool) == 100


def test_a_disk_that_fails_then_heals_counts_io_errors_and_resumes_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write, real_create = os.write, segments.create_segment

    def failing_write(fd: int, data: bytes) -> int:
        raise OSError(errno.EIO, "Input/output error")

    def out_of_descriptors(*args: object) -> int:
        raise OSError(errno.EMFILE, "Too many open files")

    with Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=2000) as spool:
        assert spool.append(RECORD)
        monkeypatch.setattr(segments, "create_segment", out_of_descriptors)
        assert not spool.append(RECORD)  # needs a new segment, cannot open one
        assert spool.last_drop_reason == "io_error"
        monkeypatch.setattr(segments, "create_segment", real_create)
        monkeypatch.setattr(os, "write", failing_write)
        assert not spool.append(RECORD)  # the new segment opens, the write fails
        assert spool.last_drop_reason == "io_error"
        monkeypatch.setattr(os, "write", real_write)
        assert spool.append(RECORD)  # no broken state left
        assert spool.lost_records == 2
        assert drain(spool) == 2


def test_the_spool_is_degraded_while_records_are_dropped_then_ok_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()

    def disk_full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    real_write = os.write
    with Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=1 << 20, clock=clock) as spool:
        assert spool.health() == "ok"
        monkeypatch.setattr(os, "write", disk_full)
        for _ in range(3):
            spool.append(RECORD)
        monkeypatch.setattr(os, "write", real_write)
        clock.now += 4
        assert spool.health() == (
            "degraded: dropping records (disk_full: [Errno 28] No space left on device; "
            "3 dropped, the last 4 s ago)"
        )
        assert spool.append(RECORD)
        assert spool.health().startswith("degraded: dropping records")  # for the window
        clock.now += 6
        assert spool.health() == "ok"


def test_dropping_is_logged_once_per_window_and_its_end_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    with Spool(tmp_path / "spool", max_bytes=3200, segment_bytes=3200, clock=clock) as spool:
        fill(spool, 2)
        with caplog.at_level(logging.WARNING, logger="sidecar.spool"):
            fill(spool, 500)
            clock.now += 10
            fill(spool, 500)
            drain(spool)
            assert spool.append(RECORD)
        assert spool.last_drop_reason == "spool_full"
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3, messages
    assert "dropping request records (spool_full:" in messages[0]
    assert "still dropping request records" in messages[1]
    assert "500 since the last report" in messages[1]
    assert "appending works again, after 1000 records were dropped" in messages[2]


def test_sync_out_of_descriptors_syncs_in_place_instead_of_raising(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_descriptor(fd: int) -> int:
        raise OSError(errno.EMFILE, "Too many open files")

    with Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=2000) as spool:
        fill(spool, 5)
        monkeypatch.setattr(os, "dup", no_descriptor)
        assert spool.sync()
        assert spool._unsynced == {}


# -- through a running sidecar ----------------------------------------------------------


def chats(http: httpx.Client, count: int) -> list[str]:
    """Send ``count`` chats of about 3 KB each; every one is answered. Returns the request ids."""
    responses = [http.post("/v1/chat/completions", json=BIG_CHAT) for _ in range(count)]
    assert [response.status_code for response in responses] == [200] * count
    return [response.headers["x-request-id"] for response in responses]


@pytest.mark.slow
@pytest.mark.postgres
def test_a_disk_filled_during_a_database_cut_recovers_by_itself_once_the_database_is_back(
    upstream: RunningServer, make_postgres_database: Callable[[], str], disk: Path
) -> None:
    direct_url = make_postgres_database()
    parts = urlsplit(direct_url)
    spool_dir = disk / "spool"
    with tcp_relay(parts.hostname or "127.0.0.1", parts.port or 5432) as relay:
        relayed_url = direct_url.replace(f":{parts.port}/", f":{relay.port}/")
        settings = sidecar_settings(upstream.url, relayed_url, spool_dir)  # 1 GiB bound: the disk
        with (
            running_sidecar(settings) as running,
            httpx.Client(base_url=running.proxy_url, timeout=30) as http,
        ):
            spool = running.sidecar.spool
            sent = chats(http, 20)
            wait_for_rows(direct_url, 20)
            relay.cut()
            sent += chats(http, 2000)  # served while the database is away and the disk fills up
            lost = spool.lost_records
            assert lost > 1000
            ready = httpx.get(f"{running.admin_url}/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["spool"].startswith(
                "degraded: dropping records (disk_full: [Errno 28] No space left on device; "
            )
            assert len(files(spool_dir)) <= 3  # lock, checkpoint, one segment
            samples = scrape(running.admin_url)
            assert samples[("sidecar_log_rows_lost_total", (("reason", "disk_full"),))] == lost
            assert samples[("sidecar_log_rows_lost_total", (("reason", "spool_full"),))] == 0

            relay.restore()
            rows = wait_for_rows(direct_url, 2020 - lost)
            wait_for(lambda: free_bytes(disk) > 1_800_000, what="the spool's space to come back")
            assert deleted_segments_held(spool_dir) == []
            assert len(files(spool_dir)) <= 3
            after = chats(http, 100)
            rows = wait_for_rows(direct_url, 2120 - lost)
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) == 2120 - lost  # the spooled rows landed once
    assert set(after) <= set(ids)  # and logging works again
    assert spool.lost_records == lost


def test_the_fsync_loop_survives_a_failing_sync_and_its_gauge_says_when_it_last_worked(
    upstream: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync_and_close = segments.fsync_and_close
    failures: list[float] = []

    def fails_three_times(directory: Path, fds: list[int]) -> bool:
        if len(failures) < 3:
            for fd in fds:
                os.close(fd)
            failures.append(time.time())
            raise RuntimeError("a bug in sync")
        return real_fsync_and_close(directory, fds)

    monkeypatch.setattr(segments, "fsync_and_close", fails_three_times)
    settings = sidecar_settings(
        upstream.url, f"sqlite:///{tmp_path / 'sidecar.db'}", tmp_path / "spool",
        spool={"fsync_interval_s": 0.02},
    )  # fmt: skip
    with running_sidecar(settings) as running:
        wait_for(lambda: len(failures) == 3, what="three failed syncs")

        def last_fsync() -> float:
            return scrape(running.admin_url)[("sidecar_log_spool_last_fsync_timestamp_seconds", ())]

        wait_for(lambda: last_fsync() > failures[-1], what="a sync after the failures")
        assert not [task for task in running.sidecar._tasks if task.done()]
