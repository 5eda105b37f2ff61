"""``tracks console``: pages and JSON API through the ASGI test client, on the suite's servers."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from nats.aio.client import Client as NATS

from actors import PermanentError, Runtime, TrackContext, TracksClient, Workflow
from foundation.settings import Settings
from tests.conftest import Servers
from tests.support.actor_process import tracks_command
from tests.support.cli import run_tracks
from tests.support.waiting import eventually
from tests.tracks.console.conftest import HOSTILE, csrf_of
from tracks.console import Console, create_app
from tracks.embedded._process import free_port

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def seed(
    pool: asyncpg.Pool, wf: str, statuses: list[str], *, age: timedelta = timedelta(minutes=5)
) -> list[str]:
    """Runs of ``wf``, one second apart (newest last), with a hostile input and a trace context."""
    start = datetime.now(UTC) - age
    cids = [f"{wf}-{i}" for i in range(len(statuses))]
    await pool.executemany(
        """INSERT INTO workflow_runs (correlation_id, workflow, status, started_at, finished_at, definition,
                                      input, trace_context)
           VALUES ($1, $2, $3, $4::timestamptz,
                   CASE WHEN $3 = 'running' THEN NULL ELSE $4::timestamptz + interval '2 seconds' END,
                   '{"tracks": {"only": []}}'::jsonb, $5::text::jsonb, $6)""",
        [
            (cid, wf, s, start + timedelta(seconds=i), json.dumps({"note": HOSTILE, "n": i}), TRACE)
            for i, (cid, s) in enumerate(zip(cids, statuses, strict=True))
        ],
    )
    return cids


async def test_runs_list_filters_counts_and_escapes(
    client: httpx.AsyncClient, pool: asyncpg.Pool, unique: str
):
    wf = f"con-{unique}"
    old = await seed(pool, wf, ["failed"], age=timedelta(days=3))
    new = await seed(pool, f"{wf}b", ["running", "completed", "completed"])
    got = (await client.get("/api/runs", params={"workflow": f"{wf}b"})).json()
    assert [r["correlationId"] for r in got["runs"]] == new[::-1]
    assert got["counts"] | {} == {
        "all": 3, "running": 1, "completed": 2, "failed": 0, "timed_out": 0, "cancelled": 0,
    }  # fmt: skip
    first = (await client.get("/api/runs", params={"workflow": f"{wf}b", "limit": 2})).json()
    assert [r["correlationId"] for r in first["runs"]] == new[:0:-1] and first["older"]
    rest = (await client.get(first["older"])).json()  # keyset pages: the next one goes on after the last
    assert [r["correlationId"] for r in rest["runs"]] == new[:1] and rest["older"] is None
    assert (await client.get("/api/runs", params={"before": "2026-01-01T00:00:00Z"})).status_code == 400
    failed = (await client.get("/api/runs", params={"workflow": wf, "status": "failed"})).json()
    assert [r["correlationId"] for r in failed["runs"]] == old
    recent = (await client.get("/api/runs", params={"workflow": wf, "since": "1h"})).json()
    assert recent["runs"] == [] and recent["counts"]["all"] == 0
    bad = await client.get("/api/runs", params={"since": "yesterday"})
    assert bad.status_code == 400 and "neither an ISO-8601 time" in bad.json()["error"]
    assert (await client.get("/api/runs", params={"status": "lost"})).status_code == 400

    page = await client.get("/", params={"workflow": f"{wf}b", "status": "completed"})
    assert page.status_code == 200
    assert f'href="/runs/{new[2]}"' in page.text and f'href="/runs/{new[0]}"' not in page.text
    assert 'data-count="completed">2<' in page.text  # the counts cover every status of the filter
    assert "default-src 'self'" in page.headers["content-security-policy"]


async def test_a_run_page_shows_steps_payloads_escaped_and_the_trace(
    client: httpx.AsyncClient, pool: asyncpg.Pool, unique: str
):
    [cid] = await seed(pool, f"one-{unique}", ["failed"])
    await pool.execute(
        """INSERT INTO track_steps (correlation_id, track_id, status, attempts, output, error, started_at,
                                    finished_at)
           VALUES ($1, 'only', 'failed', 3, '{"big": "%s"}'::jsonb, $2, now() - interval '1 minute', now())"""
        % ("y" * 40_000),
        cid,
        f"boom {HOSTILE}",
    )
    page = await client.get(f"/runs/{cid}")
    assert page.status_code == 200
    assert HOSTILE not in page.text and "&lt;script&gt;" in page.text  # user data is escaped
    assert 'href="http://jaeger.example:16686/trace/0af7651916cd43dd8448eb211c80319c"' in page.text
    assert 'id="resume"' in page.text and 'id="proceed"' not in page.text and 'id="cancel"' not in page.text
    assert "cut to the first 16 KiB" in page.text
    wire = (await client.get(f"/api/runs/{cid}")).json()
    assert wire["status"] == "failed" and wire["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert wire["steps"][0] | {"startedAt": None, "finishedAt": None} == {
        "track": "only", "status": "failed", "attempts": 3, "startedAt": None, "finishedAt": None,
        "error": f"boom {HOSTILE}",
    }  # fmt: skip
    assert json.loads(wire["input"]["text"]) == {"note": HOSTILE, "n": 0}
    assert wire["outputs"]["only"]["truncated"] and len(wire["outputs"]["only"]["text"]) == 16 * 1024
    assert wire["actions"] == {"proceed": False, "resume": True, "cancel": False}
    missing = await client.get("/api/runs/no-such-run")
    assert missing.status_code == 404 and "no-such-run" in missing.json()["error"]
    assert (await client.get("/runs/no-such-run")).status_code == 404


async def test_cancel_asks_first_checks_csrf_and_is_recorded(
    client: httpx.AsyncClient, pool: asyncpg.Pool, unique: str
):
    [cid] = await seed(pool, f"cx-{unique}", ["running"])
    page = await client.get(f"/runs/{cid}")
    token = csrf_of(page.text)
    assert client.cookies.get("tracks_csrf") == token
    # a forged form (no token, or another one) changes nothing
    for sent in ({}, {"csrf": "forged", "confirmed": "yes"}):
        refused = await client.post(f"/runs/{cid}/cancel", data=sent)
        assert refused.status_code == 403
    ask = await client.post(f"/runs/{cid}/cancel", data={"csrf": token})
    assert (
        ask.status_code == 200
        and f"Cancel run {cid}?" in ask.text
        and 'name="confirmed" value="yes"' in ask.text
    )
    assert await pool.fetchval("SELECT status FROM workflow_runs WHERE correlation_id = $1", cid) == "running"
    done = await client.post(
        f"/runs/{cid}/cancel", data={"csrf": token, "confirmed": "yes", "reason": "from the console"}
    )
    assert done.status_code == 303 and done.headers["location"].startswith(f"/runs/{cid}?msg=cancelled")
    row = await pool.fetchrow("SELECT status, error FROM workflow_runs WHERE correlation_id = $1", cid)
    assert (row["status"], row["error"]) == ("cancelled", "cancelled: from the console")
    logged = await pool.fetchval(
        "SELECT details->>'reason' FROM processing_logs"
        " WHERE correlation_id = $1 AND event_type = 'cancelled'",
        cid,
    )
    assert logged == "from the console"
    again = await client.post(f"/runs/{cid}/proceed", data={"csrf": token, "confirmed": "yes"})
    assert again.status_code == 303 and "kind=error" in again.headers["location"]  # refused: said, not raised


async def test_a_token_is_asked_for_as_bearer_or_basic_auth(console_state: Console):
    console_state.token = "s3cret"
    transport = httpx.ASGITransport(app=create_app(console_state))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        refused = await c.get("/api/runs", params={"limit": 1})
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
        assert (await c.get("/", headers={"Authorization": "Bearer wrong"})).status_code == 401
        bearer = await c.get("/api/runs", params={"limit": 1}, headers={"Authorization": "Bearer s3cret"})
        assert bearer.status_code == 200
        basic = base64.b64encode(b"anyone:s3cret").decode()
        assert (await c.get("/dlq", headers={"Authorization": f"Basic {basic}"})).status_code == 200


async def test_console_refuses_to_bind_beyond_loopback_without_a_token(servers: Servers):
    res = await run_tracks(servers, "console", "--host", "0.0.0.0")
    assert res.code == 1
    assert res.err.strip().splitlines() == [
        "Error: refusing to serve on 0.0.0.0 without TRACKS_CONSOLE_TOKEN: set it (clients send it as a "
        "bearer token or basic-auth password) or bind to 127.0.0.1"
    ]


async def test_tracks_console_serves_on_the_settings_of_every_command(servers: Servers, pool: asyncpg.Pool):
    """The command itself: finds the configured servers, serves on --port, stops on Ctrl-C."""
    port = free_port()
    env = {**os.environ, "TRACKS_NATS_URL": servers.nats_url, "TRACKS_DATABASE_URL": servers.database_url}
    proc = await asyncio.create_subprocess_exec(
        *tracks_command(), "console", "--port", str(port), env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(200):
                try:
                    answer = await http.get("/api/runs", params={"limit": 1})
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            assert answer.status_code == 200 and "counts" in answer.json()
            assert (await http.get("/static/console.js")).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 130, err  # Ctrl-C, as every command
    assert err.decode().splitlines()[0] == f"tracks console on http://127.0.0.1:{port}/ (Ctrl-C stops it)"


async def test_older_pages_skip_no_run_started_within_the_same_millisecond(
    client: httpx.AsyncClient, pool: asyncpg.Pool, unique: str
):
    wf, at = f"ms-{unique}", datetime.now(UTC).replace(microsecond=123_000)
    await pool.executemany(
        "INSERT INTO workflow_runs (correlation_id, workflow, status, started_at)"
        " VALUES ($1, $2, 'running', $3)",
        [(f"{wf}-{i}", wf, at + timedelta(microseconds=100 * i)) for i in range(3)],
    )
    seen, url = [], f"/api/runs?workflow={wf}&limit=1"
    while url:
        page = (await client.get(url)).json()
        seen += [r["correlationId"] for r in page["runs"]]
        url = page["older"]
    assert seen == [f"{wf}-2", f"{wf}-1", f"{wf}-0"]


async def test_resume_a_failed_run_from_its_page(
    client: httpx.AsyncClient, settings: Settings, pool: asyncpg.Pool, nc: NATS, unique: str
):
    broken = {True}
    wf = Workflow(f"resumable-{unique}")

    @wf.track(f"{unique}-only")
    async def only(ctx: TrackContext, payload: dict[str, int]) -> dict[str, int]:
        if broken:
            raise PermanentError("not yet")
        return payload

    async def status(cid: str) -> str | None:
        found: str | None = await pool.fetchval(
            "SELECT status FROM workflow_runs WHERE correlation_id = $1", cid
        )
        return found

    async with Runtime(list(wf), settings=settings):
        cid = await TracksClient(nc).start(wf, {"n": 1}, correlation_id=f"{unique}-resumable")

        async def is_failed() -> bool:
            return await status(cid) == "failed"

        await eventually(is_failed, what="the run to fail")
        broken.clear()
        page = await client.get(f"/runs/{cid}")
        assert 'id="resume"' in page.text
        done = await client.post(f"/runs/{cid}/resume", data={"csrf": csrf_of(page.text), "confirmed": "yes"})
        assert done.status_code == 303 and "kind=ok" in done.headers["location"], done.headers["location"]

        async def is_completed() -> bool:
            return await status(cid) == "completed"

        await eventually(is_completed, what="the resumed run to complete")
