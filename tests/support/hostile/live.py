"""A live actor fed hostile messages, and the judge of each message's end state.

:func:`fuzz` publishes a batch drawn from :mod:`tests.support.hostile` to one runtime, waits until
every message settled, and returns an :class:`Outcome`: each message's end state against the one
its class says, the dead letters with their reasons, what the actor logged, lost or stuck
messages. :func:`assert_clean` fails a test on any deviation. Used by
``tests/actors/failures/test_fuzz_input.py``.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from actors import Runtime
from foundation.settings import Settings
from subjects import headers as wire_headers
from tests.support.apps.fuzz_workflow import FuzzPair
from tests.support.hostile.catalogue import hostile_messages
from tests.support.hostile.verdicts import COMPLETED, DEAD, Hostile, reason_key
from tests.support.records import consumer_idle
from tests.support.waiting import eventually

# --- what the actor logs ---------------------------------------------------------------------


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def unhandled(self) -> list[str]:
        """ERROR and worse from the runtime's loggers, and asyncio's "never retrieved"."""
        found = []
        for r in self.records:
            text = r.getMessage()
            if (r.levelno >= logging.ERROR and r.name.split(".")[0] in ("actors", "tracks", "subjects")) or (
                "never retrieved" in text
            ):
                found.append(f"{r.name} {r.levelname}: {text[:300]}\n{r.exc_text or ''}".strip())
        return found

    def warnings(self) -> dict[str, tuple[int, str]]:
        """WARNINGs of the runtime by message template: how many, and the first one in full."""
        seen: dict[str, tuple[int, str]] = {}
        for r in self.records:
            if r.levelno == logging.WARNING and r.name.split(".")[0] in ("actors", "tracks"):
                key = f"{r.name}: {r.msg if isinstance(r.msg, str) else r.getMessage()}"[:100]
                n, first = seen.get(key, (0, r.getMessage()[:300]))
                seen[key] = (n + 1, first)
        return seen


@contextmanager
def captured_logs() -> Iterator[_Capture]:
    capture = _Capture()
    root = logging.getLogger()
    watched = [logging.getLogger(name) for name in ("actors", "tracks", "subjects")]
    levels = [w.level for w in watched]
    root.addHandler(capture)
    for w in watched:
        w.setLevel(logging.WARNING)
    try:
        yield capture
    finally:
        gc.collect()  # "Future exception was never retrieved" is logged when the future is collected
        root.removeHandler(capture)
        for w, level in zip(watched, levels, strict=True):
            w.setLevel(level)


# --- dead letters, as they arrive ------------------------------------------------------------


@dataclass(frozen=True)
class Letter:
    subject: str
    headers: dict[str, str]
    size: int


class DeadLetters:
    """Every dead letter of the pair's tracks, by the stream sequence of the message it buries."""

    def __init__(self) -> None:
        self.by_seq: dict[int, list[Letter]] = defaultdict(list)
        self.count = 0

    async def watch(self, js: JetStreamContext, tracks: list[str]) -> list[JetStreamContext.PushSubscription]:
        return [
            await js.subscribe(f"dlq.{track}.>", ordered_consumer=True, cb=self._arrived) for track in tracks
        ]

    async def _arrived(self, msg: Msg) -> None:
        hdrs = wire_headers.plain(msg.headers)
        seq = int(hdrs.get("Tracks-Original-Stream-Seq", "0") or 0)
        self.by_seq[seq].append(Letter(msg.subject, hdrs, len(msg.data)))
        self.count += 1


# --- one batch against a live actor ----------------------------------------------------------


@dataclass
class Sent:
    message: Hostile
    seq: int
    at: float
    """Wall-clock time of the publish (time.time())."""


