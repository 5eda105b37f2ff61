"""``TRACKS_RECORD_PAYLOADS``: how much of each payload ``processing_logs`` keeps (full, once, none)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from nats.aio.client import Client as NATS

from actors import Runtime, TrackContext, TracksClient, Workflow
from foundation.settings import Settings, SettingsError, load_settings


def two_steps(prefix: str) -> Workflow:
    wf = Workflow(f"recpay-{prefix}")

    @wf.track(f"{prefix}-a")
    async def a(ctx: TrackContext, job: dict[str, Any]) -> dict[str, Any]:
        return {"n": job["n"] + 1, "blob": "x" * 200}

    @wf.track(f"{prefix}-b", after=[f"{prefix}-a"])
    async def b(ctx: TrackContext, job: dict[str, Any]) -> dict[str, Any]:
        return {"n": job["n"] * 10}

    return wf


async def _logged(pool: asyncpg.Pool, cid: str) -> dict[tuple[str, str], dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT track_id, event_type, details::text AS d FROM processing_logs WHERE correlation_id = $1",
        cid,
    )
    return {(r["track_id"].rsplit("-", 1)[1], r["event_type"]): json.loads(r["d"] or "{}") for r in rows}


@pytest.mark.parametrize("mode", ["full", "once", "none"])
async def test_record_payloads(
    settings: Settings, pool: asyncpg.Pool, nc: NATS, unique: str, mode: str
) -> None:
    """full: every row its payload. once: each payload is stored once: a's input (the run's root)
    in its ``started`` row, outputs only in ``track_steps`` (the ``completed`` rows hold none and
    b's ``started`` row names its source). none: no row keeps a payload (``"payload": null`` on
    a ``completed`` row). In every mode the outputs, the run's input and result stay where resume,
    fan-in and the console read them."""
    wf = two_steps(f"{unique}{mode}")
    async with Runtime(list(wf), settings=settings.model_copy(update={"record_payloads": mode})):
        cid = f"recpay-{unique}-{mode}"
        assert await TracksClient(nc).run(wf, {"n": 1}, timeout=30, correlation_id=cid) == {"n": 20}
    logged = await _logged(pool, cid)
    a_out = {"n": 2, "blob": "x" * 200}
    assert logged["a", "started"].get("payload") == ({"n": 1} if mode != "none" else None)
    assert logged["a", "completed"].get("payload") == (a_out if mode == "full" else None)
    assert ("payload" in logged["a", "completed"]) == (mode != "once")
    assert logged["b", "started"]["source"] == f"{unique}{mode}-a"
    assert logged["b", "started"].get("payload") == (a_out if mode == "full" else None)
    outputs = await pool.fetch(
        "SELECT output FROM track_steps WHERE correlation_id = $1 ORDER BY track_id", cid
    )
    assert [r["output"] for r in outputs] == [a_out, {"n": 20}]
    run = await pool.fetchrow("SELECT input, result FROM workflow_runs WHERE correlation_id = $1", cid)
    assert run is not None and (run["input"], run["result"]) == ({"n": 1}, {"n": 20})


def test_record_payloads_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().record_payloads == "once"
    monkeypatch.setenv("TRACKS_RECORD_PAYLOADS", "some")
    with pytest.raises(SettingsError, match="RECORD_PAYLOADS"):
        load_settings()
