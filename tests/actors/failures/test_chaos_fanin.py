"""Chaos on a fan-in workflow: the three promises under SIGKILLed actors and restarted servers.

Two actor processes, each running every track of ``tests.support.chaos_app`` (roots ``ra`` and
``rb`` fan in to ``join``, which feeds ``leaf``), take a steady stream of runs while the test
SIGKILLs actor processes (a replacement starts at once), stops and restarts the nats-server
and stops and restarts PostgreSQL. Once everything is quiet, the database, the streams and the
handlers' marker file must say:

- **never lose a message**: every run ``completed`` with the right result, every step
  ``completed``, every step and run announced, nothing dead-lettered (the failures are
  infrastructure ones only);
- **never run a completed step twice**: one ``completed`` row per (run, track), one completion
  event per (run, track) and one workflow announcement per run in the stream (which stores a
  repeat with the same ``Nats-Msg-Id`` once, so a count of 2 is a second, different announce);
  the handler run the ledger recorded is the only one at its attempt, and no handler ran after
  the attempt that completed the step;
- **say clearly what went wrong**: a handler that ran to its return without its completion
  being recorded did so in a process that was killed, or its attempt has a ``superseded`` or
  ``failed`` row saying why it did not count, or its actor logged that it could not settle the
  step (counted as ``dropped_outcomes``). Anything else is a silent re-run. Every ``failed`` row
  has an error and an error type; outcome rows are never written twice for one attempt.

Tries that failed (``failed_tries``), dropped outcomes and the actors' ERROR lines and tracebacks
are printed, not judged. When this test was written, a PostgreSQL restart produced some in most
runs: asyncpg raises ``InternalClientError`` ("cannot switch to state 12; another operation (2) is
in progress") on a pooled connection the server terminated, and ``foundation.group_commit.is_transient``
does not take it for an outage, so a claim became a failed try and a completion write an
unsettled step (its handler ran again on the redelivery).

The slow test uses a nats-server and a PostgreSQL of its own (it stops them); the fast one uses
the session's servers and only kills an actor. Each prints a summary line (``pytest -s``)::

    chaos fan-in: runs=… kills=… nats_restarts=… pg_restarts=… lost=… duplicated=… unannounced=…
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from actors import TracksClient
from foundation.connections import connect_nats
from foundation.db import create_pool
from foundation.settings import load_settings
from subjects import dlq_stream, ensure_streams, tracks_stream
from tests.conftest import Servers
from tests.support.actor_process import ActorProcess
from tests.support.chaos_app import ChaosTracks, Marker, build_workflow, chaos_tracks, read_markers
from tests.support.records import stream_subjects
from tests.support.servers import own_nats, own_postgres
from tracks.embedded import NatsServer, PostgresServer

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


@dataclass
class Findings:
    completed_runs: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unannounced: list[str] = field(default_factory=list)
    unexplained_reruns: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)
    reruns_after_kill: int = 0
    """Handler returns in a process killed before their completion was recorded."""
    reruns_after_dropped: int = 0
    """Handler returns whose completion the actor failed to write and dropped ("could not settle")."""
    reruns_recorded: int = 0
    """Handler returns whose attempt has a ``superseded`` or ``failed`` row."""
    dropped: list[str] = field(default_factory=list)
    """The actors' "could not settle" ERROR lines: an outcome given up, left to redelivery."""
    failures: list[str] = field(default_factory=list)
    """``failed`` rows (tries that failed: here only infrastructure can fail a try)."""
    join_runs: Counter[int] = field(default_factory=Counter)
    """How many runs had their join handler return n times (n → runs), kills included."""
    join_counted: Counter[int] = field(default_factory=Counter)
    """The same without the returns of killed processes whose completion was never recorded."""
    restarted_steps: int = 0
    failed_rows: int = 0
    unclear_failures: list[str] = field(default_factory=list)
    """``failed`` rows without an error or an error type."""
    duplicate_rows: list[str] = field(default_factory=list)
    """Outcome rows (completed, superseded, failed) written twice for one attempt."""
    repeated_rows: list[str] = field(default_factory=list)
    """Other rows written more than once for one attempt (reported, not judged)."""
    event_types: dict[str, int] = field(default_factory=dict)


