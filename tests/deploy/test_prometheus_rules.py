"""deploy/prometheus/rules.yml: promtool accepts it, its unit tests pass, and it only uses
metrics the sidecar really exports (a renamed metric would otherwise silently never fire)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from sidecar.metrics import SidecarMetrics

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = RULES_DIR / "rules.yml"
RULES_TEST = RULES_DIR / "rules_test.yml"
MISSING_PROMTOOL = (
    "promtool is not on PATH; install the Debian package `prometheus` "
    "(apt-get install --no-install-recommends prometheus)"
)
METRIC_NAME = re.compile(r"\bsidecar_[a-z_]+")
SERIES_SUFFIX = re.compile(r"_(bucket|sum|count)$")


def promtool() -> str:
    """The promtool binary; CI must have it (fail), a developer's machine may not (skip)."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING_PROMTOOL)
        pytest.skip(MISSING_PROMTOOL)
    return found


def run_promtool(*arguments: str) -> None:
    result = subprocess.run(
        [promtool(), *arguments], capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    print(output)
    assert result.returncode == 0, f"promtool {' '.join(arguments)} failed:\n{output}"


def test_promtool_check_rules_accepts_the_rules_file() -> None:
    run_promtool("check", "rules", str(RULES))


def test_promtool_unit_tests_pass() -> None:
    run_promtool("test", "rules", str(RULES_TEST))


def exported_metric_names() -> set[str]:
    """Names as Prometheus stores them (counters with ``_total``, histograms without suffix)."""
    metrics = SidecarMetrics(CollectorRegistry())
    return {
        family.name + ("_total" if family.type == "counter" else "")
        for family in metrics.registry.collect()
    }


def metric_names_used_by_rules() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    expressions = [rule["expr"] for group in groups for rule in group["rules"]]
    return {
        SERIES_SUFFIX.sub("", name)
        for expression in expressions
        for name in METRIC_NAME.findall(expression)
    }


def test_every_metric_in_the_rules_is_exported_by_the_sidecar() -> None:
    used = metric_names_used_by_rules()
    assert used, "no sidecar_* metric found in the rules' expressions"
    assert used - exported_metric_names() == set()
