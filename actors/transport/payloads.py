"""Large payloads by reference (claim check) in a JetStream object store.

NATS refuses messages over its max payload (1 MiB by default), so a payload whose JSON is
larger than ``threshold_bytes`` is stored as an object under ``<correlationId>/<track>``
and replaced, on the wire and in the ledger, by a small reference::

    {"$tracksRef": {"bucket": "TRACKS_PAYLOADS", "key": "cid/track", "size": 5242880, "sha256": "..."}}

The reference carries its own size and SHA-256, so a reader can tell a missing or
overwritten object from a good one: both are permanent (:class:`PayloadMissing`,
:class:`PayloadCorrupt`, subclasses of :class:`~actors.errors.PoisonMessage`), since no retry
brings the bytes back. The bucket has a TTL (stream ``max_age``) so that payloads of runs
nobody purges still go away; :meth:`PayloadStore.delete` removes a run's objects at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import (
    APIError,
    BucketNotFoundError,
    DigestMismatchError,
    NotFoundError,
    ObjectNotFoundError,
)
from nats.js.object_store import ObjectStore

from actors.errors import PoisonMessage
from subjects.jsonwire import dumpb
from subjects.streams import PAYLOADS_BUCKET, PAYLOADS_MAX_BYTES, replicas_refused, storage_refused

__all__ = [
    "BUCKET",
    "REF_KEY",
    "PayloadCorrupt",
    "PayloadMissing",
    "PayloadRef",
    "PayloadStore",
    "encoded",
    "is_ref",
]

REF_KEY = "$tracksRef"
"""The one key of a reference dict; ``$`` cannot start a pydantic field name, so no model collides."""


_BUCKET = re.compile(r"[A-Za-z0-9_-]{1,64}")


class PayloadMissing(PoisonMessage):
    """The referenced object is gone (purged, expired by the bucket TTL, or never written)."""


class PayloadCorrupt(PoisonMessage):
    """The referenced object exists but is not the payload the reference describes."""


@dataclass(frozen=True)
class PayloadRef:
    bucket: str
    key: str
    size: int
    sha256: str

    def as_payload(self) -> dict[str, Any]:
        return {REF_KEY: {"bucket": self.bucket, "key": self.key, "size": self.size, "sha256": self.sha256}}

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> PayloadRef:
        body = payload.get(REF_KEY)
        try:
            assert isinstance(body, dict)
            ref = cls(str(body["bucket"]), str(body["key"]), int(body["size"]), str(body["sha256"]))
        except (AssertionError, KeyError, TypeError, ValueError):
            raise PayloadCorrupt(f"malformed payload reference: {json.dumps(body)[:200]}") from None
        return ref


def encoded(payload: dict[str, Any]) -> bytes:
    """The payload's compact JSON: what is measured against the threshold and what is stored."""
    return dumpb(payload)


def is_ref(payload: object) -> bool:
    """Is this a claim-check reference rather than a payload?"""
    return isinstance(payload, dict) and len(payload) == 1 and isinstance(payload.get(REF_KEY), dict)


BUCKET = PAYLOADS_BUCKET
"""The default bucket (its stream is ``OBJ_TRACKS_PAYLOADS``)."""


