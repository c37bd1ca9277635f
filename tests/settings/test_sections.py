"""The sections' defaults are safe, and every choice a field offers is accepted."""

from __future__ import annotations

from pathlib import Path

from sidecar.settings import load_settings
from tests.settings.files import write


def test_every_key_has_a_safe_default() -> None:
    settings = load_settings(env={})
    assert settings.upstream.url == "http://127.0.0.1:8000"
    assert settings.proxy.port == 8080
    assert settings.admin.port == 8081
    assert settings.database.url.startswith("sqlite:///")


def test_both_embedding_models_are_accepted(tmp_path: Path) -> None:
    """minilm shipped with semantic drift: a stale check refused it at start until this test."""
    for model in ("static", "minilm"):
        text = f"drift:\n  embeddings: {{enabled: true, model: {model}}}\n"
        assert load_settings(write(tmp_path, text), env={}).drift.embeddings.model == model
