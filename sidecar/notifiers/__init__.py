"""Where alerts go: Slack, generic webhooks (Alertmanager v4 shape), the log."""