class PayloadStore:
    """Offload, resolve and delete payloads in one object-store bucket (created on first use).

    ``replicas``: the bucket's (``TRACKS_STREAM_REPLICAS``), set when creating it and reconciled
    on an existing one; None (a client that does not know) creates it with one and never changes it.
    """

    def __init__(
        self,
        js: JetStreamContext,
        *,
        bucket: str = BUCKET,
        threshold_bytes: int = 256 * 1024,
        ttl_s: float = 7 * 24 * 3600.0,
        fetch_timeout_s: float = 30.0,
        replicas: int | None = None,
        max_bytes: int | None = None,
    ) -> None:
        if threshold_bytes <= 0 or ttl_s <= 0:
            raise ValueError("threshold_bytes and ttl_s must be > 0")
        self._js = js
        self.bucket = bucket
        self.threshold_bytes = threshold_bytes
        self.ttl_s = ttl_s
        self._fetch_timeout_s = fetch_timeout_s
        self.replicas = replicas
        self.max_bytes = max_bytes
        """The bucket's bound (``None``: as it is, :data:`PAYLOADS_MAX_BYTES` when created)."""
        self._stores: dict[str, ObjectStore] = {}
        self._lock = asyncio.Lock()

    # --- the bucket ----------------------------------------------------------------------

    async def ensure(self) -> ObjectStore:
        """Open the bucket, creating it when missing and correcting its TTL when it drifted."""
        if (store := self._stores.get(self.bucket)) is not None:
            return store
        async with self._lock:
            if (store := self._stores.get(self.bucket)) is not None:
                return store
            try:
                store = await self._js.object_store(self.bucket)
            except BucketNotFoundError:
                config = ObjectStoreConfig(
                    description="tracks: payloads passed by reference",
                    ttl=self.ttl_s,
                    storage=StorageType.FILE,
                    replicas=self.replicas or 1,
                    max_bytes=self.max_bytes or PAYLOADS_MAX_BYTES,  # the stream's discard is new
                )
                try:
                    store = await self._js.create_object_store(self.bucket, config=config)
                except APIError as exc:
                    name = _stream(self.bucket)
                    refused = storage_refused(exc, name, config.max_bytes)
                    raise refused or replicas_refused(exc, name, config.replicas) from None
            await self._reconcile(store)
            self._stores[self.bucket] = store
            return store

    async def _reconcile(self, store: ObjectStore) -> None:
        """The bucket's TTL, and its replicas when this store was given them, as configured."""
        status = await store.status()
        config = status.stream_info.config
        current = config.num_replicas or 1
        ttl_ok = status.ttl is not None and abs(status.ttl - self.ttl_s) < 1e-3
        bytes_ok = self.max_bytes in (None, config.max_bytes)
        if ttl_ok and bytes_ok and self.replicas in (None, current):
            return
        config.max_age = self.ttl_s
        config.num_replicas = self.replicas or current
        if self.max_bytes is not None:
            config.max_bytes = self.max_bytes
        try:
            await self._js.update_stream(config)
        except APIError as exc:
            if (refused := storage_refused(exc, _stream(self.bucket), config.max_bytes)) is not None:
                raise refused from None
            if config.num_replicas == current:
                raise
            raise replicas_refused(exc, _stream(self.bucket), config.num_replicas, current) from None

    async def _open(self, bucket: str) -> ObjectStore:
        if bucket == self.bucket:
            return await self.ensure()
        if (store := self._stores.get(bucket)) is None:
            try:
                store = await self._js.object_store(bucket)
            except BucketNotFoundError:
                raise PayloadMissing(f"payload bucket {bucket} does not exist") from None
            self._stores[bucket] = store
        return store

    # --- payloads ------------------------------------------------------------------------

    async def offload(self, correlation_id: str, track: str, payload: dict[str, Any]) -> dict[str, Any]:
        """``payload`` itself when small enough, else a reference to its stored copy."""
        data = encoded(payload)
        if len(data) <= self.threshold_bytes:
            return payload
        store = await self.ensure()
        key = f"{correlation_id}/{track}"
        await store.put(key, data)
        return PayloadRef(self.bucket, key, len(data), hashlib.sha256(data).hexdigest()).as_payload()

    async def offload_input(self, correlation_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A run command's input, as :meth:`offload` does for outputs (a reference stays as it is).

        Stored under ``<correlationId>/input.<sha256>``: never a track's output key (a track name
        has no ``.``) and named by its content, so a repeated trigger with the same input stores
        nothing again, and a trigger with another input never alters an earlier one's object.
        """
        if is_ref(payload):
            return payload
        data = encoded(payload)
        if len(data) <= self.threshold_bytes:
            return payload
        digest = hashlib.sha256(data).hexdigest()
        key = f"{correlation_id}/input.{digest}"
        store = await self.ensure()
        try:
            held = (await store.get_info(key)).size == len(data)
        except ObjectNotFoundError:
            held = False
        if not held:
            await store.put(key, data)
        return PayloadRef(self.bucket, key, len(data), digest).as_payload()

    async def resolve(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload a reference stands for (verified); any other payload unchanged."""
        if not is_ref(payload):
            return payload
        ref = PayloadRef.parse(payload)
        if not _BUCKET.fullmatch(ref.bucket) or not ref.key or "\n" in ref.key:
            raise PayloadCorrupt(
                f"payload reference names no possible object: {ref.bucket[:100]!r}/{ref.key[:100]!r}"
            )
        store = await self._open(ref.bucket)
        await self._check_complete(store, ref)
        try:
            result = await asyncio.wait_for(store.get(ref.key), timeout=self._fetch_timeout_s)
        except ObjectNotFoundError:
            raise PayloadMissing(f"payload {ref.bucket}/{ref.key} is gone (purged or expired)") from None
        except DigestMismatchError:
            raise PayloadCorrupt(f"payload {ref.bucket}/{ref.key} fails its object-store digest") from None
        data = bytes(result.data or b"")
        _verify(ref, data)
        try:
            value = json.loads(data)
        except ValueError as exc:
            raise PayloadCorrupt(f"payload {ref.bucket}/{ref.key} is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise PayloadCorrupt(f"payload {ref.bucket}/{ref.key} is not a JSON object")
        return value

    async def _check_complete(self, store: ObjectStore, ref: PayloadRef) -> None:
        """Every chunk must be there: nats-py's ``get`` waits forever for a chunk that was purged."""
        try:
            info = await store.get_info(ref.key)
        except ObjectNotFoundError:
            raise PayloadMissing(f"payload {ref.bucket}/{ref.key} is gone (purged or expired)") from None
        if info.size != ref.size:
            raise PayloadCorrupt(
                f"payload {ref.bucket}/{ref.key} has {info.size} bytes, the reference says "
                f"{ref.size} (overwritten?)"
            )
        subject = _chunks(ref.bucket, info.nuid)
        chunks = await self._js.stream_info(_stream(ref.bucket), subjects_filter=subject)
        held = sum((chunks.state.subjects or {}).values())
        if held != (info.chunks or 0):
            raise PayloadCorrupt(f"payload {ref.bucket}/{ref.key} has {held} of its {info.chunks} chunks")

    async def delete(self, correlation_id: str) -> int:
        """Remove every payload stored for one run; returns how many objects were removed."""
        return await self.delete_many([correlation_id])

    async def delete_many(self, correlation_ids: Iterable[str]) -> int:
        """Remove the payloads of many runs with one listing of the bucket."""
        prefixes = {f"{cid}/" for cid in correlation_ids}
        if not prefixes:
            return 0
        try:  # never create the bucket just to find it empty
            store = self._stores.get(self.bucket) or await self._js.object_store(self.bucket)
        except BucketNotFoundError:
            return 0
        removed = 0
        for name in await self._names():
            if name[: name.find("/") + 1] in prefixes:
                removed += await self._remove(store, name)
        return removed

    async def _names(self) -> list[str]:
        """Object names from the meta subjects (one request; the server lists up to 100,000)."""
        info = await self._js.stream_info(_stream(self.bucket), subjects_filter=f"$O.{self.bucket}.M.>")
        prefix = f"$O.{self.bucket}.M."
        subjects = info.state.subjects or {}
        return [base64.urlsafe_b64decode(s.removeprefix(prefix)).decode() for s in subjects]

    async def _remove(self, store: ObjectStore, name: str) -> int:
        """Purge the chunks and the meta record: unlike ``ObjectStore.delete`` no tombstone stays."""
        try:
            info = await store.get_info(name)
        except (ObjectNotFoundError, NotFoundError):
            return 0
        stream = _stream(self.bucket)
        await self._js.purge_stream(stream, subject=_chunks(self.bucket, info.nuid))
        meta = base64.urlsafe_b64encode(name.encode()).decode()
        await self._js.purge_stream(stream, subject=f"$O.{self.bucket}.M.{meta}")
        return 1


def _verify(ref: PayloadRef, data: bytes) -> None:
    if len(data) != ref.size:
        raise PayloadCorrupt(f"payload {ref.bucket}/{ref.key} has {len(data)} bytes, expected {ref.size}")
    if hashlib.sha256(data).hexdigest() != ref.sha256:
        raise PayloadCorrupt(f"payload {ref.bucket}/{ref.key} does not match its SHA-256 (overwritten?)")


def _stream(bucket: str) -> str:
    return f"OBJ_{bucket}"


def _chunks(bucket: str, nuid: str) -> str:
    return f"$O.{bucket}.C.{nuid}"
