"""The embedded nats-server holds the streams' bounds whatever the disk's free space.

JetStream reserves each stream's ``max_bytes`` against the server's store limit, by default 75 %
of the free disk space: on a small disk the default bounds (TRACKS 10 GiB, DLQ 1 GiB, payloads
5 GiB) were refused and nothing started. A stream bounded at twice the free space shows it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nats
from nats.js.api import StreamConfig

from tests.support.servers import own_nats


async def test_a_stream_bound_beyond_the_free_disk_space_is_created(tmp_path: Path) -> None:
    beyond = 2 * shutil.disk_usage(tmp_path).free
    with own_nats(tmp_path) as server:
        nc = await nats.connect(server.url)
        try:
            info = await nc.jetstream().add_stream(
                StreamConfig(name="BIG", subjects=["big.>"], max_bytes=beyond)
            )
        finally:
            await nc.close()
    assert info.config.max_bytes == beyond
