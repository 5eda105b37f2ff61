"""Which servers a command talks to: the configured ones, else the embedded default (started here).

Only the app shell resolves endpoints: libraries (``actors``, ``scheduler``) take the URLs from
the settings they are given and never start a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from foundation.settings import Settings
from tracks.embedded import EmbeddedStack

__all__ = ["Endpoints", "NoServers", "existing_url", "resolve_endpoints", "with_endpoints"]

NO_SERVERS_HINT = "run `tracks dev up` or set TRACKS_NATS_URL / TRACKS_DATABASE_URL"


class NoServers(RuntimeError):
    """A command that only reads found neither a configured server nor a running embedded one."""


@dataclass(frozen=True)
class Endpoints:
    nats_url: str
    database_url: str
    embedded: bool
    replicas: int | None = None
    """The embedded cluster's size, when the embedded NATS is a cluster (``dev up --cluster``)."""


def resolve_endpoints(settings: Settings) -> Endpoints:
    """The configured servers; for each one left unset, the embedded default (started if needed)."""
    if settings.nats_url and settings.database_url:
        return Endpoints(settings.nats_url, settings.database_url, embedded=False)
    stack = EmbeddedStack(settings.data_dir)
    nats_url, database_url = stack.up()
    cluster = stack.cluster if not settings.nats_url else None
    return Endpoints(
        settings.nats_url or nats_url,
        settings.database_url or database_url,
        embedded=True,
        replicas=cluster.size if cluster is not None else None,
    )


def with_endpoints(settings: Settings) -> tuple[Settings, Endpoints]:
    """``settings`` with both URLs filled in (the embedded default started when one is unset).

    On the embedded cluster, streams get its size as replicas unless TRACKS_STREAM_REPLICAS says
    otherwise: a command run without settings never moves an R3 stream back to R1.
    """
    endpoints = resolve_endpoints(settings)
    update: dict[str, object] = {"nats_url": endpoints.nats_url, "database_url": endpoints.database_url}
    if endpoints.replicas and "stream_replicas" not in settings.model_fields_set:
        update["stream_replicas"] = endpoints.replicas
    resolved = settings.model_copy(update=update)
    return resolved, endpoints


def existing_url(settings: Settings, server: Literal["nats", "postgres"]) -> str:
    """The configured URL of ``server``, else the running embedded one's; never starts a server.

    For commands that only read or act on what exists: in a directory where nothing was ever
    started, they say so (:class:`NoServers`) instead of creating an empty cluster.
    """
    configured = settings.nats_url if server == "nats" else settings.database_url
    if configured:
        return configured
    for status in EmbeddedStack(settings.data_dir).status():
        if status.name == server and status.running and status.url:
            return status.url
    what = "NATS" if server == "nats" else "PostgreSQL"
    raise NoServers(
        f"no servers: no {what} configured or running under {settings.data_dir}; {NO_SERVERS_HINT}"
    )
