"""The log queue: a durable local spool the proxy appends to, drained into the store."""

from sidecar.logqueue.spool import Spool, SpoolBatch, SpoolLocked, SpoolPosition

__all__ = ["Spool", "SpoolBatch", "SpoolLocked", "SpoolPosition"]
