"""Flow control across replicas: rate limits, running slots, per-key limits (see :mod:`actors.flow.gate`)."""

from actors.flow.limits import Limit, parse_rate

__all__ = ["Limit", "parse_rate"]
