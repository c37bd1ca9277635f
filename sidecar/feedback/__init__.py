"""End-user feedback: ``POST /sidecar/v1/feedback`` on the proxy port."""
