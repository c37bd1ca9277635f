"""Imports point down the pipeline, never back up (read from the source, not from a running app).

``LAYERS`` is the whole contract: for each top-level part of ``sidecar/``, the parts it may
import. The shared vocabulary and plumbing import no stage; the store imports only those; the
proxy never touches the store; each stage imports only what comes before it. Adding a package
means placing it here, and the table itself must stay free of cycles.
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sidecar"

# Shared vocabulary and plumbing: every part may import these, they import no stage.
BASE = {
    "records",
    "errors",
    "settings",
    "logs",
    "metrics",
    "tokens",
    "scheduler",
    "wire",
    "asgi_types",
}

# What the sidecar is made of, composed by server/.
STAGES = {"store", "proxy", "validators", "judge", "drift", "logqueue", "feedback", "notifiers"}
STAGES |= {"alerts", "reports"}

LAYERS: dict[str, set[str]] = {
    "records": set(),
    "errors": set(),
    "settings": {"errors", "records"},
    "logs": set(),
    "tokens": set(),
    "asgi_types": set(),
    "metrics": {"records"},
    "wire": {"errors", "records"},  # what proxy and row builder both read: SSE, model identity
    "scheduler": {"errors", "logs", "metrics", "records"},
    "store": BASE,
    # The pipeline in order. The writer (logqueue) runs the row-level parts of later stages
    # (a verdict, the judge's sampling decision, drift features) on every row it writes.
    "proxy": BASE,
    "validators": BASE,
    "judge": BASE | {"store"},
    "drift": BASE | {"store"},
    "logqueue": BASE | {"store", "validators", "judge", "drift"},
    "feedback": BASE | {"store"},
    "notifiers": BASE,
    "alerts": BASE | {"store", "judge", "drift", "notifiers"},
    "reports": BASE | {"store", "judge"},
    # The edges: composition, the command line, the fake upstream, the test harness.
    "server": BASE | STAGES,
    "fake_vllm": {
        "asgi_types",
        "server.asgi",
    },  # a product of its own, served with the sidecar's uvicorn setup
    "testing": {"*"},
    "cli": {"*"},
}
# What the rules above mean module by module, where a part is allowed only one module of another.
NARROW = {"server.asgi"}


def parts() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        name = relative.parts[0].removesuffix(".py")
        if name not in {"__init__", "__main__", "py"}:
            yield name, path


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """``sidecar.x.y`` imports as ``(line, "x.y")``, module level and inside functions alike;
    ``from sidecar.x import y`` as ``x.y`` (``y`` may be a module)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith("sidecar."):
                yield node.lineno, name.removeprefix("sidecar.")


def allowed(part: str, target: str) -> bool:
    rules = LAYERS[part]
    top = target.split(".", maxsplit=1)[0]
    if top == part or "*" in rules or top in rules:
        return True
    return any(target == narrow or target.startswith(f"{narrow}.") for narrow in rules & NARROW)


def test_every_part_of_the_package_has_a_place_in_the_layers() -> None:
    unplaced = sorted({part for part, _ in parts()} - LAYERS.keys())
    assert not unplaced, f"add {unplaced} to LAYERS in {__file__}"


def test_the_layers_have_no_cycle() -> None:
    graph = {part: {rule.split(".")[0] for rule in rules if rule != "*"} - {part}
             for part, rules in LAYERS.items()}  # fmt: skip
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle


@pytest.mark.parametrize("part", sorted(LAYERS))
def test_imports_point_one_way(part: str) -> None:
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports sidecar.{target}"
        for name, path in parts()
        if name == part
        for line, target in imports_of(path)
        if not allowed(part, target)
    ]
    may = ", ".join(sorted(LAYERS[part])) or "no other part"
    assert not wrong, f"{part} may import only {may}:\n" + "\n".join(wrong)


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "late.py"
    module.write_text("import sidecar.errors\ndef f():\n    from sidecar.store import engine\n")
    assert list(imports_of(module)) == [(1, "errors"), (3, "store.engine")]
    assert not allowed("proxy", "store.engine")
    assert allowed("fake_vllm", "server.asgi.uvicorn_config")
    assert not allowed("fake_vllm", "server.app")
