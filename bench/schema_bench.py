"""Schema check engines on the shipped schemas: jsonschema (Python ``re``), jsonschema with
``google-re2`` for ``pattern``, and jsonschema-rs. Prints median microseconds per document.

    python -m bench.schema_bench

The documents are the ones the proxy bench and the validator tests use: a ~1 kB code review
(valid), a support triage (valid and invalid) and a clinical note (with ICD-10 patterns), plus
the hostile case of issue 13 (``^(a+)+$`` against 10,000 ``a`` and one ``b``; Python's ``re``
needs years for it, so it is run only for the linear engines).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from jsonschema.validators import extend

from bench.proxy_bench import REVIEW

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"

try:  # the candidate that was not chosen: not a dependency (pip install google-re2 to compare)
    import re2
except ImportError:
    re2 = None


def _re2_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    options = re2.Options()
    options.log_errors = False
    if validator.is_type(instance, "string") and not re2.search(pattern, instance, options):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


Re2Validator = extend(Draft202012Validator, {"pattern": _re2_pattern})


def _schema(name: str) -> Any:
    return orjson.loads((SCHEMAS / f"{name}.json").read_bytes())


TRIAGE_OK = {"category": "bug", "priority": 2, "sentiment": "angry", "summary": "printer jams",
             "needs_human": False, "customer_email": "a@b.co", "tags": ["printer", "hardware"]}  # fmt: skip
TRIAGE_BAD = {"category": "x", "priority": 9, "sentiment": "angry", "summary": "",
              "needs_human": "no", "extra": 1}  # fmt: skip
CLINICAL = {"patient_age": 67, "encounter_date": "2026-03-14",
            "diagnoses": [{"name": "Type 2 diabetes", "icd10": "E11.9", "status": "active"},
                          {"name": "Hypertension", "icd10": "I10"}],
            "medications": [{"name": "metformin", "dose": {"amount": 500, "unit": "mg"},
                             "frequency": "twice daily", "route": "oral"}]}  # fmt: skip
REDOS = ({"type": "string", "pattern": "^(a+)+$"}, "a" * 10_000 + "b")

CASES: list[tuple[str, Any, Any]] = [
    ("code_review, 1 kB, valid", _schema("code_review"), REVIEW),
    ("support_triage, valid", _schema("support_triage"), TRIAGE_OK),
    ("support_triage, 6 errors", _schema("support_triage"), TRIAGE_BAD),
    ("clinical_extraction, patterns", _schema("clinical_extraction"), CLINICAL),
    ("^(a+)+$ vs 10,001 chars", *REDOS),
]


def _engines(schema: Any) -> dict[str, Callable[[Any], int] | None]:
    python = Draft202012Validator(schema, format_checker=FormatChecker())
    with_re2 = Re2Validator(schema, format_checker=FormatChecker())
    rust = jsonschema_rs.validator_for(schema, validate_formats=True, offline=True)
    return {
        "jsonschema (re)": lambda doc: sum(1 for _ in python.iter_errors(doc)),
        "jsonschema + re2": (lambda doc: sum(1 for _ in with_re2.iter_errors(doc)))
        if re2 is not None
        else None,
        "jsonschema-rs": lambda doc: sum(1 for _ in rust.iter_errors(doc)),
    }


def _ignoring_argument(call: Callable[[], object]) -> Callable[[Any], object]:
    return lambda _: call()


def _median_us(check: Callable[[Any], object], document: Any, rounds: int = 7) -> float:
    loops = 200
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(loops):
            check(document)
        samples.append((time.perf_counter() - start) / loops * 1e6)
    return statistics.median(samples)


def main() -> None:
    names = list(_engines({}))
    print("| document | " + " | ".join(f"{name} us" for name in names) + " |")
    print("|---|" + "---|" * len(names))
    for label, schema, document in CASES:
        cells = []
        for name, check in _engines(schema).items():
            if name == "jsonschema (re)" and schema is REDOS[0]:
                cells.append("does not finish")
                continue
            if check is None:
                cells.append("not installed")
                continue
            cells.append(f"{_median_us(check, document):.1f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    clinical = _schema("clinical_extraction")
    compiles: list[Callable[[], object] | None] = [
        lambda: (
            Draft202012Validator.check_schema(clinical)
            or Draft202012Validator(clinical, format_checker=FormatChecker())
        ),
        (lambda: Re2Validator.check_schema(clinical) or Re2Validator(clinical))
        if re2 is not None
        else None,
        lambda: jsonschema_rs.validator_for(clinical, validate_formats=True, offline=True),
    ]
    cells = [f"{_median_us(_ignoring_argument(compile_), None):.1f}" if compile_ else "not installed"
             for compile_ in compiles]  # fmt: skip
    print("| compile clinical_extraction (once per schema) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
