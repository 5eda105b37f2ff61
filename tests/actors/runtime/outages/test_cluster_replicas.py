"""With ``TRACKS_STREAM_REPLICAS=3`` on a 3-node cluster every stream the project creates is R3:
TRACKS, DLQ and the payload object store (the project has no KV bucket and no stream of the
scheduler's own); a deployment started at R1 is moved to R3 in place, and a server that cannot
hold the replicas asked for is refused with one clear line."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from actors import Runtime, TrackContext, Workflow
from actors.transport.payloads import PayloadStore
from foundation.connections import connect_nats
from foundation.settings import Settings
from subjects import StreamReplicasError, ensure_streams
from tests.support.servers import own_cluster

STREAMS = ("TRACKS", "DLQ", "OBJ_TRACKS_PAYLOADS")


def _workflow(unique: str) -> Workflow:
    wf = Workflow(f"r3-{unique}")

    @wf.track(f"{unique}-only")
    async def only(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        return payload

    return wf


async def _replicas(js: JetStreamContext) -> dict[str, tuple[int | None, int]]:
    """Each stream's configured replicas and how many servers hold it (leader and peers)."""
    result = {}
    for name in STREAMS:
        info = await js.stream_info(name)
        peers = len(info.cluster.replicas or []) + 1 if info.cluster else 1
        result[name] = (info.config.num_replicas, peers)
    return result


async def _consumer_peers(js: JetStreamContext, durable: str, timeout: float = 15.0) -> int:
    """How many servers hold the consumer, once its peers report (they join after a scale-up)."""
    deadline = time.monotonic() + timeout
    while True:
        info = await js.consumer_info("TRACKS", durable)
        peers = len(info.cluster.replicas or []) + 1 if info.cluster else 1
        if peers == 3 or time.monotonic() > deadline:
            return peers
        await asyncio.sleep(0.2)


async def test_a_runtime_with_replicas_3_makes_every_stream_r3(
    settings: Settings, migrated: None, unique: str, tmp_path: Path
) -> None:
    with own_cluster(tmp_path, n=3) as cluster:
        on_cluster = settings.model_copy(update={"nats_url": cluster.url, "shutdown_grace_s": 2.0})
        wf = _workflow(unique)
        async with Runtime(list(wf), settings=on_cluster.model_copy(update={"stream_replicas": 1})):
            pass  # a deployment that started at R1 ...
        nc = await connect_nats(on_cluster, cluster.url, name="test-r3")
        try:
            js = nc.jetstream()
            assert {n: r[0] for n, r in (await _replicas(js)).items()} == dict.fromkeys(STREAMS, 1)
            async with Runtime(list(wf), settings=on_cluster.model_copy(update={"stream_replicas": 3})):
                pass  # ... is moved to R3 in place by the next start with 3
            assert await _replicas(js) == dict.fromkeys(STREAMS, (3, 3))
            assert await _consumer_peers(js, f"{unique}-only") == 3  # a track's consumer follows

            fresh = PayloadStore(js, bucket=f"R3_{unique}", replicas=3)  # and a new bucket is made R3
            await fresh.ensure()
            assert (await js.stream_info(f"OBJ_R3_{unique}")).config.num_replicas == 3
        finally:
            await nc.close()


async def test_replicas_a_single_server_cannot_hold_are_refused_in_one_line(
    js: JetStreamContext, unique: str
) -> None:
    config = StreamConfig(name=f"R3_{unique}", subjects=[f"r3test.{unique}.>"], num_replicas=3)
    with pytest.raises(StreamReplicasError) as refused:
        await ensure_streams(js, config)
    message = str(refused.value)
    assert "\n" not in message
    assert f"stream R3_{unique}: the server refused 3 replicas" in message
    assert "TRACKS_STREAM_REPLICAS" in message

    await ensure_streams(js, StreamConfig(name=f"R3_{unique}", subjects=[f"r3test.{unique}.>"]))
    with pytest.raises(StreamReplicasError, match=r"refused from 1 to 3 replicas"):
        await ensure_streams(js, config)  # an existing stream: the same, saying from what to what
    store = PayloadStore(js, bucket=f"R3B_{unique}", replicas=3)
    with pytest.raises(StreamReplicasError, match=f"stream OBJ_R3B_{unique}: the server refused 3"):
        await store.ensure()
    await js.delete_stream(f"R3_{unique}")
