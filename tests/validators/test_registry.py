"""The schema registry: shipped schemas compile; a bad file names itself and the pointer."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.errors import ConfigError
from sidecar.validators.registry import SchemaRegistry

SHIPPED = Path(__file__).resolve().parents[2] / "schemas"


def test_shipped_schemas_compile() -> None:
    assert SchemaRegistry.load(SHIPPED).names() == [
        "clinical_extraction",
        "code_review",
        "support_triage",
    ]


def test_invalid_schema_fails_with_file_and_pointer(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text(
        '{"type": "object", "properties": {"a": {"type": "strung"}}}'
    )
    with pytest.raises(ConfigError, match=r"bad\.json: invalid schema at /properties/a/type: "):
        SchemaRegistry.load(tmp_path)


def test_schema_file_that_is_not_json_fails_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{nope")
    with pytest.raises(ConfigError, match=r"broken\.json: not valid JSON"):
        SchemaRegistry.load(tmp_path)


def test_request_schemas_are_compiled_once_and_bad_ones_give_none() -> None:
    registry = SchemaRegistry()
    first = registry.for_request_schema({"type": "object"})
    assert first is registry.for_request_schema({"type": "object"})
    assert registry.for_request_schema({"type": 12}) is None
