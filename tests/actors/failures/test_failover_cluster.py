"""Failover on a 3-node JetStream cluster: the fan-in workflow under steady load while the TRACKS
stream leader is SIGKILLed, and later the next leader, each node restarted a few seconds after.

Streams are R3 (``TRACKS_STREAM_REPLICAS=3``); two actor processes (every track of
``tests.support.apps.chaos_app``) and a scheduler process firing a 1-second schedule are given every
node's URL and must carry on through the remaining two on their own. The promises are those of
``test_chaos_fanin.py`` (every run completed and announced once, no completed step run again,
nothing dead-lettered), and no tick fired twice. Prints, with ``pytest -s``::

    failover: runs=360 node_kills=2 lost=0 duplicated=0 dead_lettered=0 recovery_s=[…, …] ticks=…
    failover throughput: kill 1 (tracks-2, leader of TRACKS): completions resumed … s after it; …

(and the chaos test's summary, ``failover chaos checks: runs=… kills=0 …``: no actor is killed).

The partition test runs the same load on nodes in network namespaces (``tests/support/netns.py``)
and cuts the TRACKS leader off from its peers for 10 s, clients still reaching it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from foundation.connections import connect_nats
from foundation.settings import load_settings
from tests.conftest import Servers
from tests.support.actor_process import REPO, ActorProcess, tracks_command
from tests.support.fanin_chaos import Chaos, Event, Outcome, Plan, check_promises, run_scenario
from tests.support.netns import NetnsCluster, netns_available, netns_cluster
from tests.support.records import stream_subjects
from tests.support.servers import own_cluster
from tracks.embedded import NatsCluster, stream_leader

KILL_AT = (8.0, 18.0)
"""Seconds after the first run is published: each time, SIGKILL the node leading TRACKS."""
DOWN_S = 5.0
"""How long a killed node stays down before it is started again."""
PARTITION_S = 10.0
"""How long the partition test keeps the leader cut off from its peers."""


@dataclass
class Kill:
    node: str
    at: float
    """Wall clock (epoch seconds), comparable with the ledger's ``finished_at``."""


@dataclass
class Kills:
    done: list[Kill] = field(default_factory=list)


