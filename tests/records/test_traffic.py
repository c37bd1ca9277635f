"""A logged request maps onto the ``requests`` table column for column."""

from __future__ import annotations

import dataclasses

from sidecar.records import ErrorKind, LoggedRequest, Verdict
from sidecar.store.tables import requests_table
from sidecar.testing.factories import logged_request


def test_every_field_is_a_column_of_requests() -> None:
    fields = {field.name for field in dataclasses.fields(LoggedRequest)}
    assert fields <= set(requests_table.c.keys())
    assert logged_request().as_row().keys() == fields


def test_error_kinds_and_verdicts_are_their_stored_text() -> None:
    assert str(ErrorKind.UPSTREAM_RESET) == "upstream_reset"
    assert Verdict("check_timeout") is Verdict.CHECK_TIMEOUT
    assert {kind.value for kind in ErrorKind} >= {"upstream_unreachable", "client_too_slow"}
