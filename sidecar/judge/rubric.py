"""Rubrics (YAML), the judge's prompt, and parsing its verdict (all pure).

A rubric names criteria, each scored on one integer scale; the overall score is their weighted
mean. The judge is asked for ``{"scores": {criterion: n, ...}, "rationale": "..."}`` through
``response_format`` json_schema; anything else is a :class:`JudgeReplyError`, never a score.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from sidecar.errors import ConfigError

ANSWER_START, ANSWER_END = "<response>", "</response>"


@dataclass(frozen=True, slots=True)
class Criterion:
    name: str
    description: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Rubric:
    name: str
    criteria: tuple[Criterion, ...]
    scale_min: int = 1
    scale_max: int = 5
    instructions: str = ""
    reference_field: str | None = None  # dotted path into the request body, e.g. metadata.reference

    @property
    def version(self) -> str:
        """A short hash of everything that changes what a score means."""
        canonical = orjson.dumps(
            [
                self.name,
                self.scale_min,
                self.scale_max,
                self.instructions,
                self.reference_field,
                [[c.name, c.description, c.weight] for c in self.criteria],
            ]
        )
        return hashlib.sha256(canonical).hexdigest()[:12]


DEFAULT_RUBRIC = Rubric(
    "default",
    (
        Criterion("correctness", "Facts, reasoning and any extracted values are right."),
        Criterion("helpfulness", "It answers what was asked, completely and without padding."),
        Criterion("format", "It follows the requested format (JSON, length, structure) exactly."),
        Criterion("tone", "Polite, professional and appropriate for the audience."),
    ),
)


def load_rubric(path: str | Path) -> Rubric:
    """Read a rubric YAML file; errors name the file and the field."""
    where = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"rubric {where}: cannot be read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"rubric {where}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"rubric {where}: the top level must be a mapping")
    unknown = set(raw) - {"name", "scale", "criteria", "instructions", "reference_field"}
    if unknown:
        raise ConfigError(f"rubric {where}: unknown key {sorted(unknown)[0]!r}")
    scale = raw.get("scale", [1, 5])
    if not (
        isinstance(scale, list)
        and len(scale) == 2
        and all(isinstance(v, int) for v in scale)
        and scale[0] < scale[1]
    ):
        raise ConfigError(f"rubric {where}: scale must be [low, high] integers, e.g. [1, 5]")
    criteria = raw.get("criteria")
    if not isinstance(criteria, list) or not criteria:
        raise ConfigError(f"rubric {where}: criteria must be a non-empty list")
    parsed = [
        _criterion(entry, f"{where}: criteria[{index}]") for index, entry in enumerate(criteria)
    ]
    if len({c.name for c in parsed}) != len(parsed):
        raise ConfigError(f"rubric {where}: criteria names must be unique")
    return Rubric(
        str(raw.get("name") or Path(path).stem),
        tuple(parsed),
        scale[0],
        scale[1],
        str(raw.get("instructions") or ""),
        raw.get("reference_field"),
    )


def _criterion(entry: Any, where: str) -> Criterion:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ConfigError(f"rubric {where}: each criterion needs a name and a description")
    weight = entry.get("weight", 1.0)
    if not isinstance(weight, int | float) or weight <= 0:
        raise ConfigError(f"rubric {where}.weight: must be a number above 0")
    return Criterion(entry["name"], str(entry.get("description", "")), float(weight))


@dataclass(frozen=True, slots=True)
class JudgeInput:
    """What the judge sees: the conversation, the answer and an optional reference answer."""

    prompt: str
    answer: str
    reference: str | None = None


class NotJudgeable(Exception):
    """The logged request has nothing the judge could score (the reason says why)."""


def judge_input(request_body: Any, response_body: Any, reference_field: str | None) -> JudgeInput:
    """Pull the conversation and the answer out of logged OpenAI bodies."""
    if request_body is None or response_body is None:
        raise NotJudgeable("bodies not stored (request_log.bodies is none)")
    if not isinstance(request_body, dict) or not isinstance(response_body, dict):
        raise NotJudgeable("bodies are not OpenAI JSON")
    prompt = _prompt_text(request_body)
    answer = _answer_text(response_body)
    if not prompt.strip():
        raise NotJudgeable("empty prompt")
    if not answer.strip():
        raise NotJudgeable("empty answer")
    reference = _lookup(request_body, reference_field) if reference_field else None
    return JudgeInput(prompt, answer, None if reference is None else str(reference))


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _prompt_text(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if isinstance(messages, list):
        return "\n\n".join(
            f"[{message.get('role', 'user')}]\n{_content(message.get('content'))}"
            for message in messages
            if isinstance(message, dict)
        )
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        return "\n".join(str(item) for item in prompt)
    return prompt if isinstance(prompt, str) else ""


def _answer_text(body: dict[str, Any]) -> str:
    choices = body.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(first, dict):
        return ""
    message = first.get("message")
    if isinstance(message, dict):
        text = _content(message.get("content"))
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            text += "\n[tool calls] " + orjson.dumps(calls).decode()
        return text
    completion = first.get("text")
    return completion if isinstance(completion, str) else ""


def _lookup(body: dict[str, Any], dotted: str) -> Any:
    value: Any = body
    for key in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def judge_messages(rubric: Rubric, item: JudgeInput) -> list[dict[str, str]]:
    criteria = "\n".join(f"- {c.name}: {c.description}" for c in rubric.criteria)
    system = (
        "You are a strict, fair evaluator of an AI assistant's response. Score each criterion "
        f"with an integer from {rubric.scale_min} (worst) to {rubric.scale_max} (best):\n"
        f"{criteria}\n{rubric.instructions}\n"
        'Reply with JSON only: {"scores": {<criterion>: <integer>, ...}, "rationale": '
        '"<one or two sentences>"}.'
    )
    user = f"## Conversation\n{item.prompt}\n\n## Response to evaluate\n{ANSWER_START}{item.answer}{ANSWER_END}"
    if item.reference is not None:
        user += f"\n\n## Reference answer\n{item.reference}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def verdict_format(rubric: Rubric) -> dict[str, Any]:
    """The ``response_format`` asking for the verdict's JSON shape."""
    score = {"type": "integer", "minimum": rubric.scale_min, "maximum": rubric.scale_max}
    names = [c.name for c in rubric.criteria]
    schema = {
        "type": "object",
        "properties": {
            "scores": {
                "type": "object",
                "properties": dict.fromkeys(names, score),
                "required": names,
                "additionalProperties": False,
            },
            "rationale": {"type": "string"},
        },
        "required": ["scores", "rationale"],
        "additionalProperties": False,
    }
    return {
        "type": "json_schema",
        "json_schema": {"name": "verdict", "schema": schema, "strict": True},
    }


