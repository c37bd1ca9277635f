"""Drift: per-request features, window statistics and text drift (all pure)."""
