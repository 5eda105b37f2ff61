"""Headless Chromium for the console's browser tests: Debian's ``chromium`` package driven by
Playwright (``executable_path``: Playwright's own browser download is never needed). The set-up
installs the package when it is missing and the suite runs as root, else the tests skip."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright

from tracks.console import Console, create_app
from tracks.embedded._process import free_port

__all__ = ["chromium", "launch", "screenshot", "serve"]

PACKAGE = "chromium"
DOCS = Path(__file__).parents[3] / "docs" / "console"


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True, timeout=900)


def chromium() -> str:
    """The browser's path; installs Debian's package when absent and running as root, else skips."""
    if found := shutil.which("chromium"):
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip(f"browser tests need Debian's {PACKAGE} package: apt-get install -y {PACKAGE} (as root)")
    done = _apt_get("install", "-y", "-q", PACKAGE)
    if done.returncode != 0:  # a fresh machine: the package lists first
        _apt_get("update", "-q")
        done = _apt_get("install", "-y", "-q", PACKAGE)
    found = shutil.which("chromium")
    if found is None:
        pytest.skip(f"could not install {PACKAGE}: {' '.join(done.stderr.strip().splitlines()[-1:])}")
    return found


@asynccontextmanager
async def launch(path: str) -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def serve(console: Console) -> AsyncIterator[str]:
    """The console on a free loopback port, in this event loop; its base URL."""
    port = free_port()
    config = uvicorn.Config(create_app(console), host="127.0.0.1", port=port, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def screenshot(page: Page, name: str, tmp: Path) -> Path:
    """Saved in ``tmp``, and in docs/console/ with TRACKS_CONSOLE_SCREENSHOTS=1 (the README's)."""
    folder = DOCS if os.environ.get("TRACKS_CONSOLE_SCREENSHOTS") == "1" else tmp
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
