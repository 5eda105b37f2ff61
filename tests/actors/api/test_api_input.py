"""``tracksapi.*`` answers bad input with a 400 and a short reason, never a 500, and every
error reply stays small: a request's own text is quoted back 200 characters at most."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from nats.aio.client import Client as NATS

from actors import TrackContext, Workflow
from actors.runtime.request_api import ApiError, ApiService, call
from foundation.connections import connect_nats
from foundation.settings import Settings
from tests.conftest import Servers

ERROR = "Nats-Service-Error"
CODE = "Nats-Service-Error-Code"


@pytest.fixture
async def service(
    servers: Servers, settings: Settings, pool: asyncpg.Pool, unique: str
) -> AsyncIterator[ApiService]:
    """The service on its own connection: a reply the server refuses would close that one."""
    wf = Workflow(f"api-input-{unique}")

    @wf.track(f"{unique}-a")
    async def a(ctx: TrackContext, payload: dict[str, object]) -> dict[str, object]:
        return payload

    own = await connect_nats(settings, servers.nats_url, name="api-input-service")
    api = ApiService(own, pool, [wf])

    async def huge(body: dict[str, Any]) -> dict[str, Any]:
        return {"blob": "x" * (2 * own.max_payload)}

    api.endpoints["huge"] = huge
    await api.start()
    yield api
    await api.stop()
    await own.drain()


async def _ask(nc: NATS, endpoint: str, data: bytes) -> tuple[str, str, int]:
    msg = await nc.request(f"tracksapi.{endpoint}", data, timeout=5)
    hdrs = msg.headers or {}
    return hdrs.get(CODE, ""), hdrs.get(ERROR, ""), len(msg.data)


MEGA_ID = "x" * 1_000_000


@pytest.mark.parametrize(
    ("endpoint", "data", "reason"),
    [
        ("chain", b'{"correlationId": "caf\xff"}', "the request is not UTF-8"),
        ("chain", b"\xfe\xff\x00{", "the request is not UTF-8"),
        ("chain", b'{"correlationId": ', "the request is not JSON"),
        ("chain", b"[" * 100_000, "nested too deeply"),
        ("chain", b"[1, 2]", "the request must be a JSON object, got an array"),
        ("status", b'"order-42"', "the request must be a JSON object, got a string"),
        ("chain", b"null", "the request must be a JSON object, got null"),
        ("chain", b"42", "the request must be a JSON object, got a number"),
        ("chain", b'{"correlationId": 42}', "correlationId is required (a non-empty string; got 42)"),
        ("chain", b'{"correlationId": ""}', "correlationId is required"),
        ("chain", b'{"correlationId": "a\\u0000b"}', r"correlationId 'a\x00b' must be 1-128 characters"),
        ("status", b'{"correlationId": "\\ud800"}', r"correlationId '\ud800' must be 1-128 characters"),
        ("proceed", b'{"correlationId": "a.b"}', "correlationId 'a.b' must be 1-128 characters"),
        ("resume", b'{"correlationId": "a b"}', "correlationId 'a b' must be 1-128 characters"),
        ("chain", json.dumps({"correlationId": "y" * 129}).encode(), "must be 1-128 characters"),
        ("chain", json.dumps({"correlationId": MEGA_ID}).encode(), "must be 1-128 characters"),
        ("deps", b'{"correlationId": "c"}', "track is required"),
        ("deps", json.dumps({"correlationId": "c", "track": "t" * 900_000}).encode(), "track 'ttt"),
        ("deps", b'{"correlationId": "c", "track": "\\u0000"}', r"track '\x00' must be"),
    ],
)
async def test_bad_input_is_a_short_400(
    service: ApiService, nc: NATS, endpoint: str, data: bytes, reason: str
) -> None:
    code, error, size = await _ask(nc, endpoint, data)
    assert code == "400", error[:300]
    assert reason in error
    assert len(error) <= 300  # a quoted value is cut to 200 characters
    assert "Traceback" not in error and size == 0


async def test_an_over_long_value_is_cut_and_the_service_goes_on(service: ApiService, nc: NATS) -> None:
    code, error, _ = await _ask(nc, "chain", json.dumps({"correlationId": MEGA_ID}).encode())
    assert code == "400"
    assert error.startswith("correlationId 'xxxx") and "x" * 201 not in error and "…" in error
    # still answering: the reply did not break the service's connection
    with pytest.raises(ApiError, match="no records for correlation ID never-run") as caught:
        await call(nc, "chain", {"correlationId": "never-run"})
    assert caught.value.code == 404


async def test_unknown_track_is_404_and_bounded(service: ApiService, nc: NATS) -> None:
    with pytest.raises(ApiError, match=r"unknown track 'ghost' \(this service knows: ") as caught:
        await call(nc, "deps", {"correlationId": "c", "track": "ghost"})
    assert caught.value.code == 404


async def test_a_reply_over_max_payload_is_refused_not_sent(service: ApiService, nc: NATS) -> None:
    with pytest.raises(ApiError, match=r"the reply \(\d+ bytes\) exceeds the server's max_payload") as caught:
        await call(nc, "huge", {})
    assert caught.value.code == 413
    track = next(iter(next(iter(service.workflows.values())))).name
    assert await call(nc, "deps", {"correlationId": "c", "track": track}) == {
        "track": track,
        "dependencies": [],
        "completed": [],
        "met": True,
    }
