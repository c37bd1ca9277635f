"""Shipped test helpers: the fake vLLM server and servers on port 0 (used by tests and the demo)."""
