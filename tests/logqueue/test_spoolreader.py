from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sidecar.logqueue.framing import encode_frame
from sidecar.logqueue.spool import Spool, SpoolPosition, segment_name
from tests.logqueue.spools import drain, framed, payloads, read_all, segments

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_each_record_is_read_once_until_rewound(spool: Spool) -> None:
    records = payloads(30)
    for record in records:
        spool.append(record)
    first = spool.read_batch(10)
    second = spool.read_batch(10)
    assert first.records + second.records == records[:20]
    spool.commit(first.end)
    spool.rewind()
    assert read_all(spool) == records[10:]
    assert spool.read_batch(10).records == []


def test_a_batch_is_bounded_by_bytes_but_a_big_record_still_comes_out(spool: Spool) -> None:
    big = b"x" * 5000  # larger than a segment: it gets one of its own
    records = [*payloads(5), big, *payloads(3, start=5)]
    for record in records:
        spool.append(record)
    assert spool.read_batch(100, max_bytes=100).records == records[:2]
    assert spool.read_batch(100, max_bytes=100).records == records[2:4]
    assert spool.read_batch(100, max_bytes=100).records == records[4:5]
    assert spool.read_batch(100, max_bytes=100).records == [big]
    assert read_all(spool) == records[6:]


def test_a_torn_tail_in_a_sealed_segment_is_skipped_and_counted(
    directory: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(directory, max_bytes=1 << 20, segment_bytes=1 << 20) as spool:
        for record in payloads(3):
            spool.append(record)
    [sealed] = segments(directory)
    with sealed.open("ab") as file:
        file.write(encode_frame(b"torn" * 20)[:30])
    with Spool(directory, max_bytes=1 << 20, segment_bytes=1 << 20) as spool:
        spool.append(b"after the crash")
        with caplog.at_level(logging.WARNING, logger="sidecar.spool"):
            assert drain(spool) == [*payloads(3), b"after the crash"]
        assert spool.corrupt_records == 1
        assert "skipped 30 damaged bytes" in caplog.text
        assert not sealed.exists()
        assert spool.pending_bytes == 0


def test_garbage_in_the_middle_is_skipped_and_what_follows_recovered(directory: Path) -> None:
    directory.mkdir()
    good = payloads(4)
    body = encode_frame(good[0]) + b"\x00garbage\xff" * 5 + encode_frame(good[1])
    bad_crc = bytearray(encode_frame(b"bad crc"))
    bad_crc[-1] ^= 0xFF
    body += bytes(bad_crc) + encode_frame(good[2]) + encode_frame(good[3])
    (directory / segment_name(7)).write_bytes(body)
    with Spool(directory, max_bytes=1 << 20, segment_bytes=1 << 20) as spool:
        assert spool.pending_bytes == len(body)
        assert drain(spool) == good
        assert spool.corrupt_records == 2


def test_damage_after_the_last_record_does_not_leave_the_spool_pending(directory: Path) -> None:
    with Spool(directory, max_bytes=1 << 20, segment_bytes=1 << 20) as spool:
        spool.append(b"one")
        spool.commit(spool.read_batch(10).end)
        spool.append(b"two")
    [sealed] = segments(directory)
    with sealed.open("ab") as file:
        file.write(b"\xd5SP1 half a header")
    with Spool(directory, max_bytes=1 << 20, segment_bytes=1 << 20) as spool:
        assert drain(spool) == [b"two"]
        assert spool.read_batch(10).records == []
        assert spool.corrupt_records == 1
        assert not spool.has_pending()
        assert spool.pending_bytes == 0


def test_has_pending_follows_reads_and_commits(spool: Spool) -> None:
    assert not spool.has_pending()
    spool.append(b"one")
    assert spool.has_pending()
    batch = spool.read_batch(10)
    assert spool.has_pending()  # read, not committed
    spool.commit(batch.end)
    assert not spool.has_pending()


def test_commit_refuses_positions_not_read_yet_and_ignores_old_ones(spool: Spool) -> None:
    for record in payloads(5):
        spool.append(record)
    first = spool.read_batch(2)
    with pytest.raises(ValueError, match="not read yet"):
        spool.commit(SpoolPosition(first.end.segment, first.end.offset + 1))
    second = spool.read_batch(2)
    spool.commit(second.end)
    spool.commit(first.end)  # stale: no effect
    assert spool.pending_bytes == framed(payloads(1))
