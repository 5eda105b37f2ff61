"""A NATS connection closed for good (not by its owner) stops the actor or scheduler with an error."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from actors import Runtime
from foundation.connections import connect_nats
from foundation.settings import Settings
from scheduler.service import Scheduler
from tests.support.apps.actor_app import build_workflow
from tests.support.scheduling import scheduler_settings


async def close_as_the_server_does(nc: NATS) -> None:
    """Publish past the server's max_payload, skipping the client's own check: the server answers
    ``-ERR 'Maximum Payload Violation'`` and drops the connection; nats-py closes it for good."""
    size = nc.max_payload + 1
    nc._max_payload = size
    await nc.publish("tracks-test.too-big", b"0" * size)


async def test_closed_callback_is_for_closes_the_owner_did_not_ask_for(settings: Settings) -> None:
    assert settings.nats_url is not None
    told: list[Exception | None] = []
    said = asyncio.Event()

    def on_closed(error: Exception | None) -> None:
        told.append(error)
        said.set()

    for ask in ("close", "drain"):
        nc = await connect_nats(settings, settings.nats_url, name="tests", on_closed=on_closed)
        await getattr(nc, ask)()
    assert told == []

    nc = await connect_nats(settings, settings.nats_url, name="tests", on_closed=on_closed)
    await close_as_the_server_does(nc)
    await asyncio.wait_for(said.wait(), 5)
    assert nc.is_closed
    assert [str(e) for e in told] == ["nats: maximum payload violation"]


async def test_runtime_stops_with_an_error_when_its_connection_closes_for_good(
    settings: Settings,
    js: JetStreamContext,
    migrated: None,
    unique: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without the closed callback the runtime idled forever: its fetch loops retry a closed
    connection. Now serve() raises within seconds, after one CRITICAL line saying why."""
    tuned = settings.model_copy(update={"shutdown_grace_s": 2.0})
    with caplog.at_level(logging.WARNING):
        async with Runtime(list(build_workflow(unique)), settings=tuned) as runtime:
            serving = asyncio.create_task(runtime.serve())
            await asyncio.sleep(0.2)
            assert not serving.done()
            assert runtime.nc is not None
            await close_as_the_server_does(runtime.nc)
            with pytest.raises(RuntimeError, match="nats-connection crashed") as raised:
                await asyncio.wait_for(serving, 10)
    assert isinstance(raised.value.__cause__, ConnectionError)
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert critical == [
        "the NATS connection was closed for good (last error: nats: maximum payload violation); "
        "stopping the runtime"
    ], critical


async def test_scheduler_leaves_its_block_with_an_error_when_its_connection_closes_for_good(
    settings: Settings,
    js: JetStreamContext,
    pool: asyncpg.Pool,
    unique: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``tracks scheduler run`` waits for SIGTERM inside ``async with Scheduler``: the block is
    interrupted with a ConnectionError instead of firing nothing forever."""
    assert settings.nats_url is not None and settings.database_url is not None
    nc = await connect_nats(settings, settings.nats_url, name=f"scheduler-{unique}")
    service = Scheduler(
        nc=nc,
        pool=pool,
        dsn=settings.database_url,
        settings=scheduler_settings(unique),
        duplicate_window_s=settings.duplicate_window_s,
    )

    async def run() -> None:  # as the CLI does: wait inside the block for SIGTERM
        async with service:
            await close_as_the_server_does(nc)
            await asyncio.sleep(30)

    started = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(ConnectionError, match="closed for good"):
            await run()
    finally:
        if not nc.is_closed:
            await nc.close()
    assert time.monotonic() - started < 10
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert critical == [
        "the NATS connection was closed for good (last error: nats: maximum payload violation); "
        "stopping the scheduler"
    ], critical
