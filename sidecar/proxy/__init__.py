"""The request path: relay bytes to the upstream and back, capture an Exchange on the side."""
