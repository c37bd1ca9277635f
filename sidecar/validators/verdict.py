"""The verdict on one output against one schema (pure).

``valid``       parsed and conforms;
``invalid``     parsed, does not conform (errors carry JSON pointers);
``unparseable`` not JSON (the error carries the parse position);
``truncated``   the model stopped at ``max_tokens`` (finish_reason ``length``) before valid JSON;
``schema_error`` the schema itself is unusable (unknown name, invalid request schema).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

from sidecar.records import SchemaIssue, SchemaVerdict, Verdict
from sidecar.validators.extraction import extract_json

MAX_ERRORS = 5


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to check: an output text against a compiled schema."""

    text: str | None
    validator: Validator | None
    what: str = ""  # "" for the message content, "tool_calls[0] triage" for a tool call's arguments
    allow_fence: bool = True  # accept one fenced ```json block around the document


def pointer(parts: Any) -> str:
    """RFC 6901 JSON pointer for a jsonschema error path."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def check_document(document: Any, validator: Validator, prefix: str = "") -> list[SchemaIssue]:
    """Up to MAX_ERRORS + 1 issues (the extra one tells the caller there were more)."""
    try:
        errors = list(itertools.islice(validator.iter_errors(document), MAX_ERRORS + 1))
    except RecursionError:
        return [SchemaIssue(prefix or "/", "document nested too deeply to validate")]
    return [_issue(error, prefix) for error in errors]


def _issue(error: ValidationError, prefix: str) -> SchemaIssue:
    return SchemaIssue(prefix + pointer(error.absolute_path) or "/", error.message[:500])


def judge(schema_name: str, targets: list[Target], finish_reason: str | None) -> SchemaVerdict:
    """Combine the checks of every target into one verdict for the row."""
    issues: list[SchemaIssue] = []
    verdict = Verdict.VALID
    total_errors = 0
    for target in targets:
        if target.validator is None:
            return SchemaVerdict(schema_name, Verdict.SCHEMA_ERROR, 1,
                                 (SchemaIssue("/", f"no usable schema for {target.what or 'output'}"),))  # fmt: skip
        prefix = f"{target.what}:" if target.what else ""
        if target.text is None:
            verdict = _worse(verdict, Verdict.UNPARSEABLE)
            issues.append(SchemaIssue(prefix + "/", "no output to validate"))
            total_errors += 1
            continue
        extracted = extract_json(target.text, allow_fence=target.allow_fence)
        if not extracted.ok:
            kind = Verdict.TRUNCATED if finish_reason == "length" else Verdict.UNPARSEABLE
            verdict = _worse(verdict, kind)
            where = f" at position {extracted.position}" if extracted.position is not None else ""
            issues.append(SchemaIssue(prefix + "/", f"{extracted.error}{where}"))
            total_errors += 1
            continue
        found = check_document(extracted.document, target.validator, prefix)
        if found:
            verdict = _worse(verdict, Verdict.INVALID)
            issues.extend(found[:MAX_ERRORS])
            total_errors += len(found)
    return SchemaVerdict(schema_name, verdict, total_errors, tuple(issues[:MAX_ERRORS]))


_SEVERITY = {Verdict.VALID: 0, Verdict.INVALID: 1, Verdict.TRUNCATED: 2, Verdict.UNPARSEABLE: 3,
             Verdict.SCHEMA_ERROR: 4}  # fmt: skip


def _worse(current: str, new: str) -> str:
    return new if _SEVERITY[new] > _SEVERITY[current] else current
