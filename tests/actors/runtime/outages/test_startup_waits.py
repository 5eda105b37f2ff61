"""A starting actor waits for NATS and PostgreSQL the same way: one line, a bound, one clear error."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from actors import Runtime, TracksClient
from foundation.connections import server_address
from foundation.db import create_pool
from foundation.settings import Settings
from tests.conftest import Servers
from tests.support.actor_process import ActorProcess
from tests.support.apps.actor_app import build_workflow, track_names
from tests.support.servers import own_postgres
from tests.support.waiting import count_logs, eventually
from tracks.embedded._process import free_port

SECRET = "hunter2-not-for-logs"


def with_password(url: str) -> str:
    """``url`` with a password in its userinfo (the test servers trust; they ignore it)."""
    scheme, rest = url.split("://", 1)
    user, _, host = rest.rpartition("@")
    return f"{scheme}://{user or 'u'}:{SECRET}@{host}"


async def test_actor_started_before_postgres_waits_for_it_then_processes_a_trigger(
    settings: Settings, js: JetStreamContext, unique: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL is down when the runtime starts and comes up 3 s later: the runtime waits (one
    warning naming host:port, no password), then starts and runs a triggered step through."""
    wf = build_workflow(unique)
    work, nxt = track_names(unique)
    async with own_postgres(tmp_path) as pg:
        await asyncio.to_thread(pg.stop)
        dsn = with_password(pg.url)
        tuned = settings.model_copy(update={"database_url": dsn, "connect_wait_s": 60.0})
        runtime = Runtime(list(wf), settings=tuned)
        with caplog.at_level(logging.INFO):
            starting = asyncio.create_task(runtime.start())
            try:
                await asyncio.sleep(3)
                assert not starting.done(), starting.exception() if starting.done() else None
                await asyncio.to_thread(pg.start)
                await asyncio.wait_for(starting, 30)

                cid, _ = await TracksClient(js).trigger(work, {"n": 1})
                pool = await create_pool(pg.url, max_size=1)
                try:

                    async def done() -> bool:
                        return await count_logs(pool, nxt, "completed") == 1

                    await eventually(done, timeout=30, what=f"run {cid} through {work} and {nxt}")
                finally:
                    await pool.close()
            finally:
                if not starting.done():
                    starting.cancel()
                await runtime.shutdown()

    waiting = [r.getMessage() for r in caplog.records if "waiting for PostgreSQL" in r.getMessage()]
    assert waiting == [
        f"waiting for PostgreSQL at {server_address(pg.url)} (connection refused); giving up in 60s"
    ], waiting
    assert SECRET not in caplog.text


@pytest.mark.parametrize("down", ["NATS", "PostgreSQL"])
async def test_actor_gives_up_after_the_connect_wait_with_one_clear_error(
    servers: Servers, unique: str, tmp_path: Path, down: str
) -> None:
    """With NATS or PostgreSQL unreachable, ``tracks actor run`` says once that it waits, gives
    up after TRACKS_CONNECT_WAIT_S and exits 4 (server unreachable) with one line naming the
    server; no password, no traceback."""
    unreachable = f"127.0.0.1:{free_port()}"
    nats_url = f"nats://u:{SECRET}@{unreachable}" if down == "NATS" else servers.nats_url
    database_url = (
        f"postgresql://postgres:{SECRET}@{unreachable}/tracks"
        if down == "PostgreSQL"
        else servers.database_url
    )
    actor = ActorProcess(
        ["tests.support.apps.actor_app"],
        {
            "TRACKS_NATS_URL": nats_url,
            "TRACKS_DATABASE_URL": database_url,
            "TRACKS_TEST_PREFIX": unique,
            "TRACKS_CONNECT_WAIT_S": "2",
        },
        tmp_path / "actor.log",
    )
    actor.start()
    try:
        code = await actor.wait(timeout=30)
    finally:
        actor.kill()
    output = actor.output()
    assert code == 4, output
    assert output.count(f"waiting for {down} at {unreachable} (connection refused); giving up in 2s") == 1
    assert output.count("waiting for") == 1, output
    assert f"{down} at {unreachable} did not answer within 2s (connection refused)" in output, output
    assert SECRET not in output
    assert "Traceback" not in output, output


def test_server_addresses_never_show_credentials() -> None:
    assert server_address("nats://u:pw@a:4222, nats://b:4223") == "a:4222,b:4223"
    assert server_address("postgresql://u:pw@h1:5432,h2:5433/db?password=pw") == "h1:5432,h2:5433"
    assert server_address("postgresql://u:pw@/db?host=/run/pg") == "the default host"


def test_a_wrong_database_url_is_refused_without_its_password() -> None:
    from foundation.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as refused:
        load_settings(database_url="mysql://admin:hunter2@db.example/prod")
    assert "hunter2" not in str(refused.value) and "admin:***@" in str(refused.value)


def test_asyncpg_pool_floor_retries_log_one_line_without_traceback_per_30s() -> None:
    import logging
    import sys

    from foundation.db.pool import _QuietFloorRetries

    quiet = _QuietFloorRetries()
    try:
        raise ConnectionRefusedError(111, "Connect call failed")
    except ConnectionRefusedError:
        info = sys.exc_info()
    records = [
        logging.LogRecord(
            "asyncpg.pool",
            logging.WARNING,
            "",
            0,
            "Failed to restore the pool connection floor; retrying",
            None,
            info,
        )
        for _ in range(5)
    ]
    kept = [r for r in records if quiet.filter(r)]
    assert len(kept) == 1 and kept[0].exc_info is None
    assert "ConnectionRefusedError" in kept[0].getMessage()


async def test_scheduler_waits_for_postgres_then_gives_up_with_one_clear_error(
    servers: Servers, tmp_path: Path
) -> None:
    """``tracks scheduler run`` waits for PostgreSQL as an actor does (it used to fail at once)."""
    import asyncio
    import os
    import sys

    unreachable = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "TRACKS_NATS_URL": servers.nats_url,
        "TRACKS_DATABASE_URL": f"postgresql://postgres:{SECRET}@{unreachable}/tracks",
        "TRACKS_CONNECT_WAIT_S": "2",
        "OTEL_SDK_DISABLED": "true",
    }
    tracks = str(Path(sys.executable).parent / "tracks")
    proc = await asyncio.create_subprocess_exec(
        tracks, "scheduler", "run", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    output = out.decode()
    assert proc.returncode == 4, output
    assert output.count(f"waiting for PostgreSQL at {unreachable} (connection refused); giving up in 2s") == 1
    assert f"PostgreSQL at {unreachable} did not answer within 2s" in output, output
    assert SECRET not in output
