"""No input crashes an actor: decoding yields an activation or a PoisonMessage, nothing else."""

from __future__ import annotations

import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import PoisonMessage, Runtime, TrackContext, Workflow
from actors.transport.decode import MAX_BODY_BYTES, Activation, decode
from tests.support.waiting import eventually

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
envelope_like = st.fixed_dictionaries(
    {"trackId": json_values, "eventType": json_values, "metadata": json_values},
    optional={"payload": json_values},
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    envelope_like.map(lambda v: json.dumps(v).encode()),
)
subjects = st.one_of(
    st.sampled_from(["tracks.a.run", "tracks.a.run.c1", "tracks.a.completed.c1", "tracks.a.failed.c1"]),
    st.lists(st.text(alphabet="abc.*>-_ \u00e9", max_size=6), min_size=1, max_size=5).map(".".join),
)
header_maps = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["Nats-Msg-Id", "Tracks-Correlation-Id", "traceparent", "X"]),
        st.text(max_size=40),
        max_size=3,
    ),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=subjects, body=bodies, hdrs=header_maps, seq=st.integers(min_value=1, max_value=2**40))
def test_decode_never_raises_anything_but_poison(subject, body, hdrs, seq):
    try:
        result = decode(subject, body, hdrs, seq)
    except PoisonMessage as exc:
        assert str(exc)  # always says why
        return
    assert isinstance(result, Activation)
    assert result.correlation_id and isinstance(result.payload, dict)


def test_oversized_body_is_poison():
    body = b'{"x": "' + b"a" * MAX_BODY_BYTES + b'"}'
    try:
        decode("tracks.a.run", body, None, 1)
    except PoisonMessage as exc:
        assert "exceeds" in str(exc)
    else:
        raise AssertionError("an oversized body was accepted")


async def test_actor_survives_a_burst_of_garbage(settings, pool, js, unique):
    track = f"fuzz-{unique}"
    wf = Workflow(f"fuzz-{unique}")

    @wf.track(track)
    async def echo(ctx: TrackContext, payload: dict) -> dict:
        return payload

    rng = random.Random(7)
    garbage = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64))) for _ in range(60)]
    garbage += [b"[1,2]", b"null", b'"s"', b"{", b'{"trackId": 1, "eventType": "x", "metadata": 3}']
    async with Runtime(list(wf), settings=settings):
        for i, body in enumerate(garbage):
            await js.publish(f"tracks.{track}.run.g{i}", body)
        await js.publish(f"tracks.{track}.run.ok", b'{"fine": true}')

        async def settled() -> bool:
            n = await pool.fetchval(
                "SELECT count(*) FROM processing_logs "
                "WHERE track_id = $1 AND event_type IN ('completed', 'failed')",
                track,
            )
            return int(n) >= len(garbage) + 1

        await eventually(settled, timeout=30, what="every message settled")
        info = await js.consumer_info("TRACKS", track)
        assert info.num_ack_pending == 0 and info.num_redelivered == 0
    ok = await pool.fetchval(
        "SELECT count(*) FROM processing_logs WHERE track_id = $1 AND event_type = 'completed'", track
    )
    poisoned = await pool.fetchval(
        "SELECT count(*) FROM processing_logs WHERE track_id = $1 AND error_type = 'PoisonMessage'", track
    )
    # some random bytes happen to be valid JSON objects ("{}"), the rest are poison
    assert ok >= 1 and ok + poisoned == len(garbage) + 1
