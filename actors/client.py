"""Trigger tracks from code: publish a run command and return its correlation ID."""

from __future__ import annotations

import uuid
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import PubAck

from subjects import EventMetadata, EventType, TrackEvent, check_token, headers, names

from .publisher import EventPublisher

__all__ = ["TracksClient", "new_correlation_id"]


def new_correlation_id() -> str:
    return uuid.uuid4().hex


class TracksClient:
    def __init__(self, js: JetStreamContext) -> None:
        self._publisher = EventPublisher(js)

    async def trigger(
        self,
        track: str,
        payload: dict[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        user_id: str | None = None,
        msg_id: str | None = None,
        source: str = "client",
    ) -> tuple[str, PubAck]:
        """Publish ``tracks.<track>.run.<cid>``; de-duplicated per (cid, track) unless ``msg_id``."""
        check_token(track, "track name")
        cid = check_token(correlation_id or new_correlation_id(), "correlation ID")
        event = TrackEvent(
            track_id=track, event_type=EventType.DATA_READY, payload=payload or {},
            metadata=EventMetadata(correlation_id=cid, source_track=source, target_tracks=[track], user_id=user_id),
        )
        hdrs = {headers.MSG_ID: msg_id or f"{cid}:{track}:run"}
        ack = await self._publisher.publish(names.run(track, cid), event.to_bytes(), hdrs)
        return cid, ack
