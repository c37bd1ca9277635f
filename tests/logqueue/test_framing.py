from __future__ import annotations

import mmap
import tempfile
import zlib
from itertools import accumulate

from hypothesis import assume, given
from hypothesis import strategies as st

from sidecar.logqueue.framing import HEADER_SIZE, MAGIC, encode_frame, scan_frames

plain_payloads = st.binary(max_size=300).filter(lambda payload: MAGIC not in payload)
# Payloads that carry the magic (even a whole valid frame) inside them.
tricky_payloads = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda head, tail: head + MAGIC + tail, st.binary(max_size=40), st.binary(max_size=40)
    ),
    st.builds(lambda head: head + encode_frame(b""), st.binary(max_size=40)),
)


def frame_ends(payloads: list[bytes]) -> list[int]:
    return list(accumulate(HEADER_SIZE + len(payload) for payload in payloads))


def scan_all(buffer: bytes, *, at_end: bool) -> tuple[list[bytes], int, int, str]:
    result = scan_frames(buffer, max_records=10**9, max_bytes=10**12, at_end=at_end)
    return result.records, result.position, len(result.skipped), result.stopped


def test_frame_is_magic_length_crc_payload() -> None:
    frame = encode_frame(b"hello")
    assert frame[:4] == MAGIC
    assert int.from_bytes(frame[4:8], "little") == 5
    assert int.from_bytes(frame[8:12], "little") == zlib.crc32(b"hello")
    assert frame[12:] == b"hello"


@given(st.lists(tricky_payloads, max_size=20), st.booleans())
def test_frames_round_trip(payloads: list[bytes], at_end: bool) -> None:
    buffer = b"".join(encode_frame(payload) for payload in payloads)
    assert scan_all(buffer, at_end=at_end) == (payloads, len(buffer), 0, "end")


@given(st.lists(plain_payloads, min_size=1, max_size=20), st.data())
def test_scan_stops_at_the_record_limit(payloads: list[bytes], data: st.DataObject) -> None:
    buffer = b"".join(encode_frame(payload) for payload in payloads)
    limit = data.draw(st.integers(1, len(payloads)))
    result = scan_frames(buffer, max_records=limit, max_bytes=10**9, at_end=True)
    assert result.records == payloads[:limit]
    assert result.position == frame_ends(payloads)[limit - 1]
    assert result.stopped == ("end" if limit == len(payloads) else "limit")


@given(st.lists(plain_payloads, min_size=1, max_size=20), st.integers(0, 2000), st.booleans())
def test_scan_respects_the_byte_limit_but_returns_at_least_one(
    payloads: list[bytes], max_bytes: int, at_least_one: bool
) -> None:
    buffer = b"".join(encode_frame(payload) for payload in payloads)
    result = scan_frames(
        buffer, max_records=100, max_bytes=max_bytes, at_end=True, at_least_one=at_least_one
    )
    expected = 0
    total = 0
    for payload in payloads:
        if total + len(payload) > max_bytes and (expected or not at_least_one):
            break
        total += len(payload)
        expected += 1
    assert result.records == payloads[:expected]
    assert result.payload_bytes == total


@given(st.lists(plain_payloads, min_size=1, max_size=10), st.data())
def test_a_cut_off_frame_is_awaited_in_a_growing_buffer(
    payloads: list[bytes], data: st.DataObject
) -> None:
    buffer = b"".join(encode_frame(payload) for payload in payloads)
    cut = data.draw(st.integers(0, len(buffer)))
    complete = [end for end in frame_ends(payloads) if end <= cut]
    records, position, skipped, stopped = scan_all(buffer[:cut], at_end=False)
    assert records == payloads[: len(complete)]
    assert position == (complete[-1] if complete else 0)
    assert skipped == 0
    assert stopped == ("end" if position == cut else "incomplete")


@given(st.lists(plain_payloads, min_size=1, max_size=10), st.data())
def test_a_cut_off_frame_at_the_true_end_is_skipped_and_counted(
    payloads: list[bytes], data: st.DataObject
) -> None:
    buffer = b"".join(encode_frame(payload) for payload in payloads)
    cut = data.draw(st.integers(0, len(buffer)))
    complete = [end for end in frame_ends(payloads) if end <= cut]
    records, position, skipped, stopped = scan_all(buffer[:cut], at_end=True)
    assert records == payloads[: len(complete)]
    assert position == cut
    assert skipped == (0 if cut in (0, *complete) else 1)
    assert stopped == "end"


