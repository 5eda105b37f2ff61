"""Hostile input against a live actor: every message ends in exactly one end state, the first time.

SPEC §5 "Input rules": every message on ``tracks.<track>.run[.<cid>]`` (and every forged
``tracks.<upstream>.completed.<cid>``) ends in a completed step, a failed step, or a dead letter
on ``dlq.<track>.<cid>`` whose ``Tracks-Error`` gives the reason — on its first delivery when the
message itself is bad (``Tracks-Deliveries: 1``, never redelivered); a forged completion event
never runs the downstream step; the actor keeps serving good triggers throughout; nothing is
logged as an unhandled error; the actor's NATS connection survives (no reconnect).

The messages are drawn by hypothesis (seeded, no shrinking: one live batch per test) from the
classes in :mod:`tests.support.hostile`, each with the end state it must reach. The fast variant
(~200 messages) runs in the default suite; ``-m slow`` adds ~5,000 and a measurement of a good
trigger's latency behind a 10,000-message poison burst (printed, not asserted; run with ``-s``).
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from actors import PoisonMessage, Runtime
from actors.transport.decode import decode
from foundation.settings import Settings
from subjects import EventType, encode_event
from tests.support.apps.fuzz_workflow import FuzzPair, fuzz_pair
from tests.support.hostile.live import assert_clean, captured_logs, fuzz
from tests.support.waiting import eventually

FAST_SEED = 20261127
SLOW_SEED = 5000


# --- the decoder alone: the rules the live batches found broken, in milliseconds --------------


def _env(payload: str, cid: str) -> bytes:
    meta = '{"correlationId": ' + cid + ', "sourceTrack": "up"}'
    return (
        '{"trackId": "up", "eventType": "started", "payload": ' + payload + ', "metadata": ' + meta + "}"
    ).encode()


DECODER_REFUSES = {
    "plain 1e400": ("tracks.up.run.c1", b'{"n": 1, "x": 1e400}', "finite"),
    "plain 310-digit float": ("tracks.up.run.c1", b'{"x": ' + b"9" * 310 + b".5}", "finite"),
    "envelope -1E+999 (fast path)": (
        "tracks.up.run.c1",
        _env('{"x": -1E+999}', '"c1"'),
        "finite",
    ),
    "plain nested 300": ("tracks.up.run.c1", b'{"x": ' + b"[" * 300 + b"]" * 300 + b"}", "nested"),
    "envelope nested 250": (
        "tracks.up.run.c1",
        _env('{"x": ' + "[" * 250 + "]" * 250 + "}", '"c1"'),
        "nested",
    ),
    "envelope cid with a newline": (
        "tracks.up.run.c1",
        _env("{}", '"c1\\n"'),
        "correlation id",
    ),
    "event cid with a newline": (
        "tracks.up.completed.c1",
        _env("{}", '"c1\\n"'),
        "correlation id",
    ),
    "header cid with a newline": ("tracks.up.run", b"{}", "correlation id"),
    "reference to bucket a.b": (
        "tracks.up.run.c1",
        b'{"$tracksRef": {"bucket": "a.b", "key": "k"}}',
        "bucket",
    ),
    "reference to bucket with a newline": (
        "tracks.up.run.c1",
        b'{"$tracksRef": {"bucket": "B\\n", "key": "k"}}',
        "bucket",
    ),
}


@pytest.mark.parametrize("case", sorted(DECODER_REFUSES))
def test_decoder_refuses_what_the_runtime_cannot_store_or_route(case: str) -> None:
    subject, body, reason = DECODER_REFUSES[case]
    hdrs = {"Tracks-Correlation-Id": "c1\n"} if case.startswith("header") else None
    with pytest.raises(PoisonMessage) as refused:
        decode(subject, body, hdrs, 7, 1)
    assert reason in str(refused.value).lower()


def test_decoder_still_takes_large_numbers_and_hex_that_fit() -> None:
    """Strings that look like big exponents, 1e308, long integers and 200 levels are all fine."""
    payload = {"sha": "ab3e123", "note": ": 3e123", "x": 1e308, "n": 10**300, "deep": [[[[1]]]]}
    event = encode_event("up", EventType.COMPLETED, payload, correlation_id="c1", source_track="up")
    assert decode("tracks.up.completed.c1", event, None, 7, 1).payload == payload
    deep = b'{"x": ' + b"[" * 199 + b"]" * 199 + b"}"
    assert decode("tracks.up.run.c1", deep, None, 7, 1).correlation_id == "c1"


async def test_hostile_input_fast(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """~200 hostile messages of every class, against one live actor: each ends as its class says."""
    outcome = await fuzz(
        settings,
        pool,
        js,
        fuzz_pair(f"fz{unique}"),
        count=200,
        seed_value=FAST_SEED,
        max_huge=3,
        settle_timeout=40,
    )
    assert len(outcome.sent) >= 150
    assert_clean(outcome, "hostile input, fast")


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_hostile_input_long(
    settings: Settings, pool: asyncpg.Pool, js: JetStreamContext, unique: str
) -> None:
    """~5,000 hostile messages (another seed): the same rule, at volume."""
    outcome = await fuzz(
        settings,
        pool,
        js,
        fuzz_pair(f"fl{unique}"),
        count=5000,
        seed_value=SLOW_SEED,
        max_huge=25,
        settle_timeout=600,
    )
    assert len(outcome.sent) >= 4500
    assert_clean(outcome, "hostile input, long")


# --- a measurement: a good trigger behind a poison burst ------------------------------------


async def _run_latency(
    nc: NATS, js: JetStreamContext, pair: FuzzPair, cid: str, timeout: float
) -> tuple[float, float]:
    """Publish a good trigger; seconds until ``up`` completed and until the run completed."""
    up_done = asyncio.get_running_loop().create_future()
    run_done = asyncio.get_running_loop().create_future()
    t0 = time.monotonic()

    async def on_up(msg: Msg) -> None:
        if not up_done.done():
            up_done.set_result(time.monotonic() - t0)

    async def on_run(msg: Msg) -> None:
        if not run_done.done():
            run_done.set_result(time.monotonic() - t0)

    subs = [
        await nc.subscribe(f"tracks.{pair.up}.completed.{cid}", cb=on_up),
        await nc.subscribe(f"tracks.workflow.{pair.name}.completed.{cid}", cb=on_run),
    ]
    await nc.flush()
    t0 = time.monotonic()
    await js.publish(f"tracks.{pair.up}.run.{cid}", b'{"n": 1}')
    try:
        first = await asyncio.wait_for(up_done, timeout)
        whole = await asyncio.wait_for(run_done, timeout)
    finally:
        for sub in subs:
            await sub.unsubscribe()
    return first, whole


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_good_trigger_latency_behind_a_poison_burst(
    settings: Settings, pool: asyncpg.Pool, nc: NATS, js: JetStreamContext, unique: str
) -> None:
    """Measured, not asserted: 10,000 non-JSON bodies on ``tracks.<up>.run.<cid>``, then one good
    trigger; how long until it completes, and how fast the poison drains (printed; ``-s``)."""
    burst = 10_000
    pair = fuzz_pair(f"pb{unique}")
    with captured_logs() as logs:
        async with Runtime(list(pair.workflow), settings=settings) as runtime:
            idle = [await _run_latency(nc, js, pair, f"idle{i}-{unique}", 30) for i in range(3)]
            t0 = time.monotonic()
            for i in range(burst):
                await nc.publish(f"tracks.{pair.up}.run.p{i}-{unique}", b"not json %d" % i)
            await nc.flush()
            published_s = time.monotonic() - t0
            behind = await _run_latency(nc, js, pair, f"behind-{unique}", 600)
            at_good = time.monotonic() - t0
            dead_then = await _dead_count(js, pair.up)

            async def drained() -> bool:
                return await _dead_count(js, pair.up) >= burst

            await eventually(drained, timeout=600, what="the poison burst dead-lettered")
            drain_s = time.monotonic() - t0
            after = await _run_latency(nc, js, pair, f"after-{unique}", 30)
            info = await js.consumer_info("TRACKS", pair.up)
            connected, reconnects = (
                runtime.nc is not None and runtime.nc.is_connected,
                (runtime.nc.stats["reconnects"] if runtime.nc else -1),
            )
    print(
        f"\n== poison burst: {burst} non-JSON triggers published in {published_s:.2f}s (core publish)\n"
        f"   idle good trigger: up completed {_ms(min(i[0] for i in idle))}-{_ms(max(i[0] for i in idle))}, "
        f"run completed {_ms(min(i[1] for i in idle))}-{_ms(max(i[1] for i in idle))}\n"
        f"   good trigger published after the burst: up completed in {_ms(behind[0])}, "
        f"run completed in {_ms(behind[1])} (dead letters written by then: {dead_then} of {burst}, "
        f"{at_good:.1f}s after the burst began)\n"
        f"   poison throughput: {burst} dead-lettered in {drain_s:.1f}s = {burst / drain_s:.0f} msg/s\n"
        f"   good trigger after the drain: up {_ms(after[0])}, run {_ms(after[1])}\n"
        f"   consumer: redelivered {info.num_redelivered}, ack pending {info.num_ack_pending}; "
        f"connected {connected}, reconnects {reconnects}; unhandled errors logged: {len(logs.unhandled())}"
    )
    assert not logs.unhandled(), logs.unhandled()[:3]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


async def _dead_count(js: JetStreamContext, track: str) -> int:
    info = await js.stream_info("DLQ", subjects_filter=f"dlq.{track}.*")
    return sum((info.state.subjects or {}).values())
