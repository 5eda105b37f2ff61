"""Run inputs over the payload threshold travel by reference (claim check), from the client and
from ``tracks trigger`` / ``tracks run``: a 2 MB trigger runs end to end instead of failing
with ``MaxPayloadError``."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from actors import Runtime, TrackContext, TracksClient, Workflow
from actors.transport.payloads import PayloadStore, encoded, is_ref
from foundation.settings import Settings
from tests.conftest import Servers
from tests.support.cli import run_tracks
from tests.support.records import step_statuses
from tests.support.waiting import eventually

BIG = {"blob": "é" * (1024 * 1024), "pages": 12}  # 2 MiB of JSON: twice NATS's default max payload


def measuring(prefix: str, *, roots: int = 1) -> Workflow:
    """Root tracks report the size of what they got; ``sum`` (after every root) adds the sizes."""
    wf = Workflow(f"{prefix}-wf")
    names = [f"{prefix}-r{i}" for i in range(roots)]
    for name in names:

        @wf.track(name)
        async def measure(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
            assert not is_ref(payload)
            return {"chars": len(str(payload["blob"])), "pages": payload["pages"]}

    if roots > 1:

        @wf.track(f"{prefix}-sum", after=names)
        async def total(ctx: TrackContext, parts: dict[str, dict[str, int]]) -> dict[str, object]:
            return {"chars": sum(p["chars"] for p in parts.values()), "roots": len(parts)}

    return wf


async def _tracks_message(js: JetStreamContext, subject: str) -> dict[str, object]:
    stored = await js.get_last_msg("TRACKS", subject)
    assert stored.data is not None and len(stored.data) < 2048  # the reference, not the payload
    body: dict[str, object] = json.loads(stored.data)
    return body


async def test_client_run_with_a_2mb_input_completes(
    settings: Settings, pool: asyncpg.Pool, nc: NATS, js: JetStreamContext, unique: str
) -> None:
    assert len(encoded(BIG)) > nc.max_payload
    wf = measuring(unique, roots=2)
    cid = f"{unique}-run"
    async with Runtime(list(wf), settings=settings):
        result = await TracksClient(nc).run(wf, BIG, timeout=60, correlation_id=cid)
    assert result == {"chars": 2 * 1024 * 1024, "roots": 2}
    refs = [await _tracks_message(js, f"tracks.{unique}-r{i}.run.{cid}") for i in range(2)]
    payloads = [r["payload"] for r in refs]
    assert all(is_ref(p) for p in payloads)
    assert payloads[0] == payloads[1]  # stored once for every root
    key = payloads[0]["$tracksRef"]["key"]  # type: ignore[index]
    assert key.startswith(f"{cid}/input.")  # never a track's output key (<cid>/<track>)


async def test_trigger_with_a_2mb_input_and_a_plain_reference(
    settings: Settings, pool: asyncpg.Pool, nc: NATS, js: JetStreamContext, unique: str
) -> None:
    """``TracksClient.trigger`` offloads; a plain trigger whose body is a reference (as ``nats pub``
    would send one) is resolved by the worker too."""
    wf = measuring(unique)
    track = f"{unique}-r0"
    store = PayloadStore(js)
    plain_ref = await store.offload_input(f"{unique}-plain", BIG)
    assert is_ref(plain_ref) and await store.offload_input(f"{unique}-plain", BIG) == plain_ref
    async with Runtime(list(wf), settings=settings):
        cid, _ = await TracksClient(js).trigger(track, BIG, correlation_id=f"{unique}-t")
        await js.publish(f"tracks.{track}.run.{unique}-plain", encoded(plain_ref))

        async def both_done() -> bool:
            steps = await step_statuses(pool, track)
            return steps.get(cid) == steps.get(f"{unique}-plain") == "completed"

        await eventually(both_done, timeout=30, what="both 2 MB triggers")
    outputs = await pool.fetch(
        "SELECT output FROM track_steps WHERE track_id = $1 ORDER BY correlation_id", track
    )
    assert [r["output"] for r in outputs] == [{"chars": 1024 * 1024, "pages": 12}] * 2
    assert is_ref((await _tracks_message(js, f"tracks.{track}.run.{cid}"))["payload"])


async def test_publishing_2mb_inline_is_what_fails(nc: NATS, unique: str) -> None:
    """The failure the claim check avoids (kept as a guard on the test's premise)."""
    try:
        await nc.publish(f"tracks.{unique}.run.x", encoded(BIG))
    except nats.errors.MaxPayloadError:
        return
    raise AssertionError("a 2 MB message was accepted: the tests above prove nothing")


CLI_WF = measuring("trigger-payloads-cli")
"""Fixed names: ``tracks run tests.actors.transport.test_trigger_payloads:<name>-wf`` loads it."""


async def test_cli_trigger_and_run_read_a_2mb_payload_from_a_file_or_stdin(
    settings: Settings, servers: Servers, pool: asyncpg.Pool, tmp_path: Path, unique: str
) -> None:
    """``--payload @FILE`` and ``--payload -``: a command line holds ~128 KiB per argument."""
    track = next(iter(CLI_WF)).name
    payload_file = tmp_path / "big.json"
    payload_file.write_bytes(encoded(BIG))
    async with Runtime(list(CLI_WF), settings=settings):
        triggered = await run_tracks(
            servers, "trigger", track, "--payload", f"@{payload_file}", "--correlation-id", f"{unique}-cli"
        )
        assert triggered.code == 0, triggered
        assert triggered.out.strip() == f"{unique}-cli"

        async def done() -> bool:
            return (await step_statuses(pool, track)).get(f"{unique}-cli") == "completed"

        await eventually(done, timeout=30, what="the CLI's 2 MB trigger")
        ran = await run_tracks(
            servers,
            "run",
            "tests.actors.transport.test_trigger_payloads:trigger-payloads-cli-wf",
            "--payload",
            "-",
            "--wait",
            "--timeout",
            "30",
            stdin=encoded(BIG).decode(),
        )
    assert ran.code == 0, ran
    assert json.loads(ran.out) == {"chars": 1024 * 1024, "pages": 12}

    missing = await run_tracks(servers, "trigger", track, "--payload", f"@{tmp_path / 'nope.json'}")
    assert missing.code == 1 and "--payload: cannot read" in missing.err, missing
