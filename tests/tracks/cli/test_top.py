"""``tracks top``: a live actor's /metrics as a per-track table or JSON; unreachable URLs fail fast."""

from __future__ import annotations

import json
import time

from nats.js import JetStreamContext

from actors import Runtime, TracksClient
from foundation.settings import Settings
from tests.actors.runtime.test_runtime_metrics import metrics_workflow
from tests.conftest import Servers
from tests.support.cli import run_tracks
from tests.support.http import http_get, samples
from tests.support.waiting import eventually
from tracks.cli._common import EXIT_UNREACHABLE
from tracks.cli.top import parse, quantile, rows
from tracks.embedded._process import free_port


def test_percentiles_and_rates_come_from_the_difference_of_two_scrapes() -> None:
    """Only the steps between the scrapes count: 100 before (all slow), then 100 fast ones."""
    page = """# TYPE tracks_step_duration_seconds histogram
tracks_step_duration_seconds_bucket{{track="a",le="0.01"}} {fast}
tracks_step_duration_seconds_bucket{{track="a",le="0.1"}} {fast}
tracks_step_duration_seconds_bucket{{track="a",le="1.0"}} {all}
tracks_step_duration_seconds_bucket{{track="a",le="+Inf"}} {all}
tracks_step_duration_seconds_count{{track="a"}} {all}
tracks_step_duration_seconds_sum{{track="a"}} 50
# TYPE tracks_steps counter
tracks_steps_total{{track="a",outcome="completed"}} {all}
tracks_steps_total{{track="a",outcome="retried"}} 2
tracks_steps_total{{track="a",outcome="dead_lettered"}} 1
# TYPE tracks_breaker_state gauge
tracks_breaker_state{{track="a"}} 2
# TYPE tracks_dlq_messages gauge
tracks_dlq_messages 7
"""
    before = parse([page.format(fast=0, all=100)], at=10.0)
    after = parse([page.format(fast=100, all=200)], at=12.0)
    (row,) = rows(before, after)
    assert row.rate == 50.0
    assert row.p50_s is not None and row.p50_s == 0.005  # linear within the first bucket
    assert row.p99_s is not None and row.p99_s < 0.01
    assert (row.failures, row.breaker, after.dlq) == (3, "open", 7)
    assert quantile(0.5, {}) is None


async def test_top_json_against_a_live_actor(
    servers: Servers, migrated: None, settings: Settings, js: JetStreamContext, unique: str
) -> None:
    """``tracks top --once --json --url`` lists the actor's tracks with their counts."""
    wf = metrics_workflow(unique)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    async with Runtime(list(wf), settings=settings.model_copy(update={"http_port": port})):
        await TracksClient(js).start(wf, {}, correlation_id=f"{unique}-run")

        async def counted() -> bool:
            page = samples((await http_get(url))[1])
            key = ("tracks_steps_total", (("outcome", "dead_lettered"), ("track", f"{unique}-doomed")))
            return page.get(key) == 1

        await eventually(counted, timeout=30, what="the dead letter counted")
        result = await run_tracks(servers, "top", "--once", "--json", "--interval", "0.2", "--url", url)
        table = await run_tracks(servers, "top", "--once", "--interval", "0.2", "--url", url)
    assert table.code == 0, table
    print(table.out)
    head, *lines = table.out.strip().splitlines()
    assert head.startswith("TRACK") and head.split()[-3:] == ["FLIGHT", "FAILURES", "BREAKER"], head
    doomed = [line.split() for line in lines if line.startswith(f"{unique}-doomed ")]
    assert doomed and doomed[0][-2:] == ["1", "closed"], table.out
    assert lines[-1].startswith("DLQ: ")
    assert result.code == 0, result
    snapshot = json.loads(result.out)
    tracks = snapshot["tracks"]
    assert {f"{unique}-ok", f"{unique}-flaky", f"{unique}-doomed"} <= set(tracks)
    assert tracks[f"{unique}-doomed"]["failures"] == 1
    assert tracks[f"{unique}-flaky"]["outcomes"]["retried"] == 1
    assert tracks[f"{unique}-ok"]["breaker"] == "closed"
    assert snapshot["sources"] == [url]


async def test_top_with_an_unreachable_url_fails_in_one_line(servers: Servers) -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    started = time.monotonic()
    result = await run_tracks(servers, "top", "--once", "--url", url, timeout=20)
    assert result.code == EXIT_UNREACHABLE
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and f"cannot reach {url}" in lines[0], result.err
    assert time.monotonic() - started < 20


def test_no_metrics_url_configured_is_exit_4() -> None:
    from click.testing import CliRunner

    from tracks.cli.main import cli

    result = CliRunner().invoke(cli, ["top", "--once"], env={"TRACKS_HTTP_PORT": ""})
    assert result.exit_code == 4 and "TRACKS_HTTP_PORT is unset" in result.stderr
