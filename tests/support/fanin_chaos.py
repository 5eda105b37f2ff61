"""Driving a fan-in chaos run: steady load from a publisher, actor processes SIGKILLed and
restarted, servers stopped and started, then a quiet wait and the promises checked (see
``tests/actors/failures/test_chaos_fanin.py``; the failover test adds cluster nodes killed).

:func:`run_scenario` runs one :class:`Plan` (plus any extra timed events of the caller's) and
returns an :class:`Outcome`; :func:`check_promises` prints its summary line and asserts."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from actors import TracksClient
from foundation.connections import connect_nats
from foundation.db import create_pool
from foundation.settings import load_settings
from subjects import dlq_stream, ensure_streams, tracks_stream
from tests.support.actor_process import ActorProcess
from tests.support.apps.chaos_app import ChaosTracks, build_workflow, chaos_tracks
from tests.support.fanin_findings import Findings, examine, problem_lines, quiet
from tracks.embedded import NatsServer, PostgresServer

__all__ = ["ACTORS", "Chaos", "Event", "Outcome", "Plan", "check_promises", "run_scenario"]

ACTORS = 2


@dataclass(frozen=True)
class Plan:
    """What happens when, in seconds after the first run is published."""

    runs: int
    publish_s: float
    kills: tuple[tuple[float, tuple[int, ...]], ...]
    """(when, which actor slots): SIGKILL them together; each is restarted ``restart_after_s`` later."""
    nats_restart_at: float | None = None
    pg_restart_at: float | None = None
    nats_outage_s: float = 2.0
    pg_outage_s: float = 2.0
    """How long each server stays down."""
    restart_after_s: float = 0.5
    settle_timeout_s: float = 60.0
    sleep_s: float = 0.4
    """The longest root handler sleep (join and leaf: a quarter of it)."""


@dataclass
class Chaos:
    """What the test did."""

    runs: int = 0
    kills: int = 0
    nats_restarts: int = 0
    pg_restarts: int = 0
    publish_retries: int = 0
    killed_pids: set[int] = field(default_factory=set)
    events: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)

    def note(self, what: str) -> None:
        self.events.append(f"{time.monotonic() - self.started_at:6.1f}s {what}")


Event = tuple[float, Callable[["Chaos"], Coroutine[Any, Any, None]]]
"""(when, what): an extra timed action of the caller's, e.g. killing a cluster node."""


@dataclass
class Outcome:
    """What a scenario did and found."""

    chaos: Chaos
    findings: Findings
    problems: list[str]
    seconds: float
    exits: list[int | None]
    finished_at: list[float]
    """When each completed run finished (epoch seconds, the ledger's clock), sorted."""


async def retrying(what: Callable[[], Awaitable[object]], chaos: Chaos) -> None:
    """Publish through a nats-server restart: the same cid and Nats-Msg-Ids, so repeats are dropped."""
    while True:
        try:
            await what()
            return
        except Exception:  # a timeout or no responders while the server is down
            chaos.publish_retries += 1
            await asyncio.sleep(0.25)


async def _publisher(js: JetStreamContext, plan: Plan, prefix: str, chaos: Chaos) -> list[str]:
    wf = build_workflow(prefix)
    client = TracksClient(js)
    cids = [f"{prefix}-{i:04d}" for i in range(plan.runs)]
    interval = plan.publish_s / plan.runs
    for i, cid in enumerate(cids):
        delay = chaos.started_at + i * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await retrying(functools.partial(client.start, wf, {"n": i}, correlation_id=cid), chaos)
        chaos.runs += 1
    chaos.note(f"published {plan.runs} runs")
    return cids


async def _kill(actors: list[ActorProcess], slots: tuple[int, ...], plan: Plan, chaos: Chaos) -> None:
    for slot in slots:
        proc = actors[slot].proc
        if actors[slot].running and proc is not None:
            chaos.killed_pids.add(proc.pid)
            actors[slot].kill()
            chaos.kills += 1
            chaos.note(f"SIGKILL actor {slot} (pid {proc.pid})")
    await asyncio.sleep(plan.restart_after_s)
    for slot in slots:
        actors[slot].start()
        started = actors[slot].proc
        assert started is not None
        chaos.note(f"actor {slot} restarted (pid {started.pid})")


async def _restart_nats(server: NatsServer, plan: Plan, chaos: Chaos) -> None:
    chaos.note("nats-server stopping")
    await asyncio.to_thread(server.stop)
    await asyncio.sleep(plan.nats_outage_s)
    await asyncio.to_thread(server.start)
    chaos.nats_restarts += 1
    chaos.note("nats-server back")


