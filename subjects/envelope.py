"""The ``TrackEvent`` envelope: camelCase JSON on the wire, a pydantic model in code."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from subjects.jsonwire import dumpb

__all__ = ["EventMetadata", "EventType", "TrackEvent", "encode_event"]

_WIRE = ConfigDict(
    alias_generator=AliasGenerator(alias=to_camel),
    populate_by_name=True,
    serialize_by_alias=True,
    frozen=True,
)


class EventType(StrEnum):
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    DATA_READY = "data_ready"


class EventMetadata(BaseModel):
    model_config = ConfigDict(**_WIRE, extra="allow")

    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str
    source_track: str
    target_tracks: list[str] | None = None
    user_id: str | None = None
    workflow: str | None = None


class TrackEvent(BaseModel):
    model_config = ConfigDict(**_WIRE, extra="forbid")

    track_id: str
    event_type: EventType
    payload: dict[str, Any] = Field(default_factory=dict)
    metadata: EventMetadata

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def looks_like(cls, body: object) -> bool:
        """A JSON object carrying the envelope's required keys; anything else is a plain payload."""
        return isinstance(body, dict) and "trackId" in body and "eventType" in body and "metadata" in body


def encode_event(
    track_id: str,
    event_type: EventType,
    payload: dict[str, Any],
    *,
    correlation_id: str,
    source_track: str,
    target_tracks: list[str] | None = None,
    user_id: str | None = None,
    workflow: str | None = None,
) -> bytes:
    """The wire form of a :class:`TrackEvent`, built without the model (a hot path).

    Produces exactly what ``TrackEvent(...).to_bytes()`` would; a test keeps the two equal.
    """
    metadata: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "correlationId": correlation_id,
        "sourceTrack": source_track,
    }
    if target_tracks is not None:
        metadata["targetTracks"] = target_tracks
    if user_id is not None:
        metadata["userId"] = user_id
    if workflow is not None:
        metadata["workflow"] = workflow
    event = {"trackId": track_id, "eventType": str(event_type), "payload": payload, "metadata": metadata}
    return dumpb(event)
