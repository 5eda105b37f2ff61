"""Connections to NATS and PostgreSQL, resolved from settings or the embedded default.

A process starting up waits for each server the same way (:func:`connect_nats` here,
:func:`foundation.db.create_pool` with ``wait_s``): one warning says what it waits for and for
how long (``TRACKS_CONNECT_WAIT_S``), attempts repeat with back-off, and past the bound one
:class:`ConnectionError` names the server that did not answer. Messages name servers by
``host:port`` (:func:`server_address`), never with the credentials of their URL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import nats.errors
from nats.aio.client import Client as NATS

from foundation.redact import describe_error, server_address
from foundation.settings import Settings
from foundation.tls import nats_tls_context, tls_failure

__all__ = [
    "ClosedCallback",
    "connect_nats",
    "describe_error",
    "server_address",
]

log = logging.getLogger(__name__)

ClosedCallback = Callable[[Exception | None], None]
"""Told the client's last error when its connection closed for good without being asked to."""


def _refused(exc: BaseException | None) -> bool:
    """The server answered and said no to the credentials: waiting will not change that."""
    return exc is not None and "authorization" in str(exc).lower()


class _Client(NATS):
    """nats-py's client, remembering whether its owner closed it.

    nats-py calls ``closed_cb`` after every close: the owner's ``close()`` or ``drain()``, and
    its own when it gives the connection up (a protocol error from the server such as a
    publish over ``max_payload``, or reconnect attempts exhausted, where it calls ``close()``
    from its reconnecting task). Only the latter are news to the owner.
    """

    closing_requested = False

    async def close(self) -> None:
        if asyncio.current_task() is not self._reconnection_task:
            self.closing_requested = True
        await super().close()

    async def drain(self) -> None:
        self.closing_requested = True
        try:
            await super().drain()
        finally:
            if not self.is_closed:  # refused (e.g. while reconnecting): not closed by this call
                self.closing_requested = False

    async def __aexit__(self, *exc_info: object) -> None:
        self.closing_requested = True
        await super().__aexit__(*exc_info)


async def connect_nats(
    settings: Settings,
    url: str,
    *,
    name: str = "tracks",
    wait_for_server: bool = True,
    on_closed: ClosedCallback | None = None,
) -> NATS:
    """A client that reconnects forever with back-off: actors outlive server restarts.

    Starting, it waits up to ``settings.connect_wait_s`` for a server to answer (one warning
    says so), then raises :class:`ConnectionError` naming it. ``wait_for_server=False``
    (one-shot commands): when no server answers the first few attempts, or none within
    ``settings.connect_timeout_s`` (``tracks --connect-timeout``), raise :class:`ConnectionError`.

    ``on_closed(last_error)`` is called when nats-py closes the connection for good on its
    own (see :class:`_Client`), never after the owner's ``close()`` or ``drain()``. Nothing
    reconnects such a connection: a long-running owner should stop, with an error. Without
    ``on_closed`` the event is logged as an error.
    """
    nc = _Client()
    address = server_address(url)
    connected = announced = False
    failure: Exception | None = None  # why the last attempt to connect failed

    async def on_error(exc: Exception) -> None:
        nonlocal announced, failure
        # a refusal of the credentials stays the reason over a later attempt's broken pipe
        if not connected and not isinstance(exc, nats.errors.NoServersError) and not _refused(failure):
            failure = tls_failure(exc, settings, failure) or exc  # a TLS refusal says what to set
        if connected:
            if wait_for_server or nc.is_connected:
                log.warning("nats: %s", exc)
            else:
                log.debug("nats: %s", exc)
        elif wait_for_server and not announced:  # one line for the whole wait, not one per attempt
            announced = True
            log.warning(
                "waiting for NATS at %s (%s); giving up in %gs",
                address,
                describe_error(exc),
                settings.connect_wait_s,
            )
        else:  # the ConnectionError below says it once
            log.debug("nats: %s", exc)

    async def on_disconnected() -> None:
        if nc.is_closed:  # our own close or drain, or closed for good (said by on_closed_for_good)
            log.debug("nats: connection closed")
        else:
            log.warning("nats: disconnected")

    async def on_reconnected() -> None:
        log.warning("nats: reconnected")

    async def on_closed_for_good() -> None:
        if not connected or nc.closing_requested:
            return
        if on_closed is not None:
            on_closed(nc.last_error)
        else:
            log.error(
                "nats: the connection to %s was closed for good (last error: %s)",
                address,
                describe_error(nc.last_error),
            )

    tls = nats_tls_context(settings)  # before the first attempt: a bad file is one line, no wait
    started = time.monotonic()
    bound = settings.connect_wait_s if wait_for_server else settings.connect_timeout_s
    deadline = asyncio.timeout(bound)
    try:
        async with deadline:
            await nc.connect(
                servers=[u.strip() for u in url.split(",")],
                name=name,
                user=settings.nats_user,
                password=settings.nats_password,
                token=settings.nats_token,
                user_credentials=str(settings.nats_creds) if settings.nats_creds else None,
                nkeys_seed=str(settings.nats_nkey_seed) if settings.nats_nkey_seed else None,
                tls=tls,
                inbox_prefix=settings.nats_inbox,
                max_reconnect_attempts=-1 if wait_for_server else 2,
                reconnect_time_wait=0.5,  # type: ignore[arg-type]  # annotated int, used as a float sleep
                connect_timeout=min(5, bound),  # type: ignore[arg-type]  # annotated int, used as a float
                allow_reconnect=True,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
                closed_cb=on_closed_for_good,
                pending_size=64 * 1024 * 1024,
            )
    except nats.errors.NoServersError:
        reason = describe_error(failure) if failure is not None else "no server answers"
        if _refused(failure):  # it answers, and says no: waiting will not help
            raise ConnectionError(
                f"NATS at {address} refused the credentials ({reason}): check the URL's user and "
                "password or TRACKS_NATS_USER / TRACKS_NATS_PASSWORD / TRACKS_NATS_TOKEN / TRACKS_NATS_CREDS"
            ) from None
        raise ConnectionError(f"cannot reach NATS at {address}: {reason}") from None
    except TimeoutError:
        if not deadline.expired():
            raise
        try:  # the attempt under way was cancelled: let go of what it holds
            await nc.close()
        except Exception as exc:
            log.debug("nats: closing the abandoned client: %s", exc)
        last = failure if failure is not None else nc.last_error
        if not wait_for_server:
            reason = describe_error(last) if last is not None else "no answer"
            raise ConnectionError(f"cannot reach NATS at {address}: {reason} within {bound:g}s") from None
        raise ConnectionError(
            f"NATS at {address} did not answer within {bound:g}s ({describe_error(last)})"
        ) from None
    connected = True
    if announced:
        log.info("NATS at %s answered after %.1fs", address, time.monotonic() - started)
    return nc
