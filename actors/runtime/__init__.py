"""The process: ``Runtime`` (lifecycle), a worker per track, settlement, per-track config, the request API."""
