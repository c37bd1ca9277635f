"""Parse and check a feedback body (pure): a Feedback, or an error that names the field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import msgspec

from sidecar.records import Feedback

MAX_COMMENT_CHARS = 4000
MAX_ID_CHARS = 200
THUMBS = {"up": 5, "down": 1}


class FeedbackBody(msgspec.Struct, forbid_unknown_fields=True):
    request_id: str
    rating: str | int
    escalated: bool = False
    comment: str | None = None
    user: str | None = None


@dataclass(frozen=True, slots=True)
class BodyError:
    status: int
    field: str | None
    message: str


def parse_feedback(raw: bytes, now: datetime) -> Feedback | BodyError:
    """The feedback in ``raw`` (JSON), with ``request_id`` as the client sent it."""
    try:
        body = msgspec.json.decode(raw, type=FeedbackBody)
    except msgspec.ValidationError as exc:
        return _validation_error(str(exc))
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return BodyError(400, None, f"the body is not valid JSON (UTF-8): {exc}")
    if not 0 < len(body.request_id) <= MAX_ID_CHARS:
        return BodyError(
            422, "request_id", "request_id: must be the X-Request-Id or completion id of a response"
        )
    score = _score(body.rating)
    if score is None:
        return BodyError(
            422, "rating", f'rating: must be "up", "down" or an integer 1-5, got {body.rating!r}'
        )
    if body.comment is not None and len(body.comment) > MAX_COMMENT_CHARS:
        return BodyError(
            422,
            "comment",
            f"comment: at most {MAX_COMMENT_CHARS} characters, got {len(body.comment)}",
        )
    if body.user is not None and len(body.user) > MAX_ID_CHARS:
        return BodyError(422, "user", f"user: at most {MAX_ID_CHARS} characters")
    return Feedback(
        request_id=body.request_id, user_id=body.user or "", rating=str(body.rating), score=score,
        satisfied=score >= 4, escalated=body.escalated, comment=body.comment,
        created_at=now, updated_at=now,
    )  # fmt: skip


def _score(rating: str | int) -> int | None:
    if isinstance(rating, int):
        return rating if 1 <= rating <= 5 else None
    return THUMBS.get(rating.lower())


def _validation_error(text: str) -> BodyError:
    """msgspec's ``Expected `str`, got `int` - at `$.user``` -> ``user: expected str, got int``."""
    match = re.search(r" - at `\$\.?([^`]*)`$", text)
    field = match.group(1) if match else None
    reason = text[: match.start()] if match else text
    unknown = re.match(r"Object contains unknown field `([^`]+)`", reason)
    if unknown:
        return BodyError(422, unknown.group(1),
                         f"{unknown.group(1)}: unknown field; send request_id, rating, escalated, comment, user")  # fmt: skip
    missing = re.match(r"Object missing required field `([^`]+)`", reason)
    if missing:
        return BodyError(422, missing.group(1), f"{missing.group(1)}: required")
    return BodyError(422, field, f"{field or 'body'}: {reason.replace('`', '')}")
