"""The feedback body (pure): a Feedback, or a 4xx that names the field and says what to send."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sidecar.feedback.body import MAX_COMMENT_CHARS, BodyError, parse_feedback
from sidecar.records import Feedback

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("rating", "score", "satisfied"),
    [("up", 5, True), ("DOWN", 1, False), (4, 4, True), (3, 3, False), (1, 1, False)],
)
def test_thumbs_and_scores_map_to_one_scale(rating: object, score: int, satisfied: bool) -> None:
    body = f'{{"request_id": "r1", "rating": {rating!r}, "user": "u"}}'.replace("'", '"')
    parsed = parse_feedback(body.encode(), NOW)
    assert isinstance(parsed, Feedback)
    assert (parsed.score, parsed.satisfied, parsed.user_id) == (score, satisfied, "u")
    assert parsed.created_at == parsed.updated_at == NOW


@pytest.mark.parametrize(
    ("raw", "status", "field", "says"),
    [
        (b'{"request_id": "r1", "rating": "meh"}', 422, "rating", '"up", "down" or an integer 1-5'),
        (b'{"request_id": "r1", "rating": 6}', 422, "rating", "got 6"),
        (b'{"request_id": "", "rating": "up"}', 422, "request_id", "X-Request-Id"),
        (b'{"rating": "up"}', 422, "request_id", "required"),
        (b'{"request_id": "r1", "rating": "up", "stars": 3}', 422, "stars", "unknown field"),
        (b'{"request_id": 7, "rating": "up"}', 422, "request_id", "Expected str"),
        (
            b'{"request_id": "r1", "rating": "up", "user": "' + b"u" * 201 + b'"}',
            422,
            "user",
            "200",
        ),
        (b'{"request_id": "r1",', 400, None, "not valid JSON"),
        (b"\xff\xfe", 400, None, "not valid JSON"),
    ],
)
def test_bad_bodies_name_the_field(raw: bytes, status: int, field: str | None, says: str) -> None:
    parsed = parse_feedback(raw, NOW)
    assert isinstance(parsed, BodyError)
    assert (parsed.status, parsed.field) == (status, field)
    assert says in parsed.message


def test_a_comment_over_the_limit_says_the_limit_and_the_length() -> None:
    comment = "x" * (MAX_COMMENT_CHARS + 1)
    raw = f'{{"request_id": "r1", "rating": "down", "comment": "{comment}"}}'.encode()
    parsed = parse_feedback(raw, NOW)
    assert isinstance(parsed, BodyError)
    assert parsed.message == f"comment: at most {MAX_COMMENT_CHARS} characters, got {len(comment)}"