async def _retrying(what: Callable[[], Awaitable[object]], chaos: Chaos) -> None:
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
        await _retrying(lambda cid=cid, i=i: client.start(wf, {"n": i}, correlation_id=cid), chaos)
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
        assert actors[slot].proc is not None
        chaos.note(f"actor {slot} restarted (pid {actors[slot].proc.pid})")


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
) -> None:
    events: list[tuple[float, Callable[[], Awaitable[None]]]] = [
        (at, lambda slots=slots: _kill(actors, slots, plan, chaos)) for at, slots in plan.kills
    ]
    if plan.nats_restart_at is not None:
        assert nats is not None
        events.append((plan.nats_restart_at, lambda: _restart_nats(nats, plan, chaos)))
    if plan.pg_restart_at is not None:
        assert postgres is not None
        events.append((plan.pg_restart_at, lambda: _restart_postgres(postgres, plan, chaos)))
    running = []  # each at its time, also while another goes on (a kill during an outage)
    for at, action in sorted(events, key=lambda e: e[0]):
        delay = chaos.started_at + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        running.append(asyncio.create_task(action()))
    await asyncio.gather(*running)


async def _quiet(
    pool: asyncpg.Pool, js: JetStreamContext, names: ChaosTracks, runs: int, timeout: float
) -> bool:
    """Every run completed and announced, no step running, every consumer drained; or the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # a server still coming back
            done = await pool.fetchval(
                "SELECT count(*) FROM workflow_runs WHERE workflow = $1 AND status = 'completed'",
                names.workflow,
            )
            running = await pool.fetchval(
                "SELECT count(*) FROM track_steps WHERE track_id = ANY($1) AND status = 'running'",
                list(names.all),
            )
            announced = await stream_subjects(js, "TRACKS", f"tracks.workflow.{names.workflow}.completed.*")
            if done == runs and running == 0 and len(announced) == runs:
                infos = [await js.consumer_info("TRACKS", t) for t in names.all]
                if all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos):
                    return True
        await asyncio.sleep(0.5)
    return False


async def _examine(
    pool: asyncpg.Pool,
    js: JetStreamContext,
    names: ChaosTracks,
    cids: list[str],
    marks: Path,
    chaos: Chaos,
    actors: list[ActorProcess],
) -> Findings:
    f = Findings()
    dropped = _dropped_outcomes(actors, f)
    tracks = list(names.all)
    rows = await pool.fetch(
        "SELECT correlation_id, status, result FROM workflow_runs WHERE correlation_id = ANY($1)", cids
    )
    runs = {r["correlation_id"]: r["status"] for r in rows}
    f.completed_runs = sum(1 for s in runs.values() if s == "completed")
    f.lost += [f"run {cid}: {runs.get(cid, 'missing')}" for cid in cids if runs.get(cid) != "completed"]
    for r in rows:  # the leaf's output: the join saw both roots of this very run
        n = int(r["correlation_id"].rsplit("-", 1)[1])
        if r["status"] == "completed" and r["result"] != {"n": n, "ok": True}:
            f.lost.append(f"run {r['correlation_id']}: result {r['result']!r}, not n={n} from both roots")

    steps = {
        (r["track_id"], r["correlation_id"]): r["status"]
        for r in await pool.fetch(
            "SELECT track_id, correlation_id, status FROM track_steps WHERE track_id = ANY($1)", tracks
        )
    }
    completed: dict[tuple[str, str], list[int]] = defaultdict(list)
    explained: set[tuple[str, str, int]] = set()
    for r in await pool.fetch(
        "SELECT track_id, correlation_id, event_type, attempt, error, error_type FROM processing_logs "
        "WHERE track_id = ANY($1) AND event_type IN ('completed', 'superseded', 'failed')",
        tracks,
    ):
        key = (r["track_id"], r["correlation_id"])
        if r["event_type"] == "completed":
            completed[key].append(r["attempt"])
        else:
            explained.add((*key, r["attempt"]))
        if r["event_type"] == "failed":
            f.failed_rows += 1
            f.failures.append(f"{key} attempt {r['attempt']}: {r['error_type']}: {(r['error'] or '')[:200]}")
            if not (r["error"] and r["error_type"]):
                f.unclear_failures.append(f"{key} attempt {r['attempt']}: {r['error_type']!r} {r['error']!r}")
    for r in await pool.fetch(
        "SELECT track_id, correlation_id, event_type, attempt, count(*) AS n FROM processing_logs "
        "WHERE track_id = ANY($1) GROUP BY 1, 2, 3, 4 HAVING count(*) > 1",
        tracks,
    ):
        line = (
            f"{r['track_id']} {r['correlation_id']} {r['event_type']} attempt {r['attempt']}: {r['n']} rows"
        )
        outcome = r["event_type"] in ("completed", "superseded", "failed")
        (f.duplicate_rows if outcome else f.repeated_rows).append(line)
    f.event_types = {
        r["event_type"]: int(r["n"])
        for r in await pool.fetch(
            "SELECT event_type, count(*) AS n FROM processing_logs WHERE track_id = ANY($1) "
            "GROUP BY 1 ORDER BY 1",
            tracks,
        )
    }
    f.restarted_steps = int(
        await pool.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM processing_logs WHERE track_id = ANY($1) "
            "AND event_type = 'started' GROUP BY track_id, correlation_id HAVING count(*) > 1) s",
            tracks,
        )
    )

    markers: dict[tuple[str, str], list[Marker]] = defaultdict(list)
    for m in read_markers(marks):
        markers[(m.track, m.cid)].append(m)

    for track in tracks:
        for cid in cids:
            key = (track, cid)
            if steps.get(key) != "completed":
                f.lost.append(f"step {track} {cid}: {steps.get(key, 'never claimed')}")
            attempts = completed.get(key, [])
            if len(attempts) != 1:
                (f.lost if not attempts else f.duplicated).append(
                    f"step {track} {cid}: {len(attempts)} completed rows (attempts {attempts})"
                )
            if not attempts:
                continue
            recorded = attempts[0]
            ran = markers.get(key, [])
            at_recorded = [m for m in ran if m.attempt == recorded]
            if len(at_recorded) != 1:
                f.duplicated.append(
                    f"step {track} {cid}: {len(at_recorded)} handler runs at the recorded attempt {recorded} "
                    f"(pids {[m.pid for m in at_recorded]})"
                )
            cut_short = 0
            for m in ran:
                if m.attempt == recorded:
                    continue
                if m.attempt > recorded:
                    f.duplicated.append(
                        f"step {track} {cid}: the handler ran again (attempt {m.attempt}, pid {m.pid}) "
                        f"after attempt {recorded} completed the step"
                    )
                elif key in dropped:
                    f.reruns_after_dropped += 1
                    cut_short += 1
                elif m.pid in chaos.killed_pids:
                    f.reruns_after_kill += 1
                    cut_short += 1
                elif (track, cid, m.attempt) in explained:
                    f.reruns_recorded += 1
                else:
                    f.unexplained_reruns.append(
                        f"step {track} {cid}: attempt {m.attempt} ran to its return in pid {m.pid} (never "
                        f"killed) but no superseded or failed row says why attempt {recorded} ran too"
                    )
            if track == names.join:
                f.join_runs[len(ran)] += 1
                f.join_counted[len(ran) - cut_short] += 1

    for track in tracks:
        events = await stream_subjects(js, "TRACKS", f"tracks.{track}.completed.*")
        for cid in cids:
            n = events.get(f"tracks.{track}.completed.{cid}", 0)
            if n == 0:
                f.unannounced.append(f"no completion event of {track} for {cid}")
            elif n > 1:
                f.duplicated.append(f"{n} completion events of {track} for {cid}")
        f.dead_lettered += [
            f"{s}: {n}" for s, n in (await stream_subjects(js, "DLQ", f"dlq.{track}.*")).items()
        ]
        f.dead_lettered += [
            f"{s}: {n}" for s, n in (await stream_subjects(js, "TRACKS", f"tracks.{track}.failed.*")).items()
        ]
    announced = await stream_subjects(js, "TRACKS", f"tracks.workflow.{names.workflow}.completed.*")
    for cid in cids:
        n = announced.get(f"tracks.workflow.{names.workflow}.completed.{cid}", 0)
        if n == 0:
            f.unannounced.append(f"run {cid} not announced")
        elif n > 1:
            f.duplicated.append(f"run {cid} announced {n} times")
    f.dead_lettered += [
        f"{s}: {n}"
        for s, n in (
            await stream_subjects(js, "TRACKS", f"tracks.workflow.{names.workflow}.failed.*")
        ).items()
    ]
    return f


_DROPPED = re.compile(r" ERROR actors\.worker: (\S+): could not settle (\S+);")


def _dropped_outcomes(actors: list[ActorProcess], f: Findings) -> set[tuple[str, str]]:
    """(track, cid) of every step whose outcome an actor gave up writing ("could not settle ...;
    it stays unacked for redelivery"): its handler runs again on the redelivery."""
    found = set()
    for actor in actors:
        with contextlib.suppress(OSError):
            for line in actor.log_file.read_text(errors="replace").splitlines():
                if match := _DROPPED.search(line):
                    found.add((match[1], match[2].rsplit(".", 1)[1]))
                    f.dropped.append(line[:300])
    return found


def _problem_lines(actors: list[ActorProcess]) -> list[str]:
    """ERROR and CRITICAL lines of every actor incarnation's log, and each traceback as the line
    that logged it and the exception that ends it."""
    found = []
    for i, actor in enumerate(actors):
        try:
            lines = actor.log_file.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for n, line in enumerate(lines):
            if line.startswith("Traceback"):
                end = next((x for x in lines[n + 1 :] if x and not x.startswith(" ")), "?")
                found.append(f"actor {i}: traceback after {lines[n - 1][:200] if n else '?'!r}: {end[:200]}")
            elif " ERROR " in line or " CRITICAL " in line:
                found.append(f"actor {i}: {line[:300]}")
    return found


async def _scenario(
    plan: Plan,
    prefix: str,
    tmp_path: Path,
    nats_url: str,
    database_url: str,
    nats: NatsServer | None = None,
    postgres: PostgresServer | None = None,
) -> None:
    names = chaos_tracks(prefix)
    marks = tmp_path / "marks.tsv"
    settings = load_settings(nats_url=nats_url, database_url=database_url, data_dir=tmp_path)
    env = {
        "TRACKS_NATS_URL": nats_url,
        "TRACKS_DATABASE_URL": database_url,
        "TRACKS_DATA_DIR": str(tmp_path),
        "TRACKS_TEST_PREFIX": prefix,
        "TRACKS_CHAOS_MARKS": str(marks),
        "TRACKS_CHAOS_SLEEP_S": str(plan.sleep_s),
        "TRACKS_ACK_WAIT_S": "2",
        "TRACKS_SHUTDOWN_GRACE_S": "5",
        "TRACKS_CONNECT_WAIT_S": "60",
    }
    actors = [
        ActorProcess(["tests.support.chaos_app"], env, tmp_path / f"actor-{i}.log") for i in range(ACTORS)
    ]
    nc: NATS = await connect_nats(settings, nats_url, name="test-chaos")
    chaos = Chaos()
    exits: list[int | None] = []
    try:
        js = nc.jetstream()
        await ensure_streams(
            js,
            tracks_stream(
                max_age_s=settings.stream_max_age_s, duplicate_window_s=settings.duplicate_window_s
            ),
            dlq_stream(max_age_s=settings.dlq_max_age_s),
        )
        for actor in actors:
            actor.start()
        await _consumers_ready(js, names, actors)

        chaos.started_at = time.monotonic()
        publisher = asyncio.create_task(_publisher(js, plan, prefix, chaos))
        try:
            await _chaos(plan, actors, nats, postgres, chaos)
            cids = await publisher
        finally:
            publisher.cancel()
        pool = await create_pool(database_url, max_size=2)
        try:
            quiet = await _quiet(pool, js, names, plan.runs, plan.settle_timeout_s)
            seconds = time.monotonic() - chaos.started_at
            chaos.note("quiet" if quiet else f"NOT quiet after {plan.settle_timeout_s:.0f}s")
            for actor in actors:  # a clean stop (exit 0); the records are read once nobody writes
                if actor.running:
                    actor.send(signal.SIGTERM)
            for actor in actors:
                exits.append(await actor.wait(timeout=30) if actor.proc is not None else None)
            findings = await _examine(pool, js, names, cids, marks, chaos, actors)
        finally:
            await pool.close()
    finally:
        for actor in actors:
            actor.kill()
        with contextlib.suppress(Exception):
            await nc.close()

    problems = _problem_lines(actors)
    f = findings
    print(
        f"\nchaos fan-in: runs={chaos.runs} kills={chaos.kills} nats_restarts={chaos.nats_restarts} "
        f"pg_restarts={chaos.pg_restarts} lost={len(f.lost)} duplicated={len(f.duplicated)} "
        f"unannounced={len(f.unannounced)} unexplained_reruns={len(f.unexplained_reruns)} "
        f"dead_lettered={len(f.dead_lettered)} seconds={seconds:.1f}"
    )
    print(
        f"chaos fan-in details: completed_runs={f.completed_runs} restarted_steps={f.restarted_steps} "
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


async def _consumers_ready(js: JetStreamContext, names: ChaosTracks, actors: list[ActorProcess]) -> None:
    """Wait until the actors created every track's consumer (before any load)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            for track in names.all:
                await js.consumer_info("TRACKS", track)
            return
        except NotFoundError:
            await asyncio.sleep(0.2)
    raise AssertionError(
        "the actors never created their consumers:\n" + "\n".join(a.output() for a in actors)
    )


@pytest.mark.slow
async def test_fanin_keeps_the_three_promises_through_kills_and_server_restarts(
    unique: str, tmp_path: Path
) -> None:
    """600 runs over 40 s. The nats-server is down 10-14 s, PostgreSQL 22-27 s (both longer than
    the 2 s ack wait); 7 SIGKILLs: at 5 s, during each outage (12 s, 24 s), at 17 s and 31 s, and
    both actors at once at 36 s."""
    plan = Plan(
        runs=600,
        publish_s=40,
        kills=((5, (0,)), (12, (1,)), (17, (0,)), (24, (1,)), (31, (0,)), (36, (0, 1))),
        nats_restart_at=10,
        nats_outage_s=4,
        pg_restart_at=22,
        pg_outage_s=5,
    )
    with own_nats(tmp_path) as nats:
        async with own_postgres(tmp_path) as pg:
            await _scenario(plan, unique, tmp_path, nats.url, pg.url, nats, pg)


async def test_fanin_keeps_the_three_promises_through_one_kill(
    servers: Servers, migrated: None, unique: str, tmp_path: Path
) -> None:
    """60 runs over 6 s on the session's servers; one actor SIGKILLed at 3 s."""
    plan = Plan(runs=60, publish_s=6, kills=((3, (0,)),), settle_timeout_s=25)
    await _scenario(plan, unique, tmp_path, servers.nats_url, servers.database_url)
