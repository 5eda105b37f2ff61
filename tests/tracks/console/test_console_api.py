"""``tracks console``: pages and JSON API through the ASGI test client, on the suite's servers."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncpg
import httpx
import pytest
from nats.js import JetStreamContext

from actors.failures import dlq_ops
from scheduler.schedules import NewSchedule, ScheduleStore
from subjects import DLQ_STREAM, STREAM, names
from subjects.headers import DLQ_HEADERS
from tests.conftest import Servers
from tests.support.actor_process import tracks_command
from tests.support.cli import run_tracks
from tests.tracks.console.conftest import csrf_of
from tracks.console import Console, create_app
from tracks.embedded._process import free_port

HOSTILE = "<script>alert('x')</script>"
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


async def _dead_letter(js: JetStreamContext, track: str, cid: str, body: bytes) -> int:
    ack = await js.publish(
        names.dlq(track, cid),
        body,
        stream=DLQ_STREAM,
        headers={
            DLQ_HEADERS.SUBJECT: names.run(track, cid),
            DLQ_HEADERS.TRACK: track,
            DLQ_HEADERS.CORRELATION_ID: cid,
            DLQ_HEADERS.ERROR_TYPE: "PermanentError",
            DLQ_HEADERS.ERROR: f"rejected {HOSTILE}",
            DLQ_HEADERS.TRACEBACK: json.dumps("Traceback (most recent call last):\n  boom\n"),
            DLQ_HEADERS.DELIVERIES: "3",
        },
    )
    return ack.seq


async def test_dead_letters_list_show_replay_and_purge(
    client: httpx.AsyncClient, js: JetStreamContext, pool: asyncpg.Pool, unique: str
):
    track = f"dl-{unique}"
    first = await _dead_letter(js, track, f"{unique}-a", json.dumps({"why": HOSTILE}).encode())
    await _dead_letter(js, track, f"{unique}-b", b"{}")
    listed = (await client.get("/api/dlq", params={"track": track})).json()
    assert listed["total"] == 2 and listed["letters"][0]["seq"] == first
    assert listed["letters"][0]["errorType"] == "PermanentError"
    shown = (await client.get(f"/api/dlq/{first}")).json()
    assert shown["body"] == {"why": HOSTILE} and shown["traceback"].startswith("Traceback")
    page = await client.get(f"/dlq/{first}")
    assert page.status_code == 200 and HOSTILE not in page.text and "Traceback (most recent" in page.text
    assert (await client.get("/dlq", params={"track": "bad track"})).status_code == 400
    assert (await client.get("/api/dlq/999999999")).status_code == 404

    token = csrf_of((await client.get("/dlq", params={"track": track})).text)
    replayed = await client.post(f"/dlq/{first}/replay", data={"csrf": token, "confirmed": "yes"})
    assert replayed.status_code == 303 and "kind=ok" in replayed.headers["location"]
    with pytest.raises(dlq_ops.UnknownDeadLetter):
        await dlq_ops.read(js, first)
    replays = await pool.fetchval(
        "SELECT count(*) FROM processing_logs WHERE correlation_id = $1 AND event_type = 'replayed'",
        f"{unique}-a",
    )
    assert replays == 1
    ask = await client.post("/dlq/purge", data={"csrf": token, "track": track})
    assert f"Delete all dead letters of track {track} for good?" in ask.text
    purged = await client.post("/dlq/purge", data={"csrf": token, "track": track, "confirmed": "yes"})
    assert purged.status_code == 303 and "purged+1+dead" in purged.headers["location"]
    assert (await client.get("/api/dlq", params={"track": track})).json()["total"] == 0
    assert (await js.stream_info(STREAM)).state.messages >= 1  # the replay went to the TRACKS stream


async def test_schedules_next_fire_times_enable_disable_and_history(
    client: httpx.AsyncClient, pool: asyncpg.Pool, unique: str
):
    name = f"nightly-{unique}"
    await ScheduleStore(pool).add(NewSchedule(name=name, cron_expression="0 3 * * *", target=f"t-{unique}"))
    found = {s["name"]: s for s in (await client.get("/api/schedules")).json()["schedules"]}
    assert found[name]["enabled"] and len(found[name]["next"]) == 3
    assert found[name]["next"][0].endswith("T03:00:00.000Z")
    token = csrf_of((await client.get("/schedules")).text)
    off = await client.post(f"/schedules/{name}/disable", data={"csrf": token, "confirmed": "yes"})
    assert off.status_code == 303
    assert not (await ScheduleStore(pool).get(name)).enabled
    history = await client.get(f"/schedules/{name}")
    assert history.status_code == 200 and "No executions yet" in history.text
    assert (await client.get(f"/api/schedules/{name}")).json()["schedule"]["next"] == []
    assert (await client.get("/schedules/no-such-schedule")).status_code == 404


@pytest.fixture
def metrics_url() -> Iterator[str]:
    text = (
        b'# TYPE tracks_steps_total counter\ntracks_steps_total{track="mail",outcome="completed"} 7\n'
        b'tracks_steps_total{track="mail",outcome="dead_lettered"} 2\n'
        b'# TYPE tracks_breaker_state gauge\ntracks_breaker_state{track="mail"} 2\n'
        b"# TYPE tracks_dlq_messages gauge\ntracks_dlq_messages 5\n"
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


async def test_tracks_page_from_the_metrics(
    console_state: Console, client: httpx.AsyncClient, metrics_url: str
):
    assert "no metrics source" in (await client.get("/tracks")).text
    console_state.metrics_urls = [metrics_url]
    got = (await client.get("/api/tracks")).json()
    assert got["dlq"] == 5 and got["error"] is None
    [mail] = got["tracks"]
    assert (mail["track"], mail["failures"], mail["breaker"]) == ("mail", 2, "open")
    console_state.metrics_urls = ["http://127.0.0.1:9/metrics"]
    assert "cannot reach http://127.0.0.1:9/metrics" in (await client.get("/tracks")).text


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
