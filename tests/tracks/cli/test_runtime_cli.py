"""The ``tracks`` command as a user runs it: one-line errors with exit 1, triggers, run timelines."""

from __future__ import annotations

import json
import re

import asyncpg
import pytest
from nats.js import JetStreamContext

from actors import Runtime
from foundation.settings import Settings
from tests.conftest import Servers
from tests.support.apps.workflows import passthrough_pair
from tests.support.cli import Result, run_tracks
from tests.support.records import consumer_idle, stream_subjects
from tests.support.waiting import count_logs, eventually
from tracks.embedded._process import free_port


def assert_one_line_error(result: Result, expected: str) -> None:
    assert result.code == 1, result
    assert "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert expected in lines[0], lines[0]
    assert result.out == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["trigger", "x", "--payload", '{"n": 1'], "--payload is not valid JSON"),
        (["trigger", "x", "--payload", "[1, 2]"], "--payload must be a JSON object, got list"),
        (["trigger", "bad.name", "--payload", "{}"], "track name 'bad.name' must be 1-128 characters"),
        (["trigger", "x", "--correlation-id", "a b"], "correlation ID 'a b' must be 1-128 characters"),
        (["actor", "run", "no_such_module_here"], "cannot import 'no_such_module_here'"),
        (["actor", "run", "tests.support.apps.actor_app:nope"], "has no track 'nope'"),
        (["chain", "no-such-run-anywhere"], "no records for correlation ID no-such-run-anywhere"),
    ],
    ids=["bad-json", "not-object", "bad-track", "bad-cid", "unknown-module", "unknown-track", "unknown-run"],
)
async def test_user_errors_are_one_line_and_exit_1(
    servers: Servers, migrated: None, args: list[str], expected: str
) -> None:
    """Bad JSON, bad names, an unknown module, track or run: one ``Error:`` line, exit 1, no traceback."""
    assert_one_line_error(await run_tracks(servers, *args), expected)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["trigger", "bad.name"], "track name 'bad.name' must be"),
        (["trigger", "x", "--correlation-id", "a*b"], "correlation ID 'a*b' must be"),
    ],
    ids=["bad-track", "bad-cid"],
)
async def test_bad_names_are_refused_before_any_server_is_contacted(
    servers: Servers, args: list[str], expected: str
) -> None:
    """A name that can never be valid is reported as such, not as "cannot reach a server"."""
    unreachable = f"nats://127.0.0.1:{free_port()}"
    assert_one_line_error(await run_tracks(servers, *args, nats_url=unreachable), expected)


async def test_trigger_without_a_reachable_server_fails_fast(servers: Servers) -> None:
    """With NATS unreachable, ``tracks trigger`` says so in one line and exits 4 (within the
    subprocess timeout) instead of retrying the connection forever."""
    unreachable = f"nats://127.0.0.1:{free_port()}"
    result = await run_tracks(servers, "trigger", "x", "--payload", "{}", nats_url=unreachable)
    assert result.code == 4, result
    assert "Traceback" not in result.err
    assert result.err.startswith("Error: cannot reach NATS at 127.0.0.1:"), result.err
    assert len(result.err.strip().splitlines()) == 1, result.err


async def test_trigger_publishes_once_per_correlation_id(
    servers: Servers, js: JetStreamContext, unique: str
) -> None:
    """``tracks trigger`` prints the correlation ID; the same ID again is reported as a duplicate."""
    track, cid = f"{unique}-cli", f"{unique}-cid"
    first = await run_tracks(servers, "trigger", track, "--payload", '{"n": 1}', "--correlation-id", cid)
    again = await run_tracks(servers, "trigger", track, "--payload", '{"n": 1}', "--correlation-id", cid)
    generated = await run_tracks(servers, "trigger", track)
    assert (first.code, first.out.strip(), first.err) == (0, cid, ""), first
    assert (again.code, again.out.strip()) == (0, f"{cid} (duplicate: already triggered)"), again
    assert generated.code == 0, generated
    new_cid = generated.out.strip()
    assert await stream_subjects(js, "TRACKS", f"tracks.{track}.run.*") == {
        f"tracks.{track}.run.{cid}": 1,
        f"tracks.{track}.run.{new_cid}": 1,
    }


async def test_chain_prints_the_timeline_of_a_run(
    servers: Servers, settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """``tracks chain CID`` lists every recorded event in order, then each step's status."""
    up, down = f"{unique}-up", f"{unique}-down"
    wf = passthrough_pair(f"cli-{unique}", up, down)

    cid = f"{unique}-run"
    async with Runtime(list(wf), settings=settings):
        triggered = await run_tracks(servers, "trigger", up, "--payload", '{"n": 1}', "--correlation-id", cid)
        assert triggered.code == 0, triggered

        async def done() -> bool:
            return (
                await count_logs(pool, down, "completed") >= 1 and await consumer_idle(js, down) is not None
            )

        await eventually(done, timeout=30, what="the run to finish")

    result = await run_tracks(servers, "chain", cid)
    assert result.code == 0, result
    assert result.err == ""
    timeline, _, summary = result.out.partition("\n\n")
    header, *timeline_lines = timeline.splitlines()
    assert header.split() == ["OFFSET", "TRACK", "EVENT", "DETAIL"]
    # "+    12.3ms  <track>  <event>  attempt 1 ..."
    events = [re.match(r"\+\s*[\d.]+ms\s+(\S+)\s+(\S+)", line).groups() for line in timeline_lines]  # type: ignore[union-attr]
    assert events == [(up, "started"), (up, "completed"), (down, "started"), (down, "completed")]
    header, *step_lines = summary.splitlines()
    assert header.split() == ["TRACK", "STATUS", "DETAIL"]
    steps = [line.split()[:3] for line in step_lines]
    assert steps == [[up, "completed", "attempts=1"], [down, "completed", "attempts=1"]]

    as_json = await run_tracks(servers, "chain", cid, "--json")
    chain = json.loads(as_json.out)
    assert chain["correlationId"] == cid
    assert [(e["track"], e["eventType"]) for e in chain["events"]] == events
    assert all(e["occurredAt"].endswith("Z") and "T" in e["occurredAt"] for e in chain["events"])
    assert [(s["track"], s["status"], s["attempts"]) for s in chain["steps"]] == [
        (up, "completed", 1),
        (down, "completed", 1),
    ]
    assert set(chain["steps"][0]) == {"track", "status", "attempts", "startedAt", "finishedAt", "error"}
