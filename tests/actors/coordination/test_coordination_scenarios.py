"""The reference workflow (Gmail → Drive → file management → freee) under the issue's scenarios."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
from typing import Any

from click.testing import CliRunner

from actors import RetryableError, Runtime, TrackContext, TrackOptions, TracksClient, Workflow
from tracks.cli.main import cli
from tracks.examples import receipts as example


async def test_happy_path_books_every_receipt(settings, pool, nc):
    async with Runtime(list(example.receipts), settings=settings):
        result = await TracksClient(nc).run(
            example.receipts, {"mailbox": "me@example.com", "count": 4}, timeout=30
        )
    assert result["total_jpy"] == 1000 + 2000 + 3000 + 4000
    assert len(result["entries"]) == 4


async def test_failure_with_automatic_retry_completes(settings, pool, nc, unique):
    failures = collections.Counter[str]()
    wf = _copy_of_receipts(unique, failures, fail_first={"drive": 2})
    async with Runtime(list(wf), settings=settings):
        result = await TracksClient(nc).run(wf, {"count": 2}, timeout=30, correlation_id=f"{unique}-retry")
    assert result["total_jpy"] == 3000
    attempts = await pool.fetch(
        "SELECT event_type, attempt FROM processing_logs WHERE correlation_id = $1 "
        "AND track_id = $2 ORDER BY id",
        f"{unique}-retry",
        f"{unique}-drive",
    )
    assert [(r["event_type"], r["attempt"]) for r in attempts] == [
        ("started", 1),
        ("failed", 1),
        ("started", 2),
        ("failed", 2),
        ("started", 3),
        ("completed", 3),
    ]


async def test_a_step_over_its_time_limit_is_cancelled_and_retried(settings, pool, nc, unique):
    slow_once = {"left": 1}
    wf = _copy_of_receipts(unique, collections.Counter(), slow={"file_management": slow_once})
    async with Runtime(list(wf), settings=settings):
        result = await TracksClient(nc).run(wf, {"count": 1}, timeout=30, correlation_id=f"{unique}-slow")
    assert result["total_jpy"] == 1000
    failed = await pool.fetchrow(
        "SELECT error_type, error FROM processing_logs WHERE correlation_id = $1 "
        "AND track_id = $2 AND event_type = 'failed'",
        f"{unique}-slow",
        f"{unique}-file_management",
    )
    assert failed["error_type"] == "StepTimeout"
    assert "exceeded its 0.5s time limit" in failed["error"]


async def test_two_hundred_runs_at_once_stay_consistent(settings, pool, nc, unique):
    seen: dict[tuple[str, str], dict] = {}
    wf = _copy_of_receipts(unique, collections.Counter(), record=seen)
    async with Runtime(list(wf), settings=settings):
        client = TracksClient(nc)
        results = await asyncio.gather(
            *(
                client.run(wf, {"count": 1 + i % 5}, timeout=90, correlation_id=f"{unique}-{i}")
                for i in range(200)
            )
        )
    assert [r["total_jpy"] for r in results] == [
        1000 * n * (n + 1) // 2 for n in (1 + i % 5 for i in range(200))
    ]
    # data consistency: every track saw exactly the output its upstream recorded for the same run
    outputs = {
        (r["correlation_id"], r["track_id"]): r["output"]
        for r in await pool.fetch(
            "SELECT correlation_id, track_id, output FROM track_steps WHERE workflow = $1", wf.name
        )
    }
    for track in wf:
        for upstream in track.after:
            for i in range(200):
                cid = f"{unique}-{i}"
                assert seen[(cid, track.name)] == outputs[(cid, upstream)], (cid, track.name)


async def test_cli_run_wait_status_and_resume(settings, servers, pool, unique, monkeypatch):
    monkeypatch.setenv("TRACKS_NATS_URL", servers.nats_url)
    monkeypatch.setenv("TRACKS_DATABASE_URL", servers.database_url)
    runner = CliRunner()
    async with Runtime(list(example.receipts), settings=settings):
        done = await asyncio.to_thread(
            runner.invoke,
            cli,
            [
                "run",
                "tracks.examples.receipts:receipts",
                "--payload",
                '{"count": 2}',
                "--wait",
                "--timeout",
                "30",
                "--correlation-id",
                f"{unique}-cli",
            ],
        )
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout)["total_jpy"] == 3000
        status = await asyncio.to_thread(runner.invoke, cli, ["status", f"{unique}-cli"])
        assert status.exit_code == 0, status.output
        assert json.loads(status.stdout)["completedPhases"] == ["main"]
        again = await asyncio.to_thread(runner.invoke, cli, ["resume", f"{unique}-cli"])
        assert again.exit_code == 1
        assert "already completed; nothing to resume" in again.output
    bad = await asyncio.to_thread(runner.invoke, cli, ["run", "tracks.examples.receipts:nope"])
    assert bad.exit_code == 1
    assert "has no workflow 'nope'" in bad.output


def _copy_of_receipts(
    prefix: str,
    failures: collections.Counter[str],
    *,
    fail_first: dict[str, int] | None = None,
    slow: dict[str, dict[str, int]] | None = None,
    record: dict[tuple[str, str], dict] | None = None,
) -> Workflow:
    """The reference workflow under fresh track names, with faults or recording wrapped around it."""
    wf = Workflow(f"{prefix}-receipts")
    for track in example.receipts:
        name = f"{prefix}-{track.name}"
        options = TrackOptions(retry_base_s=0.05, retry_cap_s=0.1, time_limit_s=0.5)

        def wrap(inner=track, base=track.name):
            async def handler(ctx: TrackContext, payload: Any) -> dict:
                if record is not None:  # the input as the handler got it, in its JSON form
                    record[(ctx.correlation_id, ctx.track)] = payload.model_dump(mode="json")
                if failures[base] < (fail_first or {}).get(base, 0):
                    failures[base] += 1
                    raise RetryableError(f"{base} is briefly unavailable")
                if (slow or {}).get(base, {}).get("left"):
                    slow[base]["left"] -= 1  # type: ignore[index]
                    await asyncio.sleep(5)
                value = inner.parse_input(payload)
                return inner.dump_output(await inner.handler(ctx, value))

            return handler

        after = [f"{prefix}-{u}" for u in track.after]
        wf.add(dataclasses.replace(track, name=name, handler=wrap(), after=tuple(after), options=options))
    wf.validate()
    return wf
