"""Tests mirror the source: ``sidecar/<part>/<module>.py`` is tested in ``tests/<part>/test_<module>.py``
(or ``test_<module>_<aspect>.py`` when one file would grow too long), after mitmproxy's
``test/filename_matching.py``.

Two directions. Every module has its test file, or a line in ``TESTED_ELSEWHERE`` saying where
its behaviour is proved. Every unit-test file names a module that exists, so a rename in the
source cannot leave a test file pointing at nothing; the outside-in suites, which run a whole
sidecar and test no single module, live in ``OUTSIDE_IN``.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sidecar"
TESTS = ROOT / "tests"

# Module (relative to sidecar/, no suffix) or part ("part/*") -> where it is tested instead.
TESTED_ELSEWHERE = {
    "fake_vllm/*": "tests/fake_vllm/test_fake_vllm.py drives the server over HTTP as a whole",
    "testing/*": "the harness every test runs on; tests/testing/test_pytest_plugin.py for the plugin",
    "errors": "the exception types; every stage's tests raise and catch them",
    "tokens": "client key hashing, proved with feedback ownership in tests/feedback/test_api.py",
    "server/app": "composition: every test that starts a sidecar builds one",
    "server/serve": "the run loop: tests/logqueue/test_writer_durability.py (SIGTERM, SIGKILL) "
    "and tests/logqueue/test_segments_locked.py run `sidecar serve` itself",
    "server/asgi": "sockets and uvicorn settings: tests/hostile/test_connections.py",
    "server/http_head": "bounded request heads: tests/hostile (framing, slow clients, connections)",
    "settings/checks": "cross-field checks: tests/settings/test_explain.py",
    "settings/values": "the shared limits: tests/settings/test_explain.py",
    "settings/judging": "declarations, loaded in tests/settings (explain, reference, sections)",
    "settings/monitoring": "declarations, loaded in tests/settings (explain, reference, sections)",
    "settings/recording": "declarations, loaded in tests/settings (explain, reference, sections)",
    "asgi_types": "type aliases only",
    "proxy/responses": "the sidecar's own OpenAI-shaped errors: tests/proxy/test_app.py, tests/hostile",
    "records/windows": "the window every report and reader takes: tests/reports, tests/alerts",
    "judge/baselines": "quality baselines from judge scores: tests/judge/test_runner.py (baseline set)",
    "reports/traffic": "every report runs through run_report in tests/reports/test_base.py",
    "reports/compliance": "every report runs through run_report in tests/reports/test_base.py",
    "reports/quality": "tests/judge/test_runner.py reads it after a baseline is set",
    "reports/drift": "tests/drift/test_job_end_to_end.py reads it after a drift run",
    "reports/render": "csv, json and text in tests/reports/test_base.py and tests/cli/test_report.py",
    "reports/catalog": "the registry: tests/reports/test_base.py lists every report",
    "store/alerts": "alert state and events: tests/alerts/test_job.py, tests/cli/test_alerts.py",
    "store/baselines": "tests/judge/test_runner.py and tests/drift/test_job.py pin and read them",
    "store/drift": "drift runs saved and read: tests/drift/test_job.py",
    "store/feedback": "feedback upserts and ownership: tests/feedback/test_api.py",
    "store/judgements": "claims and verdicts: tests/judge/test_job.py",
    "store/tables/*": "table definitions: tests/store/test_migrate.py checks them against the "
    "migrations (alembic check) on SQLite and Postgres",
    "store/windows": "shared window queries: tests/alerts/test_readers.py, tests/reports/test_base.py",
    "wire/cut_json": "the summary of a cut response: tests/proxy/test_capture.py (bounded capture)",
    "wire/identity": "base model and adapter: tests/proxy/test_catalog_adapters.py",
}
# Directories of suites that run a whole sidecar (or the real vLLM) and read what comes out.
OUTSIDE_IN = {"scenarios", "hostile", "replicas", "vllm", "deploy"}
# Top-level test files that check the repository itself rather than one module.
REPOSITORY_CHECKS = {"test_docs_claims", "test_docs_faults", "test_docs_sql", "test_layers",
                     "test_filenames"}  # fmt: skip


def _modules() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).with_suffix("")
        if relative.name not in {"__init__", "__main__"}:
            found.append(relative.as_posix())
    return found


def _test_files() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def _covered_elsewhere(module: str) -> bool:
    parts = module.split("/")
    folders = ("/".join(parts[:end]) + "/*" for end in range(1, len(parts)))
    return module in TESTED_ELSEWHERE or any(folder in TESTED_ELSEWHERE for folder in folders)


def _tests_of(module: str) -> list[Path]:
    folder, _, name = module.rpartition("/")
    directory = TESTS / folder if folder else TESTS
    return [path for path in directory.glob(f"test_{name}*.py")
            if path.stem == f"test_{name}" or path.stem.startswith(f"test_{name}_")]  # fmt: skip


def test_every_module_has_a_test_file() -> None:
    missing = [f"sidecar/{module}.py: no tests/{module.rpartition('/')[0] or '.'}"
               f"/test_{module.rpartition('/')[2]}.py"
               for module in _modules() if not _tests_of(module) and not _covered_elsewhere(module)]  # fmt: skip
    assert not missing, "add a test file, or say in TESTED_ELSEWHERE where it is tested:\n" + (
        "\n".join(missing)
    )


def test_every_unit_test_file_names_a_module() -> None:
    known = set(_modules())
    orphans = []
    for path in _test_files():
        relative = path.relative_to(TESTS)
        if relative.parts[0] in OUTSIDE_IN or path.stem in REPOSITORY_CHECKS:
            continue
        folder = "/".join(relative.parts[:-1])
        stem = path.stem.removeprefix("test_")
        candidates = {f"{folder}/{stem[:cut]}".lstrip("/") for cut in _cuts(stem)}
        if not candidates & known and stem != folder.split("/")[-1]:
            orphans.append(str(relative))
    assert not orphans, (
        "these test files name no module in sidecar/ (rename them after the module they test, "
        "or move an outside-in suite under one of "
        + ", ".join(sorted(OUTSIDE_IN))
        + "):\n"
        + "\n".join(orphans)
    )


def test_the_allow_list_names_real_modules() -> None:
    known = set(_modules())
    parts = {module.split("/")[0] for module in known}
    folders = {module.rpartition("/")[0] for module in known} | parts
    stale = [entry for entry in TESTED_ELSEWHERE
             if entry not in known and entry.removesuffix("/*") not in folders]  # fmt: skip
    assert not stale, f"TESTED_ELSEWHERE names modules that no longer exist: {stale}"


def _cuts(stem: str) -> list[int]:
    """Where ``stem`` may end its module name: the whole, or before any ``_<aspect>``."""
    return [len(stem)] + [index for index, char in enumerate(stem) if char == "_"]