@dataclass
class Outcome:
    sent: list[Sent] = field(default_factory=list)
    refused: list[tuple[Hostile, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lost: list[Sent] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    latencies: list[tuple[float, str]] = field(default_factory=list)
    """Good triggers: seconds from publish to their run's completion, and what they were."""
    final_latency: float | None = None
    letters_by_reason: Counter[str] = field(default_factory=Counter)
    letters_by_type: Counter[str] = field(default_factory=Counter)
    unhandled: list[str] = field(default_factory=list)
    warnings: dict[str, tuple[int, str]] = field(default_factory=dict)
    settle_s: float = 0.0

    def report(self, title: str) -> str:
        kinds = Counter(s.message.kind for s in self.sent)
        expect = Counter((s.message.kind, s.message.expect) for s in self.sent)
        lines = [
            f"== {title}: {len(self.sent)} messages published, {len(self.refused)} refused by the client"
        ]
        for kind, n in sorted(kinds.items()):
            lines.append(
                f"   {kind:<14} {n:>5}  (completed {expect[(kind, COMPLETED)]}, dead {expect[(kind, DEAD)]})"
            )
        lines.append(f"   dead letters by type: {dict(self.letters_by_type)}")
        lines.append("   dead letters by reason:")
        lines += [f"      {reason:<28} {n}" for reason, n in self.letters_by_reason.most_common()]
        lines.append(f"   lost: {len(self.lost)}   stuck: {len(self.stuck)}   failures: {len(self.failures)}")
        lines.append(f"   all settled {self.settle_s:.1f}s after the first publish")
        if self.latencies:
            values = sorted(v for v, _ in self.latencies)
            worst = max(self.latencies)
            lines.append(
                f"   good runs: {len(values)}, latency publish→run completed: median "
                f"{statistics.median(values) * 1000:.0f} ms, worst {worst[0] * 1000:.0f} ms ({worst[1]})"
            )
        if self.final_latency is not None:
            lines.append(
                f"   good trigger after the batch: run completed in {self.final_latency * 1000:.0f} ms"
            )
        for stuck in self.stuck[:10]:
            lines.append(f"   STUCK {stuck}")
        for message, error in self.refused[:10]:
            lines.append(f"   refused: {message.describe()[:150]}: {error}")
        for failure in self.failures[:40]:
            lines.append(f"   FAILURE {failure}")
        for text in self.unhandled[:10]:
            lines.append(f"   UNHANDLED {text[:2000]}")
        for template, (n, first) in sorted(self.warnings.items(), key=lambda kv: -kv[1][0])[:12]:
            lines.append(f"   warning x{n}: {template}\n      first: {first}")
        return "\n".join(lines)


def tuned(settings: Settings) -> Settings:
    """Retries fast, so that input wrongly retried shows (``Tracks-Deliveries`` > 1) within seconds."""
    return settings.model_copy(update={"retry_base_s": 0.05, "retry_cap_s": 0.2})


async def fuzz(
    settings: Settings,
    pool: asyncpg.Pool,
    js: JetStreamContext,
    pair: FuzzPair,
    *,
    count: int,
    seed_value: int,
    max_huge: int,
    settle_timeout: float,
) -> Outcome:
    outcome = Outcome()
    letters = DeadLetters()
    up, down = pair.up, pair.down
    with captured_logs() as logs:
        subscriptions = await letters.watch(js, [up, down])
        async with Runtime(list(pair.workflow), settings=tuned(settings)) as runtime:
            nc = runtime.nc
            assert nc is not None
            messages = hostile_messages(pair, nc.max_payload, count, seed_value=seed_value, max_huge=max_huge)
            started = time.monotonic()
            for message in messages:
                at = time.time()
                try:
                    ack = await js.publish(message.subject, message.body, headers=message.headers)
                except Exception as exc:  # the client or the server would not take it: not the actor's
                    outcome.refused.append((message, f"{type(exc).__name__}: {exc}"[:200]))
                    continue
                assert not ack.duplicate, message.describe()
                outcome.sent.append(Sent(message, ack.seq, at))

            async def settled() -> bool:
                done = await _completed_seqs(pool, up)
                if any(s.seq not in done and s.seq not in letters.by_seq for s in outcome.sent):
                    return False
                return await consumer_idle(js, up) is not None and await consumer_idle(js, down) is not None

            with contextlib.suppress(AssertionError):  # judged below, message by message
                await eventually(settled, timeout=settle_timeout, what="every hostile message settled")
            outcome.settle_s = time.monotonic() - started

            # the actor still serves: a good trigger now runs through both tracks at once
            final = f"final-{pair.up}"
            at = time.monotonic()
            await js.publish(f"tracks.{up}.run.{final}", b'{"n": 1}')

            async def final_done() -> bool:
                status = await pool.fetchval(
                    "SELECT status FROM workflow_runs WHERE correlation_id = $1", final
                )
                return bool(status == "completed")

            try:
                await eventually(final_done, timeout=15, what="a good trigger after the hostile batch")
                outcome.final_latency = time.monotonic() - at
            except AssertionError as exc:
                outcome.failures.append(f"final good trigger: {exc}")

            for track in (up, down):
                info = await js.consumer_info("TRACKS", track)
                if info.num_redelivered or info.num_ack_pending or info.num_pending:
                    outcome.stuck.append(
                        f"consumer {track}: pending {info.num_pending}, ack pending {info.num_ack_pending}, "
                        f"redelivered {info.num_redelivered}"
                    )
            if not nc.is_connected or nc.stats["reconnects"]:
                outcome.failures.append(
                    f"the actor's NATS connection: connected={nc.is_connected}, stats={nc.stats}, "
                    f"last error={nc.last_error!r}"
                )
        for sub in subscriptions:
            await sub.unsubscribe()
    outcome.unhandled = logs.unhandled()
    outcome.warnings = logs.warnings()
    await _judge(outcome, pool, pair, letters)
    return outcome


async def _completed_seqs(pool: asyncpg.Pool, track: str) -> set[int]:
    rows = await pool.fetch(
        "SELECT stream_seq FROM processing_logs WHERE track_id = $1 AND event_type = 'completed'", track
    )
    return {r["stream_seq"] for r in rows}


async def _judge(outcome: Outcome, pool: asyncpg.Pool, pair: FuzzPair, letters: DeadLetters) -> None:
    up, down = pair.up, pair.down
    completed: dict[tuple[str, int], list[asyncpg.Record]] = defaultdict(list)
    for r in await pool.fetch(
        "SELECT track_id, correlation_id, stream_seq, occurred_at FROM processing_logs "
        "WHERE track_id = ANY($1::text[]) AND event_type = 'completed'",
        [up, down],
    ):
        completed[(r["track_id"], r["stream_seq"])].append(r)
    steps = {
        (r["correlation_id"], r["track_id"]): r["status"]
        for r in await pool.fetch(
            "SELECT correlation_id, track_id, status FROM track_steps WHERE track_id = ANY($1::text[])",
            [up, down],
        )
    }
    runs: dict[str, tuple[str, datetime | None]] = {
        r["correlation_id"]: (r["status"], r["finished_at"])
        for r in await pool.fetch(
            "SELECT correlation_id, status, finished_at FROM workflow_runs WHERE workflow = $1", pair.name
        )
    }
    for (cid, track), status in steps.items():
        if status == "running":
            outcome.stuck.append(f"step {track}/{cid!r} still running")
    for seq_letters in letters.by_seq.values():
        for letter in seq_letters:
            outcome.letters_by_type[letter.headers.get("Tracks-Error-Type", "?")] += 1
            outcome.letters_by_reason[reason_key(letter.headers.get("Tracks-Error", ""))] += 1

    for sent in outcome.sent:
        m, seq = sent.message, sent.seq
        done = completed.get((m.track, seq), [])
        dead = letters.by_seq.get(seq, [])
        problems: list[str] = []
        if not done and not dead:
            outcome.lost.append(sent)
            problems.append("no end state (lost or stuck)")
        elif m.expect == COMPLETED:
            if dead:
                problems.append(f"dead-lettered: {dead[0].headers.get('Tracks-Error', '')[:200]!r}")
            if len(done) != 1:
                problems.append(f"{len(done)} completed records")
            if done:
                cid = done[0]["correlation_id"]
                if m.cid is not None and cid != m.cid:
                    problems.append(f"completed under {cid!r}, not {m.cid!r}")
                status, finished = runs.get(cid, ("none", None))
                if status != "completed" or finished is None:
                    problems.append(f"its run is {status}")
                else:
                    outcome.latencies.append((finished.timestamp() - sent.at, f"{m.kind}/{m.variant}"))
        else:
            problems += _judge_dead(m, dead, done, steps)
        ran_down = pair.ran[down][m.cid or ""] or steps.get((m.cid or "", down)) in ("completed", "running")
        if m.forged and ran_down:
            problems.append(f"the forged event ran {down} for {m.cid!r}")
        if problems:
            outcome.failures.append(f"seq {seq} {m.describe()[:300]}: {'; '.join(problems)}")


def _judge_dead(
    m: Hostile, dead: list[Letter], done: list[asyncpg.Record], steps: dict[tuple[str, str], str]
) -> list[str]:
    problems = []
    if done:
        problems.append(f"completed ({len(done)}x) although it is {m.kind}")
    if len(dead) != 1:
        problems.append(f"{len(dead)} dead letters")
    if not dead:
        return problems
    letter = dead[0]
    h = letter.headers
    error = h.get("Tracks-Error", "")
    if h.get("Tracks-Deliveries") != "1":
        problems.append(f"dead-lettered on delivery {h.get('Tracks-Deliveries')} ({error[:200]!r})")
    if h.get("Tracks-Error-Type") not in (m.error_type or "").split("|"):
        problems.append(f"error type {h.get('Tracks-Error-Type')}, expected {m.error_type} ({error[:200]!r})")
    if not any(reason in error.lower() for reason in m.reasons):
        problems.append(f"reason {error[:200]!r} names none of {m.reasons}")
    if "\n" in error or len(error) > 1000 or not error:
        problems.append(f"Tracks-Error is not one line of 1-1000 characters ({len(error)})")
    if h.get("Tracks-Original-Subject") != m.subject[:300]:
        problems.append(f"Tracks-Original-Subject {h.get('Tracks-Original-Subject')!r}")
    if h.get("Tracks-Track") != m.track or not letter.subject.startswith(f"dlq.{m.track}."):
        problems.append(f"filed as {letter.subject!r} for track {h.get('Tracks-Track')!r}")
    if m.cid is not None:
        if letter.subject != f"dlq.{m.track}.{m.cid}":
            problems.append(f"filed as {letter.subject!r}, not under {m.cid!r}")
        if steps.get((m.cid, m.track)) == "completed":
            problems.append("its step completed")
    return problems


def assert_clean(outcome: Outcome, title: str) -> None:
    print("\n" + outcome.report(title))
    assert not outcome.unhandled, "unhandled errors were logged:\n" + "\n".join(outcome.unhandled[:5])
    assert not outcome.failures, f"{len(outcome.failures)} messages broke the rule:\n" + "\n".join(
        outcome.failures[:30]
    )
    assert not outcome.lost and not outcome.stuck, f"lost {len(outcome.lost)}, stuck {outcome.stuck[:10]}"
    assert outcome.final_latency is not None
