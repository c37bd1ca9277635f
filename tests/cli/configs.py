"""Configuration files written by the command-line tests."""

from __future__ import annotations

from pathlib import Path

import yaml

SHIPPED_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def config(tmp_path: Path, **sections: object) -> Path:
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(sections))
    return path


def bad_schemas(tmp_path: Path) -> Path:
    folder = tmp_path / "schemas"
    folder.mkdir()
    (folder / "ticket.json").write_text('{"type": "object", "properties": {"p": {"minimum": "x"}}}')
    return folder


def write_rubric(path: Path) -> Path:
    path.write_text(yaml.safe_dump({"criteria": [{"name": "right", "description": "is right"}]}))
    return path
