"""The tables, as SQLAlchemy Core ``Table`` objects on one :data:`metadata` (grouped by concern).

The migrations in ``migrations/versions`` build the same schema; ``sidecar.store.migrate.check``
(and its test) prove the two agree. Column comments are the reference for SQL users. Importing
this package defines every table, so ``metadata`` is complete wherever it is used.
"""

from sidecar.store.tables.alerts import (
    alert_events_table,
    alert_outbox_table,
    alert_silences_table,
    alert_state_table,
)
from sidecar.store.tables.base import NAMING_CONVENTION, UtcDateTime, json_document, metadata
from sidecar.store.tables.feedback import feedback_table
from sidecar.store.tables.requests import requests_table
from sidecar.store.tables.scoring import baselines_table, drift_checks_table, judgements_table

__all__ = [
    "NAMING_CONVENTION",
    "UtcDateTime",
    "alert_events_table",
    "alert_outbox_table",
    "alert_silences_table",
    "alert_state_table",
    "baselines_table",
    "drift_checks_table",
    "feedback_table",
    "json_document",
    "judgements_table",
    "metadata",
    "requests_table",
]
