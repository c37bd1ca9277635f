"""docs/configuration.md's key reference is generated from the fields' declarations."""

from __future__ import annotations

import re

import msgspec
import pytest

from sidecar.settings import settings_keys
from sidecar.settings.reference import render, rewrite
from sidecar.settings.values import Section
from tests.settings.files import DOCS


def test_every_configuration_key_is_documented() -> None:
    documented = set(
        re.findall(r"^\| `([a-z_]+(?:\.[a-z_]+)?)` \|", DOCS.read_text(), re.MULTILINE)
    )
    missing = [key for key in settings_keys() if key not in documented]
    assert not missing, f"undocumented configuration keys in docs/configuration.md: {missing}"
    stale = documented - set(settings_keys())
    assert not stale, f"docs/configuration.md documents keys that do not exist: {stale}"


def test_docs_configuration_is_the_generated_reference() -> None:
    document = DOCS.read_text()
    assert document == rewrite(document), (
        "docs/configuration.md differs from the settings' declarations: run `make docs` "
        "(python -m sidecar.settings.reference --write docs/configuration.md)"
    )


def test_the_reference_shows_each_keys_type_default_limit_and_description() -> None:
    rows = {line.split(" | ")[0].strip("| `"): line for line in render().splitlines()
            if line.startswith("| `")}  # fmt: skip
    assert set(settings_keys()) <= set(rows)
    assert rows["proxy.port"].startswith(
        "| `proxy.port` | integer | `8080` | [0, 65535] | Proxy port"
    )
    assert "| `33554432` (32 MiB) | > 0 |" in rows["proxy.max_body_bytes"]
    assert "| `0.05` | [0, 1] |" in rows["judge.sample_rate"]
    assert "| `full`, `redacted`, `none` |" in rows["request_log.bodies"]
    assert "| string | required |" in rows["compliance.rules[].schema"]
    assert "| `window_s` | > 0 |" in rows["drift.reference_window_s"]
    assert "comparison: above\\|below" in rows["alerts.rules"]  # pipes escaped inside a cell


class Bare(Section, frozen=True):
    undocumented: int = 1


class Root(Section, frozen=True):
    bare: Bare = msgspec.field(default_factory=Bare)


def test_a_field_without_a_description_stops_the_generator() -> None:
    with pytest.raises(ValueError, match=r"bare.undocumented has no description"):
        render(Root)