async def _restart_postgres(server: PostgresServer, plan: Plan, chaos: Chaos) -> None:
    chaos.note("PostgreSQL stopping")
    await asyncio.to_thread(server.stop)
    await asyncio.sleep(plan.pg_outage_s)
    await asyncio.to_thread(server.start)
    chaos.pg_restarts += 1
    chaos.note("PostgreSQL back")


async def _chaos(
    plan: Plan,
    actors: list[ActorProcess],
    nats: NatsServer | None,
    postgres: PostgresServer | None,
    chaos: Chaos,
    extra: Sequence[Event] = (),
) -> None:
    events: list[tuple[float, Callable[[], Coroutine[Any, Any, None]]]] = [
        (at, functools.partial(_kill, actors, slots, plan, chaos)) for at, slots in plan.kills
    ]
    events += [(at, functools.partial(action, chaos)) for at, action in extra]
    if plan.nats_restart_at is not None:
        assert nats is not None
        events.append((plan.nats_restart_at, functools.partial(_restart_nats, nats, plan, chaos)))
    if plan.pg_restart_at is not None:
        assert postgres is not None
        events.append((plan.pg_restart_at, functools.partial(_restart_postgres, postgres, plan, chaos)))
    running: list[
        asyncio.Task[None]
    ] = []  # each at its time, also while another goes on (a kill during an outage)
    for at, action in sorted(events, key=lambda e: e[0]):
        delay = chaos.started_at + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        running.append(asyncio.create_task(action()))
    await asyncio.gather(*running)


async def run_scenario(
    plan: Plan,
    prefix: str,
    tmp_path: Path,
    nats_url: str,
    database_url: str,
    nats: NatsServer | None = None,
    postgres: PostgresServer | None = None,
    *,
    replicas: int = 1,
    extra: Sequence[Event] = (),
    env: dict[str, str] | None = None,
) -> Outcome:
    """``plan`` (and the ``extra`` events) on two actor processes; streams at ``replicas``."""
    names = chaos_tracks(prefix)
    marks = tmp_path / "marks.tsv"
    settings = load_settings(nats_url=nats_url, database_url=database_url, data_dir=tmp_path)
    actor_env = {
        "TRACKS_NATS_URL": nats_url,
        "TRACKS_DATABASE_URL": database_url,
        "TRACKS_DATA_DIR": str(tmp_path),
        "TRACKS_TEST_PREFIX": prefix,
        "TRACKS_CHAOS_MARKS": str(marks),
        "TRACKS_CHAOS_SLEEP_S": str(plan.sleep_s),
        "TRACKS_ACK_WAIT_S": "2",
        "TRACKS_SHUTDOWN_GRACE_S": "5",
        "TRACKS_CONNECT_WAIT_S": "60",
        "TRACKS_STREAM_REPLICAS": str(replicas),
        **(env or {}),
    }
    actors = [
        ActorProcess(["tests.support.apps.chaos_app"], actor_env, tmp_path / f"actor-{i}.log")
        for i in range(ACTORS)
    ]
    nc: NATS = await connect_nats(settings, nats_url, name="test-chaos")
    chaos = Chaos()
    exits: list[int | None] = []
    try:
        js = nc.jetstream()
        await ensure_streams(
            js,
            tracks_stream(
                max_age_s=settings.stream_max_age_s,
                duplicate_window_s=settings.duplicate_window_s,
                replicas=replicas,
            ),
            dlq_stream(max_age_s=settings.dlq_max_age_s, replicas=replicas),
        )
        for actor in actors:
            actor.start()
        await consumers_ready(js, names, actors)

        chaos.started_at = time.monotonic()
        publisher = asyncio.create_task(_publisher(js, plan, prefix, chaos))
        try:
            await _chaos(plan, actors, nats, postgres, chaos, extra)
            cids = await publisher
        finally:
            publisher.cancel()
        pool = await create_pool(database_url, max_size=2)
        try:
            settled = await quiet(pool, js, names, plan.runs, plan.settle_timeout_s)
            seconds = time.monotonic() - chaos.started_at
            chaos.note("quiet" if settled else f"NOT quiet after {plan.settle_timeout_s:.0f}s")
            for actor in actors:  # a clean stop (exit 0); the records are read once nobody writes
                if actor.running:
                    actor.send(signal.SIGTERM)
            for actor in actors:
                exits.append(await actor.wait(timeout=30) if actor.proc is not None else None)
            findings = await examine(pool, js, names, cids, marks, chaos.killed_pids, actors)
            finished_at = sorted(
                float(r["t"])
                for r in await pool.fetch(
                    "SELECT extract(epoch FROM finished_at) AS t FROM workflow_runs "
                    "WHERE correlation_id = ANY($1) AND status = 'completed'",
                    cids,
                )
            )
        finally:
            await pool.close()
    finally:
        for actor in actors:
            actor.kill()
        with contextlib.suppress(Exception):
            await nc.close()

    return Outcome(chaos, findings, problem_lines(actors), seconds, exits, finished_at)


