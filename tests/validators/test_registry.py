"""The schema registry: shipped schemas compile; a bad file names itself and the pointer."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.errors import ConfigError
from sidecar.validators.registry import SchemaRegistry, Unusable

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


def test_request_schemas_are_compiled_once_and_bad_ones_say_why() -> None:
    registry = SchemaRegistry()
    first = registry.for_request_schema({"type": "object"})
    assert first is registry.for_request_schema({"type": "object"})
    bad = registry.for_request_schema({"type": 12})
    assert isinstance(bad, Unusable)
    assert "at /type" in bad.reason


def test_request_schema_patterns_needing_backtracking_are_unusable_naming_the_pattern() -> None:
    registry = SchemaRegistry()
    lookahead = {"type": "object", "properties": {"p": {"pattern": "^(?=.*[A-Z]).+$"}}}
    backreference = {"type": "string", "pattern": "^(a+)\\1$"}
    for schema, where in ((lookahead, "/properties/p/pattern"), (backreference, "/pattern")):
        compiled = registry.for_request_schema(schema)
        assert isinstance(compiled, Unusable)
        assert where in compiled.reason
        assert "linear-time" in compiled.reason


def test_named_schemas_may_use_lookaround_with_bounded_backtracking(tmp_path: Path) -> None:
    (tmp_path / "password.json").write_text('{"type": "string", "pattern": "^(?=.*[A-Z]).{8,}$"}')
    validator = SchemaRegistry.load(tmp_path).get("password")
    assert validator is not None
    assert validator.is_valid("Abcdefgh")
    assert not validator.is_valid("abcdefgh")


def test_a_missing_directory_is_empty_at_start_but_an_error_on_reload(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    assert SchemaRegistry.load(gone).names() == []
    with pytest.raises(ConfigError, match=f"compliance.schemas_dir {gone} "):
        SchemaRegistry.load(gone, missing_ok=False)
