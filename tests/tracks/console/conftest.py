"""The console over the suite's servers: the app with the connections of the test, and a client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from foundation.settings import Settings
from tracks.console import Console, create_app

HOSTILE = "<script>alert('x')</script>"
"""User data that must reach a page as text."""


def csrf_of(page: str) -> str:
    """The CSRF token a page put in its forms."""
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF field on the page"
    return found[1]


@pytest.fixture
def console_state(settings: Settings, pool: asyncpg.Pool, nc: NATS, js: JetStreamContext) -> Console:
    return Console(settings, pool, nc, jaeger_url="http://jaeger.example:16686")


@pytest.fixture
async def client(console_state: Console) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(console_state))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
