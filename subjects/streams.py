"""Stream definitions for ``TRACKS`` and ``DLQ``, and their create-or-reconcile at start."""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError

from subjects.names import DLQ_ROOT, DLQ_STREAM, ROOT, STREAM

__all__ = ["StreamReplicasError", "dlq_stream", "ensure_streams", "replicas_refused", "tracks_stream"]

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


class StreamReplicasError(RuntimeError):
    """The server cannot hold a stream at the replicas asked for (``TRACKS_STREAM_REPLICAS``)."""


def replicas_refused(exc: APIError, stream: str, replicas: int, current: int | None = None) -> Exception:
    """``exc`` as one clear line when it refuses replicas (a single server, too few nodes up)."""
    if replicas <= 1 and current in (None, 1):
        return exc
    change = f"from {current} to {replicas}" if current not in (None, replicas) else f"{replicas}"
    return StreamReplicasError(
        f"stream {stream}: the server refused {change} replicas ({exc.description}); set "
        "TRACKS_STREAM_REPLICAS to the number of nodes in the cluster (at most 5; 1 for a single "
        "nats-server) and have every node up"
    )


async def ensure_streams(js: JetStreamContext, *configs: StreamConfig) -> None:
    """Create each stream, or update it when its settings drifted from ours (its replicas too:
    JetStream moves a stream between R1 and R3 in place; one the server refuses is one line)."""
    for config in configs:
        assert config.name is not None
        replicas = config.num_replicas or 1
        try:
            info = await js.stream_info(config.name)
        except NotFoundError:
            try:
                await js.add_stream(config)
            except APIError as exc:
                raise replicas_refused(exc, config.name, replicas) from None
            log.info("created stream %s (%d replicas)", config.name, replicas)
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
            try:
                await js.update_stream(config)
            except APIError as exc:
                if "num_replicas" not in drift:
                    raise
                raise replicas_refused(exc, config.name, replicas, current.num_replicas) from None
            log.info("updated stream %s: %s", config.name, drift)
