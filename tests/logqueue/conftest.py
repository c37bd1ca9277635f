"""A spool of its own per test, in a throwaway directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.logqueue.spool import Spool


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def spool(directory: Path) -> Iterator[Spool]:
    with Spool(directory, max_bytes=1 << 20, segment_bytes=1000) as opened:
        yield opened
