"""Stream definitions for ``TRACKS`` and ``DLQ``, and their create-or-reconcile at start."""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from subjects.names import DLQ_ROOT, DLQ_STREAM, ROOT, STREAM

__all__ = ["dlq_stream", "ensure_streams", "tracks_stream"]

log = logging.getLogger(__name__)


def tracks_stream(*, max_age_s: float, duplicate_window_s: float, replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        subjects=[f"{ROOT}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=max_age_s,
        duplicate_window=duplicate_window_s,
        num_replicas=replicas,
        discard=DiscardPolicy.OLD,
        allow_direct=True,
    )


def dlq_stream(*, max_age_s: float, replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=DLQ_STREAM,
        subjects=[f"{DLQ_ROOT}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=max_age_s,
        duplicate_window=120.0,
        num_replicas=replicas,
        discard=DiscardPolicy.OLD,
        allow_direct=True,
    )


async def ensure_streams(js: JetStreamContext, *configs: StreamConfig) -> None:
    """Create each stream, or update it when its settings drifted from ours."""
    for config in configs:
        assert config.name is not None
        try:
            info = await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
            log.info("created stream %s", config.name)
            continue
        current = info.config
        drift = {
            field: (getattr(current, field), getattr(config, field))
            for field in (
                "subjects",
                "max_age",
                "duplicate_window",
                "num_replicas",
                "discard",
                "allow_direct",
            )
            if getattr(current, field) != getattr(config, field)
        }
        if drift:
            await js.update_stream(config)
            log.info("updated stream %s: %s", config.name, drift)
