"""The log path's sections: database, request log, spool and writer."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from sidecar.settings.values import MiB, PositiveFloat, PositiveInt, Section

DEFAULT_DATABASE_URL = "sqlite:///.sidecar/sidecar.db"


class DatabaseSettings(Section, frozen=True):
    """Where the log, the verdicts, scores, drift checks and alerts are stored."""

    url: Annotated[
        str,
        Meta(
            extra={"allowed": "a `postgresql://`, `postgres://` or `sqlite:///` URL"},
            description=(
                "`postgresql://user@host:5432/db` or `sqlite:///path.db`; the async driver is "
                "picked for you. Env: `SIDECAR_DATABASE_URL`."
            ),
        ),
    ] = DEFAULT_DATABASE_URL
    auto_migrate: Annotated[
        bool,
        Meta(
            description=(
                "`serve` upgrades the schema at start (`--no-migrate` turns it off; run `sidecar "
                "db upgrade` yourself then)."
            )
        ),
    ] = True
    pool_size: Annotated[
        PositiveInt,
        Meta(
            description=(
                "Connections each sidecar keeps to the database, shared by the writer, the jobs "
                "and the admin reports; raise it when they queue for a connection."
            )
        ),
    ] = 5
    statement_timeout_s: Annotated[
        PositiveFloat,
        Meta(
            description=(
                "Longest a report may run (`sidecar report`, the admin port's reports); past it "
                "the query is cancelled and the error says this key."
            )
        ),
    ] = 30.0


class RequestLogSettings(Section, frozen=True):
    """What of each request and response is logged."""

    bodies: Annotated[
        Literal["full", "redacted", "none"],
        Meta(
            description=(
                "Body logging policy: `full`, `redacted` (e-mails, phone, card, national-id and "
                "IBAN numbers masked in every string), or `none` (no bodies, everything else "
                "logged)."
            )
        ),
    ] = "full"
    max_body_bytes: Annotated[
        PositiveInt,
        Meta(description=("Bodies larger than this are logged as a short note with their size.")),
    ] = 1 * MiB


class SpoolSettings(Section, frozen=True):
    """The durable local spool: every record is written here before the database, so an outage
    or a restart loses nothing."""

    dir: Annotated[
        str,
        Meta(
            description=(
                "Local directory of the durable log spool (one sidecar process per directory; it "
                "is locked)."
            )
        ),
    ] = ".sidecar/spool"
    max_bytes: Annotated[
        PositiveInt,
        Meta(
            description=(
                "Bound on records waiting for the database. When reached, new records are dropped "
                "(policy `drop_new`), counted in "
                '`sidecar_log_rows_lost_total{reason="spool_full"}` and logged; requests keep '
                "being served. A disk that fills up first drops them the same way as `disk_full` "
                "(docs/operations.md)."
            )
        ),
    ] = 1024 * MiB
    segment_bytes: Annotated[
        PositiveInt,
        Meta(
            extra={"allowed": "> 0, <= `spool.max_bytes`"},
            description=(
                "Size of one spool segment file. A segment is deleted once all its records are "
                "stored, so the spool takes about what waits for the database, plus up to two "
                "segments."
            ),
        ),
    ] = 64 * MiB
    fsync: Annotated[
        Literal["always", "interval", "never"],
        Meta(
            description=(
                "`always` (fsync every record: survives power loss, slower), `interval` (fsync "
                "every `fsync_interval_s`), `never` (the OS decides). A killed process loses "
                "nothing in any mode; only a machine crash can lose up to one interval."
            )
        ),
    ] = "interval"
    fsync_interval_s: Annotated[
        PositiveFloat,
        Meta(
            description=(
                "Seconds between fsyncs with `fsync: interval`: the most a machine crash can lose."
            )
        ),
    ] = 1.0
    full_policy: Annotated[
        Literal["drop_new"],
        Meta(
            description=(
                "What happens when the spool is full: `drop_new` (the only policy: serving always "
                "wins over logging)."
            )
        ),
    ] = "drop_new"


class WriterSettings(Section, frozen=True):
    """The writer that moves records from the spool into the database, in batches."""

    workers: Annotated[
        int,
        Meta(
            ge=0,
            extra={"must": "be 0 (build rows in-process) or more"},
            description=(
                "Processes that build the rows (decode, reassemble streams, apply the body policy, "
                "check schemas, compute drift features at ~40 us), so the writer's CPU work never "
                "shares the proxy's event loop; started on the first batch, each building a share "
                "of the batch. `0` builds rows inside the sidecar's own process, where no deadline "
                "can stop a record: the schema check matches patterns in linear time and the other "
                "steps are bounded by the record's size, but a worker is the safer choice. A "
                "worker that dies is replaced and its batch built again."
            ),
        ),
    ] = 1
    batch_size: Annotated[
        PositiveInt,
        Meta(
            description=(
                "Most rows inserted per transaction; larger batches write heavy traffic in fewer "
                "transactions."
            )
        ),
    ] = 500
    linger_s: Annotated[
        PositiveFloat,
        Meta(
            description=(
                "After a batch smaller than `batch_size`, wait this long before the next, so busy "
                "traffic is written in fewer, larger transactions (rows reach the database at most "
                "this much later)."
            )
        ),
    ] = 0.05
    idle_poll_s: Annotated[
        PositiveFloat,
        Meta(
            description=(
                "How often an idle writer looks at the spool (it is also woken by each new record)."
            )
        ),
    ] = 0.2
    retry_initial_s: Annotated[
        PositiveFloat,
        Meta(description=("First wait after a failed database write; doubles on each failure.")),
    ] = 0.5
    retry_max_s: Annotated[
        PositiveFloat, Meta(description=("Longest wait between database write retries."))
    ] = 30.0
    record_deadline_s: Annotated[
        PositiveFloat,
        Meta(
            description=(
                "Longest a row worker may spend on one record. Past it the worker is killed and "
                "replaced and the batch built again; a record that fails a second time (past the "
                "deadline or killing its worker) is logged without its schema check and drift "
                "features (verdict `check_timeout`, counted in `sidecar_log_rows_degraded_total`), "
                "so no record is replayed into the same failure. Needs `writer.workers` of 1 or "
                "more."
            )
        ),
    ] = 2.0
