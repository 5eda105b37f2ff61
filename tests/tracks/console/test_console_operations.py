"""``tracks console``: dead letters, schedules and tracks through the ASGI test client."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncpg
import httpx
import pytest
from nats.js import JetStreamContext

from actors.failures import dlq_ops
from foundation.connections import connect_nats
from foundation.settings import Settings
from scheduler.schedules import NewSchedule, ScheduleStore
from subjects import DLQ_STREAM, STREAM, names
from subjects.headers import DLQ_HEADERS
from tests.conftest import Servers
from tests.tracks.console.conftest import HOSTILE, csrf_of
from tracks.console import Console, create_app


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
    assert found[name]["consumed"] is False  # no actor serves its target: said, as `schedule ls` does
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
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
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


async def test_a_server_that_stops_answering_is_one_line_not_a_traceback(
    settings: Settings, servers: Servers, pool: asyncpg.Pool
):
    gone = await connect_nats(settings, servers.nats_url, name="tests-gone")
    await gone.close()
    app = create_app(Console(settings, pool, gone))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # uvicorn logs it; the page says it
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        api = await c.get("/api/dlq")
        page = await c.get("/dlq")
    assert api.status_code == 503 and api.json()["error"].startswith("a server does not answer: ")
    assert page.status_code == 503 and "Traceback" not in page.text
    assert "a server does not answer" in page.text
