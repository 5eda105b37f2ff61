"""Large payloads travel by reference between tracks, transparently to the handlers."""

from __future__ import annotations

from actors import Runtime, TrackContext, TracksClient, Workflow
from actors.transport.payloads import is_ref


async def test_a_five_megabyte_output_reaches_the_next_track(settings, pool, nc, unique):
    a, b = f"{unique}-big", f"{unique}-sum"
    wf = Workflow(f"{unique}-bulk")
    blob = "x" * (5 * 1024 * 1024)  # five times NATS's default max payload

    @wf.track(a)
    async def produce(ctx: TrackContext, payload: dict) -> dict:
        return {"blob": blob, "n": payload["n"]}

    @wf.track(b, after=[a])
    async def consume(ctx: TrackContext, payload: dict) -> dict:
        return {"length": len(payload["blob"]), "n": payload["n"]}

    async with Runtime(list(wf), settings=settings):
        result = await TracksClient(nc).run(wf, {"n": 1}, timeout=60, correlation_id=f"{unique}-c")
    assert result == {"length": len(blob), "n": 1}
    stored = await pool.fetchval(
        "SELECT output FROM track_steps WHERE correlation_id = $1 AND track_id = $2", f"{unique}-c", a
    )
    assert is_ref(stored)  # the ledger keeps the small reference, not 5 MiB
    assert stored["$tracksRef"]["size"] > 5 * 1024 * 1024
