"""A real, small filesystem for spool tests: a 2 MiB tmpfs mounted for one test (needs root)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

SMALL_DISK_BYTES = 2 * 1024 * 1024


def mount_small_disk(path: Path, size_bytes: int = SMALL_DISK_BYTES) -> Iterator[Path]:
    """Mount a tmpfs of ``size_bytes`` at ``path`` for the test; unmount after.

    Skipped only where mounting is not permitted (not root, no CAP_SYS_ADMIN); in CI,
    which runs as root, that is a failure instead.
    """
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def deleted_segments_held(directory: Path) -> list[str]:
    """Segments of ``directory`` deleted but still open or mapped here (their space is not back)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            held.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    held += Path("/proc/self/maps").read_text().splitlines()
    return [entry for entry in held if str(directory) in entry and entry.endswith(" (deleted)")]
