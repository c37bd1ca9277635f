"""vLLM monitoring and drift-detection sidecar."""

__version__ = "0.1.0"
