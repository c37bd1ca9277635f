"""A faithful fake of vLLM's OpenAI-compatible server (``sidecar fake-vllm``, tests, the demo).

``app`` holds the ASGI app and routing; the other modules are pure builders of bodies, SSE
events, errors, outputs and metrics, matching ``reference/vllm-api.md``.
"""

from sidecar.fake_vllm.app import FakeVllm, create_fake_vllm, serve_fake_vllm
from sidecar.fake_vllm.config import FakeVllmConfig

__all__ = ["FakeVllm", "FakeVllmConfig", "create_fake_vllm", "serve_fake_vllm"]