async def _leader(cluster: NatsCluster, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [n.url for n in cluster.nodes if n.running]
        if leader := await stream_leader(running, "TRACKS", timeout=1.0):
            return leader
        await asyncio.sleep(0.2)
    raise AssertionError("TRACKS has no leader")


def _kill_leader(cluster: NatsCluster, kills: Kills) -> Callable[[Chaos], Coroutine[Any, Any, None]]:
    async def action(chaos: Chaos) -> None:
        node = await _leader(cluster)
        pid = await asyncio.to_thread(cluster.kill_node, node)
        kills.done.append(Kill(node, time.time()))
        chaos.note(f"SIGKILL node {node} (pid {pid}), leader of TRACKS")
        await asyncio.sleep(DOWN_S)
        await asyncio.to_thread(cluster.start_node, node)
        chaos.note(f"node {node} started again")

    return action


def _partition_leader(cluster: NetnsCluster, kills: Kills) -> Callable[[Chaos], Coroutine[Any, Any, None]]:
    async def action(chaos: Chaos) -> None:
        node = await _leader(cluster)
        await asyncio.to_thread(cluster.isolate, node)
        kills.done.append(Kill(node, time.time()))
        chaos.note(f"node {node}, leader of TRACKS, cut off from its peers")
        await asyncio.sleep(PARTITION_S)
        await asyncio.to_thread(cluster.heal, node)
        chaos.note(f"node {node} joined again")

    return action


def _recovery(outcome: Outcome, kills: Kills) -> tuple[list[float], list[str]]:
    """Per kill, the recovery time: from the kill to the end of the longest pause in completions
    within 15 s after it (steps already past NATS may complete at once; the pause is the outage);
    and lines on the throughput: completions per second before the first kill and after each."""
    done = outcome.finished_at
    recovery, lines = [], []
    per_second = Counter(int(t) for t in done)
    for i, kill in enumerate(kills.done, 1):
        window = [kill.at, *[t for t in done if kill.at < t < kill.at + 15]]
        gaps = [(b - a, b) for a, b in itertools.pairwise(window)]
        _, resumed = max(gaps, default=(0.0, kill.at))
        recovery.append(resumed - kill.at)
        after = [per_second.get(int(kill.at) + s, 0) for s in range(1, 11)]
        lines.append(
            f"kill {i} ({kill.node}, leader of TRACKS): completions resumed {resumed - kill.at:.2f} s "
            f"after it; runs completed per second in the 10 s after: {after}"
        )
    first = kills.done[0].at if kills.done else (done[-1] if done else 0.0)
    baseline = len([t for t in done if first - 5 <= t < first]) / 5
    lines.append(f"baseline before the first kill: {baseline:.1f} runs/s")
    return recovery, lines


async def _add_schedule(database_url: str, name: str, target: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKS_")}
    env["TRACKS_DATABASE_URL"] = database_url
    cmd = [
        *tracks_command(),
        "schedule",
        "add",
        name,
        "* * * * * *",
        "--target",
        target,
        "--overlap",
        "allow",
    ]
    done = await asyncio.to_thread(
        subprocess.run, cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr


async def _tick_cids(database_url: str, name: str) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT e.correlation_id FROM job_executions e JOIN job_schedules s ON s.id = e.schedule_id "
            "WHERE s.name = $1 AND e.correlation_id IS NOT NULL",
            name,
        )
    finally:
        await conn.close()
    return {r["correlation_id"] for r in rows}


async def _ticks(pool: asyncpg.Pool, name: str) -> tuple[int, list[str]]:
    """How many ticks the schedule fired, and every fire time decided more than once."""
    rows = await pool.fetch(
        "SELECT e.scheduled_for, count(*) AS n FROM job_executions e JOIN job_schedules s "
        "ON s.id = e.schedule_id WHERE s.name = $1 GROUP BY 1",
        name,
    )
    return len(rows), [f"{r['scheduled_for']}: {r['n']} executions" for r in rows if r["n"] > 1]


async def _under_load(
    servers: Servers,
    unique: str,
    tmp_path: Path,
    cluster: NatsCluster,
    plan: Plan,
    extra: list[Event],
    kills: Kills,
    what: str,
    *,
    every_tick: bool = True,
) -> None:
    """``plan`` and the ``extra`` cluster events, with a scheduler firing every second; the
    promises checked, no tick fired twice, and the recovery per event printed. ``every_tick``:
    no tick lost either (else a tick not published must be recorded ``failed`` with its error)."""
    schedule, tick_track = f"t{unique}-tick", f"{unique}-tick"
    await _add_schedule(servers.database_url, schedule, tick_track)
    scheduler = ActorProcess(
        [],
        {
            "TRACKS_NATS_URL": cluster.url,
            "TRACKS_DATABASE_URL": servers.database_url,
            "TRACKS_DATA_DIR": str(tmp_path),
            "TRACKS_STREAM_REPLICAS": "3",
            "TRACKS_SCHEDULER_STANDARD_SCHEDULES": "false",
            "TRACKS_SCHEDULER_NAME_PREFIX": f"t{unique}",
            "TRACKS_SCHEDULER_HISTORY_CONSUMER": f"history-{unique}",
            "TRACKS_SCHEDULER_MISFIRE_GRACE_S": "3600",
        },
        tmp_path / "scheduler.log",
        command=("scheduler", "run"),
    )
    scheduler.start()
    try:
        outcome = await run_scenario(
            plan, unique, tmp_path, cluster.url, servers.database_url, replicas=3, extra=extra
        )
        scheduler_alive = scheduler.running
        scheduler.send(signal.SIGTERM)
        scheduler_exit = await scheduler.wait(timeout=30)
    finally:
        scheduler.kill()
    settings = load_settings(nats_url=cluster.url, database_url=servers.database_url, data_dir=tmp_path)
    nc = await connect_nats(settings, cluster.url, name="test-failover")
    pool = await asyncpg.create_pool(servers.database_url, min_size=1, max_size=2)
    try:
        published = await stream_subjects(nc.jetstream(), "TRACKS", f"tracks.{tick_track}.run.*")
        ticks, twice = await _ticks(pool, schedule)
        failed_ticks = await pool.fetch(
            "SELECT e.correlation_id, e.error_message FROM job_executions e JOIN job_schedules s "
            "ON s.id = e.schedule_id WHERE s.name = $1 AND e.status = 'failed'",
            schedule,
        )
        last_tick = await pool.fetchval(
            "SELECT max(extract(epoch FROM e.scheduled_for)) FROM job_executions e JOIN job_schedules s "
            "ON s.id = e.schedule_id WHERE s.name = $1",
            schedule,
        )
    finally:
        await pool.close()
        with contextlib.suppress(Exception):
            await nc.close()

    recovery, lines = _recovery(outcome, kills)
    twice += [f"{s}: published {n} times" for s, n in published.items() if n > 1]
    f = outcome.findings
    print(
        f"\n{what}: runs={outcome.chaos.runs} node_events={len(kills.done)} lost={len(f.lost)} "
        f"duplicated={len(f.duplicated)} dead_lettered={len(f.dead_lettered)} "
        f"recovery_s={[round(r, 2) for r in recovery]} ticks={ticks} ticks_published={len(published)} "
        f"ticks_fired_twice={len(twice)} ticks_failed={len(failed_ticks)}"
    )
    for row in failed_ticks:
        print(f"{what} failed tick: {row['error_message']}")
    for line in lines:
        print(f"{what} throughput: {line}")
    check_promises(plan, outcome, label=f"{what} chaos checks")
    assert len(kills.done) == len(extra), kills
    assert scheduler_alive and scheduler_exit == 0, scheduler.output()
    assert not twice, twice
    if every_tick:
        assert ticks >= 20 and len(published) == ticks, (ticks, len(published), scheduler.output())
    else:  # a tick not published is recorded failed, with why
        unpublished = {cid for cid in await _tick_cids(servers.database_url, schedule)} - {
            s.rsplit(".", 1)[1] for s in published
        }
        assert unpublished == {r["correlation_id"] for r in failed_ticks}, scheduler.output()
        assert all(r["error_message"] for r in failed_ticks), failed_ticks
    assert last_tick is not None and float(last_tick) > kills.done[-1].at + DOWN_S, "no tick after the last"


@pytest.mark.slow
async def test_failover_of_the_stream_leader_keeps_the_promises(
    servers: Servers, migrated: None, unique: str, tmp_path: Path
) -> None:
    """360 runs over 30 s on R3 streams; the TRACKS leader SIGKILLed at 8 s and the next one at
    18 s, each started again 5 s later. The actors' ack wait is 2 s."""
    plan = Plan(runs=360, publish_s=30, kills=(), sleep_s=0.2, settle_timeout_s=60)
    kills = Kills()
    with own_cluster(tmp_path, n=3) as cluster:
        extra: list[Event] = [(at, _kill_leader(cluster, kills)) for at in KILL_AT]
        await _under_load(servers, unique, tmp_path, cluster, plan, extra, kills, "failover")


@pytest.mark.slow
async def test_a_partitioned_stream_leader_keeps_the_promises(
    servers: Servers, migrated: None, unique: str, tmp_path: Path
) -> None:
    """300 runs over 25 s on R3 streams, nodes in network namespaces; at 8 s the TRACKS leader is
    cut off from its peers (clients still reach it) for PARTITION_S, then joined again.

    What happens: the two other nodes elect a new leader; the cut-off one cannot commit (no
    quorum). A client connected to it keeps its connection (nothing is wrong with it) and stays:
    its publishes time out, its fetches return nothing, until the partition heals; it does not
    move to the majority by itself. So a tick whose scheduler sits there may be recorded failed
    (its retries outlast the partition or not); the actors' promises hold either way."""
    if not netns_available():
        pytest.skip("needs root and `ip netns`")
    plan = Plan(runs=300, publish_s=25, kills=(), sleep_s=0.2, settle_timeout_s=90)
    kills = Kills()
    with netns_cluster(tmp_path, n=3) as cluster:
        extra: list[Event] = [(8.0, _partition_leader(cluster, kills))]
        await _under_load(
            servers, unique, tmp_path, cluster, plan, extra, kills, "partition", every_tick=False
        )
