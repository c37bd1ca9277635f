"""Body policy ``redacted``: personal data masked, everything else kept."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sidecar.logqueue.redaction import redact, redact_text


def test_masks_emails_phones_cards_ids_and_ibans() -> None:
    text = ("write to jane.roe@example.org or +1 (415) 555-2671; card 4111 1111 1111 1111; "
            "ssn 123-45-6789; iban DE89 3704 0044 0532 0130 00")  # fmt: skip
    assert redact_text(text) == ("write to [EMAIL] or [PHONE]; card [CARD]; ssn [ID]; iban [IBAN]")


def test_keeps_dates_prices_order_numbers_and_non_luhn_digit_runs() -> None:
    text = "order 12345 on 2024-01-15 costs 3.50; ref 1234 5678 9012 3456"
    assert redact_text(text) == text


def test_redacts_inside_nested_json_and_keeps_keys() -> None:
    body = {"messages": [{"role": "user", "content": "mail a@b.co"}], "n": 1, "email@x.io": True}
    assert redact(body) == {
        "messages": [{"role": "user", "content": "mail [EMAIL]"}], "n": 1, "email@x.io": True,
    }  # fmt: skip


@given(st.text(max_size=300))
def test_never_raises_and_is_idempotent(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once
