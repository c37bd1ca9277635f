"""Named read-only reports over the store, for ``sidecar report`` and the admin API."""
