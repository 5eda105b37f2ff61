"""The IMAP mail source against a real IMAP server (pymap's in-memory backend, from PyPI)."""

from __future__ import annotations

import datetime as dt
import imaplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from receipts.mail import ImapSource, message_key, parse, source_from
from receipts.settings import SAMPLE_MAIL, ReceiptsSettings

PYMAP = Path(sys.executable).parent / "pymap"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def imap_port() -> Iterator[int]:
    port = free_port()
    server = subprocess.Popen(
        [str(PYMAP), "--host", "127.0.0.1", "--port", str(port), "--no-tls", "dict", "--demo-data"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(10)


def test_the_imap_source_reads_every_message_of_the_folder(imap_port: int) -> None:
    stems = ["01-aws", "02-jetbrains", "10-broken"]
    client = imaplib.IMAP4("127.0.0.1", imap_port)
    client.login("demouser", "demopass")
    for stem in stems:
        client.append("INBOX", None, None, (SAMPLE_MAIL / f"{stem}.eml").read_bytes())
    client.logout()
    settings = ReceiptsSettings(
        imap_host="127.0.0.1",
        imap_port=imap_port,
        imap_user="demouser",
        imap_password=SecretStr("demopass"),
        imap_ssl=False,
    )
    source = source_from(settings)
    assert isinstance(source, ImapSource) and source.name == "imap:demouser@127.0.0.1/INBOX"
    found = {message_key(parse(raw), raw)[0] for raw in source.messages(None)}
    assert {f"<sample-{stem}@receipts.example>" for stem in stems} <= found
    since = dt.datetime.now(dt.UTC) - dt.timedelta(
        hours=1
    )  # what was appended just now, not the older demo mail
    recent = {message_key(parse(raw), raw)[0] for raw in source.messages(since)}
    assert recent == {f"<sample-{stem}@receipts.example>" for stem in stems}
