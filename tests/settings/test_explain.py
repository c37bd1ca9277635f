"""Bad values are refused with a message naming the key, the limit and the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sidecar.errors import ConfigError
from sidecar.settings import load_settings
from tests.settings.files import write


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("proxy:\n  prot: 1\n", "proxy.prot: unknown key"),
        ("proxi:\n  port: 1\n", "proxi: unknown key"),
        ("proxy:\n  port: eighty\n", "proxy.port: Expected `int`, got `str`"),
        ("proxy:\n  port: 70000\n", "proxy.port: must be a TCP port"),
        ("spool:\n  max_bytes: 0\n", "spool.max_bytes: must be greater than 0"),
        (
            "request_log:\n  bodies: some\n",
            "request_log.bodies: Invalid enum value 'some'; use one of full, redacted, none",
        ),
        ("upstream:\n  url: localhost:8000\n", "upstream.url: must start with http://"),
        ("database:\n  url: mysql://x/y\n", "database.url: unsupported scheme"),
        (
            "drift:\n  embeddings: {enabled: true, model: bert}\n",
            "drift.embeddings.model: Invalid enum value 'bert'",
        ),
        ("upstream:\n  api_key: ${MISSING}\n", "environment variable MISSING is not set"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("proxy: [\n", "not valid YAML"),
    ],
)
def test_bad_configuration_names_the_key_and_the_fix(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(write(tmp_path, text), env={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("proxy:\n  max_body_bytes: 0\n", "proxy.max_body_bytes: must be greater than 0, got 0"),
        ("upstream:\n  read_timeout_s: -1\n", "upstream.read_timeout_s: must be greater than 0"),
        ("admin:\n  port: -1\n", "admin.port: must be a TCP port 0-65535 (0 picks a free one)"),
        ("writer:\n  workers: -1\n", "writer.workers: must be 0 (build rows in-process) or more"),
        ("cost:\n  gpu_count: -2\n", "cost.gpu_count: must not be negative, got -2"),
        ("judge:\n  sample_rate: 1.5\n", "judge.sample_rate: must be a share between 0 and 1"),
        (
            "judge:\n  rules: [{name: a}, {name: b, sample_rate: 2}]\n",
            "judge.rules[1].sample_rate: must be a share between 0 and 1 (0.05 = 5%), got 2",
        ),
        ("judge:\n  confidence: 0.4\n", "judge.confidence: must be between 0.5 and 1"),
        ("drift:\n  p_value: 1\n", "drift.p_value: must be strictly between 0 and 1, got 1"),
        ("drift:\n  reference_window_s: 0\n", "drift.reference_window_s: must be greater than 0"),
        (
            "cost:\n  api_prices: {m: {input_per_million_usd: -1, output_per_million_usd: 1}}\n",
            "cost.api_prices[...].input_per_million_usd: must not be negative",
        ),
        (
            "spool:\n  segment_bytes: 2048\n  max_bytes: 1024\n",
            "spool.segment_bytes: must not exceed",
        ),
        ("judge:\n  enabled: true\n  base_url: judge:80\n", "judge.base_url: must start with http"),
        (
            "judge:\n  always_sample: [sometimes]\n",
            "judge.always_sample[0]: Invalid enum value 'sometimes'; use one of schema_invalid, "
            "thumbs_down, error",
        ),
        ("database:\n  url: not-a-url\n", "database.url: 'not-a-url' is not a URL"),
    ],
)
def test_a_value_outside_its_declared_limits_names_the_key_and_the_limit(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(write(tmp_path, text), env={})
