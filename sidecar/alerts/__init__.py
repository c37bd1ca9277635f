"""Alerts: readings per rule and scope -> lifecycle transitions -> notifications (work in progress:
the pure core; rule readers, persistence, outbox delivery and the scheduler come next)."""
