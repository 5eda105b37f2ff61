"""Stream definitions for ``TRACKS`` and ``DLQ``, and their create-or-reconcile at start."""

from __future__ import annotations

import dataclasses
import logging

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError

from subjects.names import DLQ_ROOT, DLQ_STREAM, ROOT, STREAM

__all__ = [
    "DLQ_MAX_BYTES",
    "PAYLOADS_BUCKET",
    "PAYLOADS_MAX_BYTES",
    "TRACKS_MAX_BYTES",
    "StreamReplicasError",
    "StreamStorageError",
    "dlq_stream",
    "ensure_streams",
    "replicas_refused",
    "storage_refused",
    "tracks_stream",
]

log = logging.getLogger(__name__)

TRACKS_MAX_BYTES = 10 * 2**30
"""Default bound of ``TRACKS`` (``TRACKS_STREAM_MAX_BYTES``): 10 GiB."""
DLQ_MAX_BYTES = 2**30
"""Default bound of ``DLQ`` (``TRACKS_DLQ_MAX_BYTES``): 1 GiB."""
PAYLOADS_MAX_BYTES = 5 * 2**30
"""Default bound of the payload object store (``TRACKS_PAYLOAD_MAX_BYTES``): 5 GiB."""
PAYLOADS_BUCKET = "TRACKS_PAYLOADS"
"""The payload object store's default bucket (its stream is ``OBJ_TRACKS_PAYLOADS``)."""

# Every stream is bounded by age and by bytes, and full means ``discard=new``: a publish to a full
# stream fails (the step is not acked and comes back; the client's trigger raises) instead of the
# server silently dropping the oldest events, which with limits retention may be events a
# consumer has not processed yet. Age keeps removing old events either way. An alert
# (``stream_space``) fires well before a stream is full; README "Sizing" says how to size them.


def tracks_stream(
    *, max_age_s: float, duplicate_window_s: float, replicas: int = 1, max_bytes: int = TRACKS_MAX_BYTES
) -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        subjects=[f"{ROOT}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=max_age_s,
        max_bytes=max_bytes,
        duplicate_window=duplicate_window_s,
        num_replicas=replicas,
        discard=DiscardPolicy.NEW,
        allow_direct=True,
    )


def dlq_stream(*, max_age_s: float, replicas: int = 1, max_bytes: int = DLQ_MAX_BYTES) -> StreamConfig:
    return StreamConfig(
        name=DLQ_STREAM,
        subjects=[f"{DLQ_ROOT}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=max_age_s,
        max_bytes=max_bytes,
        duplicate_window=120.0,
        num_replicas=replicas,
        discard=DiscardPolicy.NEW,
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


def _never_below_use(config: StreamConfig, current: int | None, used: int) -> StreamConfig:
    """``config``, or with its bound left as it is when the stream already holds more (a stream
    upgraded from unbounded): over its bound, a ``discard=new`` stream refuses every publish, and
    the work would stop at once instead of an alert coming first."""
    wanted = config.max_bytes or -1
    if wanted <= 0 or used <= wanted:
        return config
    keep = current if current is not None else -1
    log.warning(
        "stream %s holds %d bytes, more than its new bound %d (TRACKS_STREAM_MAX_BYTES / "
        "TRACKS_DLQ_MAX_BYTES): the bound stays %s, else every publish to it would fail; raise the "
        "setting, or let age shrink the stream and restart",
        config.name,
        used,
        wanted,
        "unlimited" if keep <= 0 else keep,
    )
    return dataclasses.replace(config, max_bytes=keep)


def storage_refused(exc: APIError, stream: str, max_bytes: int | None) -> Exception | None:
    """``exc`` as one clear line when the server cannot reserve the stream's ``max_bytes``."""
    if exc.err_code != 10047:  # insufficient storage resources available
        return None
    return StreamStorageError(
        f"stream {stream}: the server cannot reserve max_bytes={max_bytes} ({exc.description}); lower "
        "TRACKS_STREAM_MAX_BYTES / TRACKS_DLQ_MAX_BYTES / TRACKS_PAYLOAD_MAX_BYTES or give nats-server "
        "more storage (jetstream max_file_store)"
    )


class StreamStorageError(RuntimeError):
    """The server cannot reserve a stream's ``max_bytes`` (its storage limit is smaller)."""


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
                raise storage_refused(exc, config.name, config.max_bytes) or replicas_refused(
                    exc, config.name, replicas
                ) from None
            log.info("created stream %s (%d replicas)", config.name, replicas)
            continue
        current = info.config
        config = _never_below_use(config, current.max_bytes, int(info.state.bytes))
        assert config.name is not None
        drift = {
            field: (getattr(current, field), getattr(config, field))
            for field in (
                "subjects",
                "max_age",
                "max_bytes",
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
                if (refused := storage_refused(exc, config.name, config.max_bytes)) is not None:
                    raise refused from None
                if "num_replicas" not in drift:
                    raise
                raise replicas_refused(exc, config.name, replicas, current.num_replicas) from None
            log.info("updated stream %s: %s", config.name, drift)