@given(st.lists(plain_payloads, min_size=1, max_size=12), st.data())
def test_every_intact_frame_survives_corruption(payloads: list[bytes], data: st.DataObject) -> None:
    frames = [encode_frame(payload) for payload in payloads]
    buffer = bytearray(b"".join(frames))
    start = data.draw(st.integers(0, len(buffer) - 1))
    garbage = data.draw(st.binary(min_size=1, max_size=64).filter(lambda g: MAGIC not in g))
    buffer[start : start + len(garbage)] = garbage[: len(buffer) - start]
    assume(MAGIC not in buffer[max(0, start - 3) : start + len(garbage) + 3])
    intact = []
    offset = 0
    for payload, frame in zip(payloads, frames, strict=True):
        if buffer[offset : offset + len(frame)] == frame:
            intact.append(payload)
        offset += len(frame)
    records, position, skipped, stopped = scan_all(bytes(buffer), at_end=True)
    assert records == intact
    assert position == len(buffer)
    assert skipped == (1 if len(intact) < len(payloads) else 0)
    assert stopped == "end"


@given(st.lists(tricky_payloads, max_size=12), st.data())
def test_arbitrary_damage_never_crashes_and_keeps_intact_frames(
    payloads: list[bytes], data: st.DataObject
) -> None:
    frames = [encode_frame(payload) for payload in payloads]
    buffer = bytearray(b"".join(frames))
    for _ in range(data.draw(st.integers(0, 3))):
        if not buffer:
            break
        start = data.draw(st.integers(0, len(buffer) - 1))
        garbage = data.draw(st.binary(max_size=32))
        buffer[start : start + len(garbage)] = garbage
    cut = data.draw(st.integers(0, len(buffer)))
    damaged = bytes(buffer[:cut])
    intact = []
    offset = 0
    for payload, frame in zip(payloads, frames, strict=True):
        if damaged[offset : offset + len(frame)] == frame:
            intact.append(payload)
        offset += len(frame)
    for at_end in (True, False):
        records, position, _, _ = scan_all(damaged, at_end=at_end)
        assert 0 <= position <= len(damaged)
        for record in records:  # every record returned passed its CRC
            assert encode_frame(record) in damaged
    records, _, _, _ = scan_all(damaged, at_end=True)
    remaining = iter(records)
    assert all(any(record == payload for record in remaining) for payload in intact)


@given(st.lists(plain_payloads, min_size=1, max_size=10), st.binary(max_size=20))
def test_scan_reads_a_window_of_an_mmap(payloads: list[bytes], prefix: bytes) -> None:
    body = b"".join(encode_frame(payload) for payload in payloads)
    with tempfile.TemporaryFile() as file:
        file.write(prefix + body + b"trailing bytes beyond the window")
        file.flush()
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
            result = scan_frames(
                view,
                len(prefix),
                len(prefix) + len(body),
                max_records=100,
                max_bytes=10**6,
                at_end=False,
            )
    assert result.records == payloads
    assert result.position == len(prefix) + len(body)


def test_damage_between_frames_is_reported_with_its_place() -> None:
    first, second = encode_frame(b"one"), encode_frame(b"two")
    buffer = first + b"garbage!" + second
    result = scan_frames(buffer, max_records=10, max_bytes=100, at_end=False)
    assert result.records == [b"one", b"two"]
    assert [(s.offset, s.length) for s in result.skipped] == [(len(first), 8)]


def test_unframed_bytes_at_the_end_of_a_growing_buffer_wait_for_more() -> None:
    buffer = encode_frame(b"one") + b"garbage"
    result = scan_frames(buffer, max_records=10, max_bytes=100, at_end=False)
    assert result.records == [b"one"]
    assert result.position == len(encode_frame(b"one"))
    assert result.stopped == "incomplete"
    assert result.skipped == ()