def check_promises(plan: Plan, outcome: Outcome, label: str = "chaos fan-in") -> None:
    """Print the summary line (``pytest -s``) and the details; assert the three promises."""
    chaos, findings, problems, seconds, exits = (
        outcome.chaos,
        outcome.findings,
        outcome.problems,
        outcome.seconds,
        outcome.exits,
    )
    f = findings
    print(
        f"\n{label}: runs={chaos.runs} kills={chaos.kills} nats_restarts={chaos.nats_restarts} "
        f"pg_restarts={chaos.pg_restarts} lost={len(f.lost)} duplicated={len(f.duplicated)} "
        f"unannounced={len(f.unannounced)} unexplained_reruns={len(f.unexplained_reruns)} "
        f"dead_lettered={len(f.dead_lettered)} seconds={seconds:.1f}"
    )
    print(
        f"{label} details: completed_runs={f.completed_runs} restarted_steps={f.restarted_steps} "
        f"reruns_after_kill={f.reruns_after_kill} reruns_after_dropped={f.reruns_after_dropped} "
        f"reruns_recorded={f.reruns_recorded} dropped_outcomes={len(f.dropped)} failed_tries={f.failed_rows} "
        f"join_handler_returns={dict(sorted(f.join_runs.items()))} publish_retries={chaos.publish_retries} "
        f"log_problems={len(problems)} exits={exits}"
    )
    detail = "\n".join(
        [
            "timeline:",
            *chaos.events,
            *(f"lost: {x}" for x in findings.lost[:20]),
            *(f"duplicated: {x}" for x in findings.duplicated[:20]),
            *(f"unannounced: {x}" for x in findings.unannounced[:20]),
            *(f"unexplained: {x}" for x in findings.unexplained_reruns[:20]),
            *(f"dead-lettered: {x}" for x in findings.dead_lettered[:20]),
            *(f"duplicate rows: {x}" for x in findings.duplicate_rows[:20]),
            *(f"unclear failure: {x}" for x in findings.unclear_failures[:20]),
            *(f"failed try: {x}" for x in findings.failures[:20]),
            *(f"dropped outcome: {x}" for x in findings.dropped[:20]),
            *(f"repeated rows (not judged): {x}" for x in findings.repeated_rows[:20]),
            f"processing_logs rows by event type: {findings.event_types}",
            *problems[:40],
        ]
    )
    print(detail)

    assert chaos.kills == sum(len(slots) for _, slots in plan.kills), detail
    if plan.kills and plan.runs >= 200:  # enough load that every kill finds steps in flight
        assert findings.restarted_steps > 0, "no step was in flight when actors were killed\n" + detail
    assert not findings.lost, detail
    assert findings.completed_runs == plan.runs, detail
    assert not findings.unannounced, detail
    assert not findings.duplicated, detail
    assert not findings.duplicate_rows, detail
    assert not findings.unclear_failures, detail
    assert not findings.unexplained_reruns, detail
    assert not findings.dead_lettered, detail
    # an outage is waited out: no try is counted as failed, no completed handler's outcome dropped
    assert not findings.failures, detail
    assert not findings.dropped, detail
    # the fan-in ran its handler to completion once per run (not counting runs cut short by a kill
    # before their completion was recorded)
    assert findings.join_counted == Counter({1: plan.runs}), detail


async def consumers_ready(js: JetStreamContext, names: ChaosTracks, actors: list[ActorProcess]) -> None:
    """Wait until the actors created every track's consumer (before any load). On a cluster still
    electing the consumers' leaders an info request may go unanswered: asked again, not fatal."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            for track in names.all:
                await js.consumer_info("TRACKS", track, timeout=2)
            return
        except (NotFoundError, nats.errors.TimeoutError):
            await asyncio.sleep(0.2)
    raise AssertionError(
        "the actors never created their consumers:\n" + "\n".join(a.output() for a in actors)
    )
