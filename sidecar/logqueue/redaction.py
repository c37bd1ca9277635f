"""Body logging policy ``redacted``: mask personal data in every string of a JSON body (pure)."""

from __future__ import annotations

import re
from typing import Any

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# 13-19 digits, optionally grouped by spaces or dashes; checked with Luhn before masking.
CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
# US SSN-style and generic national-id-like groups (3-2-4), and IBANs.
NATIONAL_ID = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
PHONE = re.compile(r"(?<![\w+])\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{2,4}\)?){2,5}(?!\w)")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[CARD]" if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _mask_phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    if ISO_DATE.fullmatch(text) or not 7 <= len(digits) <= 15:
        return text
    return "[PHONE]"


def redact_text(text: str) -> str:
    """Mask e-mail addresses, card numbers, national ids, IBANs and phone numbers."""
    text = EMAIL.sub("[EMAIL]", text)
    text = CARD.sub(_mask_card, text)
    text = NATIONAL_ID.sub("[ID]", text)
    text = IBAN.sub("[IBAN]", text)
    return PHONE.sub(_mask_phone, text)


def redact(value: Any) -> Any:
    """Apply :func:`redact_text` to every string value (keys are kept as they are)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value
