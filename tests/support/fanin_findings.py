"""What a fan-in chaos run left behind, read from the ledger, the streams, the handlers' marker
file and the actors' logs (see ``tests/actors/failures/test_chaos_fanin.py`` for the promises),
and the checks that judge it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from nats.js import JetStreamContext

from tests.support.actor_process import ActorProcess
from tests.support.apps.chaos_app import ChaosTracks, Marker, read_markers
from tests.support.records import stream_subjects

__all__ = ["Findings", "dropped_outcomes", "examine", "problem_lines", "quiet"]


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


async def quiet(
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


async def examine(
    pool: asyncpg.Pool,
    js: JetStreamContext,
    names: ChaosTracks,
    cids: list[str],
    marks: Path,
    killed_pids: set[int],
    actors: list[ActorProcess],
) -> Findings:
    f = Findings()
    dropped = dropped_outcomes(actors, f)
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
                elif m.pid in killed_pids:
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


_DROPPED = re.compile(r" ERROR actors\.(?:runtime\.)?worker: (\S+): could not settle (\S+);")


def dropped_outcomes(actors: list[ActorProcess], f: Findings) -> set[tuple[str, str]]:
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


def problem_lines(actors: list[ActorProcess]) -> list[str]:
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
