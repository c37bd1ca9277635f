"""Frames of the spool's segment files: encode one, scan many (pure, no I/O).

A frame is a 12-byte header followed by the payload::

    magic  b"\\xd5SP1"   4 bytes
    length uint32 LE     payload bytes
    crc    uint32 LE     zlib.crc32 of the payload
    payload

:func:`scan_frames` walks a buffer (``bytes`` or a read-only ``mmap``) and
never trusts what it reads: a frame whose magic, length or CRC does not check
out is skipped by searching forward for the next magic, so one damaged frame
costs that frame only. The buffer's end is either the end of everything that
will ever be written there (``at_end=True``, a sealed segment: a cut-off frame
is damage) or just the end of what has been written so far (``at_end=False``,
the active segment: a cut-off frame is still being written, so stop there).
"""

from __future__ import annotations

import mmap
import struct
import zlib
from dataclasses import dataclass
from typing import Literal, TypeAlias

MAGIC = b"\xd5SP1"
HEADER = struct.Struct("<4sII")
HEADER_SIZE = HEADER.size
MAX_PAYLOAD_BYTES = 0xFFFFFFFF

Buffer: TypeAlias = bytes | mmap.mmap
ScanStop: TypeAlias = Literal["end", "limit", "incomplete"]

_pack_header = HEADER.pack
_unpack_header = HEADER.unpack_from
_crc32 = zlib.crc32


def encode_frame(payload: bytes) -> bytes:
    """The frame for ``payload``: header + payload, ready for one ``os.write``."""
    return _pack_header(MAGIC, len(payload), _crc32(payload)) + payload


@dataclass(frozen=True, slots=True)
class Skipped:
    """A damaged region the scan stepped over: ``length`` bytes at ``offset``."""

    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What :func:`scan_frames` found between ``start`` and ``stop``.

    ``position`` is where the next scan should start: just after the last
    record returned, or after damage skipped behind it. ``last_record_end`` is
    the offset just after the last record returned (None when there is none).
    ``stopped`` says why the scan ended: ``"end"`` (everything up to the end of
    the buffer is accounted for), ``"limit"`` (``max_records`` or ``max_bytes``
    reached) or ``"incomplete"`` (a frame is cut off by the end of the buffer and
    ``at_end`` is False: it is still being written).
    """

    records: list[bytes]
    payload_bytes: int
    position: int
    last_record_end: int | None
    skipped: tuple[Skipped, ...]
    stopped: ScanStop


def scan_frames(
    buffer: Buffer,
    start: int = 0,
    stop: int | None = None,
    *,
    max_records: int,
    max_bytes: int,
    at_end: bool,
    at_least_one: bool = True,
) -> ScanResult:
    """Read intact frames from ``buffer[start:stop]``, skipping damage, within the limits.

    ``max_bytes`` bounds the payload bytes returned; with ``at_least_one`` the
    first record is returned even when it alone is larger (so a big record can
    never wedge the reader). Never raises on any content.
    """
    end = len(buffer) if stop is None else min(stop, len(buffer))
    records: list[bytes] = []
    payload_bytes = 0
    skipped: list[Skipped] = []
    last_record_end: int | None = None
    damage_start: int | None = None  # start of the damaged run being stepped over
    position = start
    stopped: ScanStop = "end"
    while position < end:
        if len(records) >= max_records:
            stopped = "limit"
            break
        frame_end = -1
        if position + HEADER_SIZE <= end:
            magic, length, crc = _unpack_header(buffer, position)
            if magic == MAGIC:
                frame_end = position + HEADER_SIZE + length
                if frame_end <= end:
                    payload = buffer[position + HEADER_SIZE : frame_end]
                    if _crc32(payload) == crc:
                        if records and payload_bytes + length > max_bytes:
                            stopped = "limit"
                            break
                        if not records and not at_least_one and length > max_bytes:
                            stopped = "limit"
                            break
                        if damage_start is not None:
                            skipped.append(Skipped(damage_start, position - damage_start))
                            damage_start = None
                        records.append(payload)
                        payload_bytes += length
                        position = last_record_end = frame_end
                        continue
                    frame_end = -1  # bad CRC: damage
        elif MAGIC.startswith(buffer[position : min(end, position + len(MAGIC))]):
            frame_end = end + 1  # a header cut off by the end of the buffer
        if frame_end > end and not at_end:
            stopped = "incomplete"
            break
        # Damage (or a cut-off frame at the true end): step to the next magic.
        if damage_start is None:
            damage_start = position
        next_magic = buffer.find(MAGIC, position + 1, end)
        if next_magic >= 0:
            position = next_magic
        elif at_end:
            position = end
        else:
            # Unframed bytes at the end of a growing buffer: wait for more (the
            # next frame's magic will show where the damage stops).
            position = damage_start
            damage_start = None
            stopped = "incomplete"
            break
    if damage_start is not None:
        skipped.append(Skipped(damage_start, position - damage_start))
    return ScanResult(
        records=records,
        payload_bytes=payload_bytes,
        position=position,
        last_record_end=last_record_end,
        skipped=tuple(skipped),
        stopped=stopped,
    )
