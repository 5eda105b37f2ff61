"""Which servers a command talks to: the configured ones, else the embedded default (started here).

Only the app shell resolves endpoints: libraries (``actors``, ``scheduler``) take the URLs from
the settings they are given and never start a server.
"""

from __future__ import annotations

from dataclasses import dataclass

from foundation.settings import Settings
from tracks.embedded import EmbeddedStack

__all__ = ["Endpoints", "resolve_endpoints", "with_endpoints"]


@dataclass(frozen=True)
class Endpoints:
    nats_url: str
    database_url: str
    embedded: bool


def resolve_endpoints(settings: Settings) -> Endpoints:
    """The configured servers; for each one left unset, the embedded default (started if needed)."""
    if settings.nats_url and settings.database_url:
        return Endpoints(settings.nats_url, settings.database_url, embedded=False)
    nats_url, database_url = EmbeddedStack(settings.data_dir).up()
    return Endpoints(settings.nats_url or nats_url, settings.database_url or database_url, embedded=True)


def with_endpoints(settings: Settings) -> tuple[Settings, Endpoints]:
    """``settings`` with both URLs filled in (the embedded default started when one is unset)."""
    endpoints = resolve_endpoints(settings)
    resolved = settings.model_copy(
        update={"nats_url": endpoints.nats_url, "database_url": endpoints.database_url}
    )
    return resolved, endpoints
