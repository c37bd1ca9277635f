"""The verdict on one output against one schema (pure).

``valid``       parsed and conforms;
``invalid``     parsed, does not conform (errors carry JSON pointers);
``unparseable`` not JSON (the error carries the parse position);
``truncated``   the model stopped at ``max_tokens`` (finish_reason ``length``) before valid JSON;
``schema_error`` the schema itself is unusable (unknown name, invalid request schema);
``check_timeout`` the check could not finish: a pattern ran past its backtracking limit here,
               or (set by the writer) the row's build ran past ``writer.record_deadline_s``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
from jsonschema_rs import ValidationError, Validator

from sidecar.records import SchemaIssue, SchemaVerdict, Verdict
from sidecar.validators.extraction import extract_json
from sidecar.validators.registry import Unusable

MAX_ERRORS = 5


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to check: an output text against a compiled schema."""

    text: str | None
    validator: Validator | Unusable | None
    what: str = ""  # "" for the message content, "tool_calls[0] triage" for a tool call's arguments
    allow_fence: bool = True  # accept one fenced ```json block around the document


def pointer(parts: Any) -> str:
    """RFC 6901 JSON pointer for a jsonschema error path."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


@dataclass(frozen=True, slots=True)
class Checked:
    issues: list[SchemaIssue]
    timed_out: bool = False  # a pattern ran past its backtracking limit: no verdict on it


def check_document(document: Any, validator: Validator, prefix: str = "") -> Checked:
    """Up to MAX_ERRORS + 1 issues (the extra one tells the caller there were more)."""
    try:
        errors = list(itertools.islice(validator.iter_errors(document), MAX_ERRORS + 1))
    except (RecursionError, ValueError, OverflowError):
        return Checked([SchemaIssue(prefix or "/", "document nested too deeply to validate")])
    timed_out = [error for error in errors if _backtracked_too_long(error)]
    if timed_out:
        where = prefix + pointer(timed_out[0].instance_path) or "/"
        issue = SchemaIssue(where, "pattern matching ran past its backtracking limit; not checked")
        return Checked([issue], timed_out=True)
    return Checked([_issue(error, prefix) for error in errors])


def _backtracked_too_long(error: ValidationError) -> bool:
    return isinstance(error.kind, jsonschema_rs.ValidationErrorKind.BacktrackLimitExceeded)


def _issue(error: ValidationError, prefix: str) -> SchemaIssue:
    return SchemaIssue(prefix + pointer(error.instance_path) or "/", error.message[:500])


def judge(schema_name: str, targets: list[Target], finish_reason: str | None) -> SchemaVerdict:
    """Combine the checks of every target into one verdict for the row."""
    issues: list[SchemaIssue] = []
    verdict = Verdict.VALID
    total_errors = 0
    for target in targets:
        if target.validator is None or isinstance(target.validator, Unusable):
            reason = (target.validator.reason if isinstance(target.validator, Unusable)
                      else f"no usable schema for {target.what or 'output'}")  # fmt: skip
            return SchemaVerdict(schema_name, Verdict.SCHEMA_ERROR, 1, (SchemaIssue("/", reason),))
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
        checked = check_document(extracted.document, target.validator, prefix)
        if checked.issues:
            verdict = _worse(
                verdict, Verdict.CHECK_TIMEOUT if checked.timed_out else Verdict.INVALID
            )
            issues.extend(checked.issues[:MAX_ERRORS])
            total_errors += len(checked.issues)
    return SchemaVerdict(schema_name, verdict, total_errors, tuple(issues[:MAX_ERRORS]))


_SEVERITY = {Verdict.VALID: 0, Verdict.INVALID: 1, Verdict.TRUNCATED: 2, Verdict.UNPARSEABLE: 3,
             Verdict.CHECK_TIMEOUT: 4, Verdict.SCHEMA_ERROR: 5}  # fmt: skip


def _worse(current: Verdict, new: Verdict) -> Verdict:
    return new if _SEVERITY[new] > _SEVERITY[current] else current
