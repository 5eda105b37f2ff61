"""``tracks trigger --priority`` and ``tracks run --priority``: the header, and high's urgent lane."""

from __future__ import annotations

import asyncio

from click.testing import CliRunner
from nats.js import JetStreamContext

from subjects import headers
from tests.conftest import Servers
from tests.support.scheduling import published
from tracks.cli.main import cli


def _env(servers: Servers) -> dict[str, str]:
    return {"TRACKS_NATS_URL": servers.nats_url, "TRACKS_DATABASE_URL": servers.database_url}


async def test_trigger_and_run_take_a_priority(servers: Servers, js: JetStreamContext, unique: str) -> None:
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli, list(args), env=_env(servers))
        return result.exit_code, result.output

    code, out = await asyncio.to_thread(invoke, "trigger", f"t{unique}", "--priority", "high")
    assert code == 0, out
    [msg] = await published(js, f"tracks.t{unique}.urgent.*")
    assert msg.subject == f"tracks.t{unique}.urgent.{out.strip()}"
    assert msg.headers is not None and msg.headers[headers.PRIORITY] == "high"

    code, out = await asyncio.to_thread(invoke, "trigger", f"t{unique}", "--priority", "low")
    assert code == 0, out
    [msg] = await published(js, f"tracks.t{unique}.run.*")
    assert msg.headers is not None and msg.headers[headers.PRIORITY] == "low"

    code, out = await asyncio.to_thread(
        invoke,
        "run",
        "tests.support.apps.diamond_app:single",
        "--priority",
        "high",
        "--correlation-id",
        f"c{unique}",
    )
    assert code == 0, out
    [msg] = await published(js, f"tracks.only.urgent.c{unique}")
    assert msg.headers is not None and msg.headers[headers.PRIORITY] == "high"

    code, out = await asyncio.to_thread(invoke, "trigger", f"t{unique}", "--priority", "urgent")
    assert code == 2 and "'urgent' is not one of 'high', 'normal', 'low'" in out
