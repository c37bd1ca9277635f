"""The store: tables (``tables``), the async engine (``engine``), idempotent writes
(``writes``) and Alembic migrations (``migrate``), on Postgres or SQLite.

ORM rows never leave this package; other stages hand in :mod:`sidecar.records` types.
Import from the modules themselves (this package imports nothing, so ``writes`` does not
pull in Alembic).
"""
