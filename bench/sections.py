"""Write a benchmark's results into its own marked block of docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, name: str, title: str, intro: str, body: str) -> None:
    """Replace the block marked ``<!-- bench-NAME:start/end -->`` in ``path``, or append the
    section (``title``, ``intro``, block); the rest of the file stays as it is."""
    start, end = f"<!-- bench-{name}:start -->", f"<!-- bench-{name}:end -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        path.write_text(head + block + tail)
        return
    path.write_text(f"{text.rstrip()}\n\n{title}\n\n{intro}\n{block}\n")
