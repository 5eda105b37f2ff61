"""The console in headless Chromium: follow a run, proceed at its gate, replay a dead letter.

Debian's chromium driven by Playwright (tests/tracks/console/browser.py installs it when absent,
as root; else these tests skip saying so). TRACKS_CONSOLE_SCREENSHOTS=1 saves the pages shown in
the README to docs/console/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from playwright.async_api import Browser, Page, expect

from actors import PermanentError, Phase, Runtime, TrackContext, TracksClient, Workflow
from foundation.settings import Settings
from scheduler.schedules import NewSchedule, ScheduleStore
from tests.support.waiting import eventually
from tests.tracks.console import browser
from tracks.console import Console
from tracks.embedded._process import free_port

BROKEN: set[str] = set()
"""Tracks whose handler fails (the "bug"); the test fixes one by removing it."""


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium: installed here (as root) when missing, once per session; else a skip."""
    return browser.chromium()


@pytest.fixture
async def page(chromium_path: str) -> AsyncIterator[Page]:
    async with browser.launch(chromium_path) as chrome:
        yield await _page(chrome)


async def _page(chrome: Browser) -> Page:
    p = await chrome.new_page(viewport={"width": 1360, "height": 860})
    p.set_default_timeout(20_000)
    return p


def reviewed(prefix: str) -> Workflow:
    scan, book = f"{prefix}-scan", f"{prefix}-book"
    wf = Workflow(
        f"{prefix}-reviewed", phases=[Phase("intake", (scan,)), Phase("review", (book,), manual=True)]
    )

    @wf.track(scan)
    async def scanning(ctx: TrackContext, payload: dict[str, Any]) -> dict[str, Any]:
        return {"found": payload["count"], "note": "<b>not bold</b>"}

    @wf.track(book, after=[scan])
    async def booking(ctx: TrackContext, payload: dict[str, Any]) -> dict[str, Any]:
        if ctx.track in BROKEN:
            raise PermanentError("the bookkeeping API rejected the entry")
        return {"booked": payload["found"]}

    return wf


async def _status(pool: asyncpg.Pool, cid: str) -> str | None:
    status: str | None = await pool.fetchval(
        "SELECT status FROM workflow_runs WHERE correlation_id = $1", cid
    )
    return status


async def _wait_gated(pool: asyncpg.Pool, cid: str, track: str) -> None:
    async def gated() -> bool:
        return bool(
            await pool.fetchval(
                "SELECT status FROM track_steps WHERE correlation_id = $1 AND track_id = $2", cid, track
            )
            == "gated"
        )

    await eventually(gated, what=f"run {cid} to wait at its gate")


async def test_follow_a_run_and_proceed_at_its_gate(
    page: Page,
    settings: Settings,
    pool: asyncpg.Pool,
    nc: NATS,
    js: JetStreamContext,
    unique: str,
    tmp_path: Path,
) -> None:
    wf = reviewed(unique)
    port = free_port()
    metrics = [f"http://127.0.0.1:{port}/metrics"]
    console = Console(settings, pool, nc, metrics_urls=metrics, jaeger_url="http://localhost:16686")
    actor = settings.model_copy(update={"http_port": port})
    async with Runtime(list(wf), settings=actor), browser.serve(console) as base:
        client = TracksClient(nc)
        cid = await client.start(wf, {"count": 3}, correlation_id=f"{unique}-gated")
        await _wait_gated(pool, cid, f"{unique}-book")

        await page.goto(f"{base}/?workflow={wf.name}")
        running = page.locator('#counts [data-count="running"]')
        await expect(running).to_have_text("1")
        await client.start(wf, {"count": 4}, correlation_id=f"{unique}-second")
        await expect(running).to_have_text("2", timeout=10_000)  # no reload: the script polls /api/runs
        await expect(page.locator("#stale")).to_be_visible()
        await browser.screenshot(page, "runs", tmp_path)

        await page.click(f'a[href="/runs/{cid}"]')
        await expect(page).to_have_url(f"{base}/runs/{cid}")
        await expect(page.locator("body")).to_contain_text("waits at gate review")
        trace = await pool.fetchval("SELECT trace_context FROM workflow_runs WHERE correlation_id = $1", cid)
        link = f"http://localhost:16686/trace/{trace.split('-')[1]}"
        await expect(page.locator("#jaeger")).to_have_attribute("href", link)
        await expect(page.locator("body")).to_contain_text('"note": "<b>not bold</b>"')  # text, not markup
        await page.click("#proceed")
        await expect(page.locator(".question")).to_have_text(f"Release the manual gate run {cid} waits at?")
        await page.click("#confirm")
        await expect(page.locator("#flash")).to_contain_text("released phase review")

        async def completed() -> bool:
            await page.reload()
            return await page.locator("#status").text_content() == "completed"

        await eventually(completed, what="the page to show the run completed")
        bars = page.locator(".bar")
        await expect(bars).to_have_count(2)
        assert await bars.nth(1).evaluate("b => b.style.marginLeft") != ""  # placed by the script
        await browser.screenshot(page, "run", tmp_path)

        await page.goto(f"{base}/tracks")
        await expect(page.locator("#tracks")).to_contain_text(f"{unique}-book")
        await browser.screenshot(page, "tracks", tmp_path)
    assert await _status(pool, cid) == "completed"


async def test_replay_a_dead_letter(
    page: Page,
    settings: Settings,
    pool: asyncpg.Pool,
    nc: NATS,
    js: JetStreamContext,
    unique: str,
    tmp_path: Path,
) -> None:
    wf = reviewed(unique)
    book = f"{unique}-book"
    BROKEN.add(book)
    await ScheduleStore(pool).add(
        NewSchedule(name=f"nightly-{unique}", cron_expression="0 3 * * *", target=f"{unique}-scan")
    )
    async with Runtime(list(wf), settings=settings), browser.serve(Console(settings, pool, nc)) as base:
        cid = await TracksClient(nc).start(wf, {"count": 5}, correlation_id=f"{unique}-dead")
        await _wait_gated(pool, cid, book)
        await page.goto(f"{base}/runs/{cid}")  # released in the browser too, then the step dies
        await page.click("#proceed")
        await page.click("#confirm")

        async def failed() -> bool:
            return await _status(pool, cid) == "failed"

        await eventually(failed, what="the run to fail with its step dead-lettered")
        BROKEN.discard(book)  # the fix

        await page.goto(f"{base}/dlq?track={book}")
        row = page.locator("#letters tbody tr")
        await expect(row).to_have_count(1)
        seq = await row.get_attribute("data-seq")
        await browser.screenshot(page, "dlq", tmp_path)
        await page.click(f'a[href="/dlq/{seq}"]')
        await expect(page.locator("body")).to_contain_text("the bookkeeping API rejected the entry")
        await expect(page.locator("#traceback")).to_contain_text("Traceback (most recent call last)")
        await browser.screenshot(page, "dead-letter", tmp_path)
        await page.click("#replay")
        await page.click("#confirm")
        await expect(page.locator("#flash")).to_contain_text(f"replayed dead letter {seq}")

        async def completed() -> bool:
            return await _status(pool, cid) == "completed"

        await eventually(completed, what="the run to complete after the replay")
        await page.goto(f"{base}/schedules")
        await expect(page.locator("#schedules")).to_contain_text(f"nightly-{unique}")
        await browser.screenshot(page, "schedules", tmp_path)
