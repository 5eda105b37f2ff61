"""Connections to NATS and PostgreSQL, resolved from settings or the embedded default."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nats.errors
from nats.aio.client import Client as NATS

from .embedded import EmbeddedStack
from .settings import Settings

__all__ = ["Endpoints", "connect_nats", "resolve_endpoints"]

log = logging.getLogger(__name__)


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


async def connect_nats(
    settings: Settings, url: str, *, name: str = "tracks", wait_for_server: bool = True
) -> NATS:
    """A client that reconnects forever with back-off: actors outlive server restarts.

    ``wait_for_server=False`` (one-shot commands): when no server answers the first few
    attempts, raise :class:`ConnectionError` instead of trying forever.
    """
    nc = NATS()

    async def on_error(exc: Exception) -> None:
        if wait_for_server or nc.is_connected:
            log.warning("nats: %s", exc)
        else:  # the ConnectionError below says it once
            log.debug("nats: %s", exc)

    async def on_disconnected() -> None:
        if nc.is_closed:  # our own close or drain, not an outage
            log.debug("nats: connection closed")
        else:
            log.warning("nats: disconnected")

    async def on_reconnected() -> None:
        log.warning("nats: reconnected")

    try:
        await nc.connect(
            servers=[u.strip() for u in url.split(",")],
            name=name,
            user=settings.nats_user,
            password=settings.nats_password,
            token=settings.nats_token,
            user_credentials=str(settings.nats_creds) if settings.nats_creds else None,
            max_reconnect_attempts=-1 if wait_for_server else 2,
            reconnect_time_wait=0.5,  # type: ignore[arg-type]  # annotated int, used as a float sleep
            connect_timeout=5,
            allow_reconnect=True,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
            pending_size=64 * 1024 * 1024,
        )
    except nats.errors.NoServersError:
        raise ConnectionError(f"no NATS server answers at {url}") from None
    return nc
