"""Getting the JSON out of a model's output (pure, bounded): the document, or where it broke."""

from __future__ import annotations

from sidecar.validators.extraction import MAX_OUTPUT_BYTES, extract_json


def test_plain_json_is_the_document() -> None:
    found = extract_json(' {"priority": 2, "tags": ["a"]}\n')
    assert (found.ok, found.document, found.fenced) == (True, {"priority": 2, "tags": ["a"]}, False)


def test_one_fenced_block_is_unwrapped_only_when_allowed() -> None:
    text = 'Here you go:\n```json\n{"a": 1}\n```'
    assert not extract_json(text).ok  # prose before the fence: not "one fenced block"
    fenced = '```JSON\n{"a": 1}\n```\n'
    assert extract_json(fenced).document == {"a": 1}
    assert extract_json(fenced).fenced
    assert not extract_json(fenced, allow_fence=False).ok


def test_a_broken_fenced_block_reports_the_inner_error() -> None:
    found = extract_json('```json\n{"a": \n```')
    assert (found.ok, found.fenced) == (False, True)
    assert found.error


def test_a_parse_error_carries_its_position() -> None:
    found = extract_json('{"category": "billing",')
    assert not found.ok
    assert found.position is not None
    assert 0 < found.position <= len('{"category": "billing",')


def test_empty_and_oversized_outputs_are_refused_without_parsing() -> None:
    assert extract_json("  \n").error == "empty output"
    huge = "x" * (MAX_OUTPUT_BYTES + 1)
    assert "over the" in (extract_json(huge).error or "")


def test_lone_surrogates_in_the_text_do_not_raise() -> None:
    found = extract_json('{"a": "\ud800"}')
    assert not found.ok or found.document is not None
