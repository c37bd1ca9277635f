"""The running sidecar: composition of the stages (``app``), the run loop (``serve``), the
uvicorn plumbing (``asgi``, ``http_head``), the admin app and the start-up checks."""
