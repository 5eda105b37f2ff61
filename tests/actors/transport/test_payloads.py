"""Claim checks against the real NATS: round trip, threshold, 5 MiB, corruption, TTL, deletion."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import suppress

import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from actors.errors import PoisonMessage
from actors.transport.payloads import PayloadCorrupt, PayloadMissing, PayloadStore, encoded, is_ref


@pytest.fixture
async def store(js: JetStreamContext, unique: str) -> AsyncIterator[PayloadStore]:
    bucket = f"TEST_PAYLOADS_{unique}"
    s = PayloadStore(js, bucket=bucket, threshold_bytes=1024, ttl_s=3600.0)
    yield s
    with suppress(NotFoundError):  # a test that never needed the bucket did not create it
        await js.delete_object_store(bucket)


def sized(n: int) -> dict[str, str]:
    """A payload whose compact JSON is exactly ``n`` bytes."""
    payload = {"x": ""}
    payload["x"] = "a" * (n - len(encoded(payload)))
    assert len(encoded(payload)) == n
    return payload


async def test_small_payload_stays_inline(store: PayloadStore) -> None:
    payload = {"files": ["a.pdf"], "n": 1}
    assert await store.offload("cid1", "drive", payload) is payload
    assert not is_ref(payload)
    assert await store.resolve(payload) is payload


async def test_threshold_boundary(store: PayloadStore) -> None:
    at = sized(1024)
    assert await store.offload("cid-b", "at", at) is at
    over = sized(1025)
    ref = await store.offload("cid-b", "over", over)
    assert is_ref(ref)
    body = ref["$tracksRef"]
    assert body["key"] == "cid-b/over" and body["size"] == 1025 and body["bucket"] == store.bucket
    assert len(body["sha256"]) == 64
    assert await store.resolve(ref) == over


async def test_five_mib_payload_that_nats_refuses_goes_by_reference(
    nc: NATS, store: PayloadStore, unique: str
) -> None:
    big = {"blob": "é" * (5 * 1024 * 1024 // 2), "meta": {"pages": 12}}
    data = encoded(big)
    assert len(data) > nc.max_payload
    with pytest.raises(nats.errors.MaxPayloadError):
        await nc.publish(f"test.payloads.{unique}", data)

    ref = await store.offload("cid-5m", "drive", big)
    assert len(encoded(ref)) < 300
    assert await store.resolve(ref) == big


async def test_overwritten_object_is_corrupt(js: JetStreamContext, store: PayloadStore) -> None:
    ref = await store.offload("cid-c", "t", sized(4000))
    obj = await js.object_store(store.bucket)
    await obj.put("cid-c/t", encoded(sized(4000)).replace(b"a", b"b"))
    with pytest.raises(PayloadCorrupt, match=r"cid-c/t does not match its SHA-256"):
        await store.resolve(ref)

    await obj.put("cid-c/t", b"{}")
    with pytest.raises(PayloadCorrupt, match=r"has 2 bytes, the reference says 4000"):
        await store.resolve(ref)


async def test_purged_chunks_are_corrupt_not_a_hang(js: JetStreamContext, store: PayloadStore) -> None:
    ref = await store.offload("cid-p", "t", sized(300_000))
    obj = await js.object_store(store.bucket)
    info = await obj.get_info("cid-p/t")
    await js.purge_stream(f"OBJ_{store.bucket}", subject=f"$O.{store.bucket}.C.{info.nuid}")
    with pytest.raises(PayloadCorrupt, match=r"has 0 of its 3 chunks"):
        await store.resolve(ref)


async def test_missing_object_is_a_permanent_error(store: PayloadStore) -> None:
    ref = await store.offload("cid-m", "t", sized(2000))
    assert await store.delete("cid-m") == 1
    with pytest.raises(PayloadMissing, match=r"cid-m/t is gone") as caught:
        await store.resolve(ref)
    assert isinstance(caught.value, PoisonMessage)

    elsewhere = {"$tracksRef": {**ref["$tracksRef"], "bucket": "NO_SUCH_BUCKET_X"}}
    with pytest.raises(PayloadMissing, match="bucket NO_SUCH_BUCKET_X does not exist"):
        await store.resolve(elsewhere)


async def test_malformed_reference(store: PayloadStore) -> None:
    with pytest.raises(PayloadCorrupt, match="malformed payload reference"):
        await store.resolve({"$tracksRef": {"bucket": store.bucket}})


async def test_delete_removes_one_run_and_no_tombstone(js: JetStreamContext, store: PayloadStore) -> None:
    for cid, track in [("run-1", "a"), ("run-1", "b"), ("run-10", "a"), ("run-2", "a")]:
        await store.offload(cid, track, sized(1500))
    assert await store.delete("run-1") == 2
    info = await js.stream_info(f"OBJ_{store.bucket}", subjects_filter=f"$O.{store.bucket}.M.>")
    names = sorted(base64.urlsafe_b64decode(s.rsplit(".", 1)[1]).decode() for s in info.state.subjects or {})
    assert names == ["run-10/a", "run-2/a"]
    assert await store.delete_many(["run-10", "run-2", "never"]) == 2
    assert await store.delete("run-1") == 0


async def test_bucket_ttl_is_set_and_follows_changes(js: JetStreamContext, store: PayloadStore) -> None:
    obj = await store.ensure()
    status = await obj.status()
    assert status.ttl == pytest.approx(3600.0)

    changed = PayloadStore(js, bucket=store.bucket, threshold_bytes=1024, ttl_s=7200.0)
    status = await (await changed.ensure()).status()
    assert status.ttl == pytest.approx(7200.0)


async def test_delete_never_creates_the_bucket(js: JetStreamContext, unique: str) -> None:
    store = PayloadStore(js, bucket=f"TEST_NEVER_{unique}")
    assert await store.delete("any") == 0
    with pytest.raises(NotFoundError):
        await js.object_store(store.bucket)
