"""Sample reasons are the strings stored in the database, and only blind draws count as unbiased."""

from __future__ import annotations

from sidecar.records import FAILED_VERDICTS, UNBIASED_REASONS, SampleReason, Verdict


def test_sample_reasons_are_their_stored_text() -> None:
    assert str(SampleReason.THUMBS_DOWN) == "thumbs_down"
    assert f"{SampleReason.BATCH}" == "batch"
    assert SampleReason("schema_invalid") is SampleReason.SCHEMA_INVALID


def test_reasons_chosen_by_looking_at_the_answer_are_never_unbiased() -> None:
    looked = {SampleReason.SCHEMA_INVALID, SampleReason.ERROR, SampleReason.THUMBS_DOWN}
    assert not looked & UNBIASED_REASONS
    assert UNBIASED_REASONS | looked == set(SampleReason)


def test_failed_verdicts_are_the_format_failures() -> None:
    assert {Verdict.INVALID, Verdict.UNPARSEABLE, Verdict.TRUNCATED} == FAILED_VERDICTS