class JudgeReplyError(Exception):
    """The judge answered, but not with a usable verdict."""


@dataclass(frozen=True, slots=True)
class Scores:
    overall: float  # weighted mean on the rubric's scale
    normalized: float  # overall mapped to 0-1
    criteria: dict[str, float]
    rationale: str


def parse_verdict(text: str | None, rubric: Rubric) -> Scores:
    """Validate the judge's reply against the rubric; raise rather than guess."""
    try:
        reply = orjson.loads(text or "")
    except orjson.JSONDecodeError as exc:
        raise JudgeReplyError(f"reply is not JSON: {(text or '')[:80]!r}") from exc
    scores = reply.get("scores") if isinstance(reply, dict) else None
    if not isinstance(scores, dict):
        raise JudgeReplyError("reply has no scores object")
    values: dict[str, float] = {}
    for criterion in rubric.criteria:
        value = scores.get(criterion.name)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise JudgeReplyError(
                f"score for {criterion.name!r} missing or not a number: {value!r}"
            )
        if not rubric.scale_min <= value <= rubric.scale_max:
            raise JudgeReplyError(
                f"score for {criterion.name!r} is {value}, outside "
                f"{rubric.scale_min}-{rubric.scale_max}"
            )
        values[criterion.name] = float(value)
    total_weight = sum(c.weight for c in rubric.criteria)
    overall = sum(values[c.name] * c.weight for c in rubric.criteria) / total_weight
    span = rubric.scale_max - rubric.scale_min
    rationale = reply.get("rationale")
    return Scores(
        overall,
        (overall - rubric.scale_min) / span,
        values,
        rationale if isinstance(rationale, str) else "",
    )
