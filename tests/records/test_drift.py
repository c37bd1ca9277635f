"""A feature's drift result survives the JSON column it is stored in."""

from __future__ import annotations

from sidecar.records import FeatureDrift

RESULT = FeatureDrift(
    feature="user_words", kind="text", statistic="chi2", value=0.0012, threshold=0.05,
    drifted=True, n_ref=400, n_cur=380, psi=0.31, reason=None,
    reference_summary={"refund": 0.2}, current_summary={"flight": 0.3},
    top_movers=(("flight", 0.01, 0.3), ("refund", 0.2, 0.05)),
)  # fmt: skip


def test_as_json_and_back_is_the_same_result() -> None:
    assert FeatureDrift.from_json(RESULT.as_json()) == RESULT


def test_keys_from_a_later_version_are_ignored() -> None:
    stored = {**RESULT.as_json(), "added_later": [1, 2]}
    assert FeatureDrift.from_json(stored) == RESULT


def test_movers_read_back_as_tuples_of_text_and_floats() -> None:
    stored = {**RESULT.as_json(), "top_movers": [["7", "0.5", 1]]}
    assert FeatureDrift.from_json(stored).top_movers == (("7", 0.5, 1.0),)
