"""Limit state in PostgreSQL (migration 0012): one ``flow_acquire`` call per admission.

Why PostgreSQL and not NATS KV: every runtime already holds a pool to it, an admission must take
several limits at once (a track's own, the key's, a shared one) all-or-nothing, which one locked
transaction does and a KV compare-and-set per key cannot, and the state survives a NATS restart
untouched. Slots are leases that expire: a replica that dies gives them back when they run out
(its lease is the track's ack_wait, renewed every third of it while the step runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from actors.flow.limits import Limit, Requirement

__all__ = ["RATE_MARGIN", "Admission", "FlowStore", "limit_rows"]

RATE_MARGIN = 0.05
"""Rates are held 5% wide at the gate ("5/s": one start per 210 ms, at most 5 in any 1.05 s): a
step's handler starts after its claim, a PostgreSQL round trip whose time varies, and two
starts granted a full period apart must not land inside one period when they run."""


@dataclass(frozen=True)
class Admission:
    grants: list[list[int]]
    """One entry per admission granted: the slot leases it took (none for rate-only limits).
    Empty: refused (``blocked`` says by what)."""
    blocked: Requirement | None = None
    wait_s: float = 0.0


class FlowStore:
    def __init__(self, pool: asyncpg.Pool, holder: str) -> None:
        self.pool = pool
        self.holder = holder

    async def define(self, limits: Sequence[Limit]) -> None:
        """Record the limits' definitions (``tracks limits`` reads them)."""
        if not limits:
            return
        await self.pool.executemany(
            "INSERT INTO flow_limits (name, rate_n, rate_period_s, max_running, per_key) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET rate_n = $2, "
            "rate_period_s = $3, max_running = $4, per_key = $5, updated_at = now()",
            [(lim.name, lim.rate_n, lim.rate_period_s, lim.max_running, lim.per_key) for lim in limits],
        )

    async def acquire(
        self,
        reqs: Sequence[Requirement],
        lease_s: float,
        cid: str | None = None,
        seq: int | None = None,
        *,
        count: int = 1,
    ) -> Admission:
        """Up to ``count`` admissions (``cid``/``seq``: the step's, when ``count`` is 1)."""
        row = await self.pool.fetchrow(
            "SELECT lease_ids, granted, blocked, wait_s "
            "FROM flow_acquire($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            [r.limit.name for r in reqs],
            [r.key for r in reqs],
            [r.limit.max_running for r in reqs],
            [r.limit.rate_n for r in reqs],
            [r.limit.rate_period_s * (1 + RATE_MARGIN) if r.limit.rate_period_s else None for r in reqs],
            self.holder,
            lease_s,
            cid,
            seq,
            count,
        )
        assert row is not None
        if row["blocked"]:
            return Admission([], reqs[row["blocked"] - 1], float(row["wait_s"]))
        ids, granted = list(row["lease_ids"]), row["granted"]
        per = len(ids) // granted
        return Admission([ids[i * per : (i + 1) * per] for i in range(granted)])

    async def newest(self, name: str, key: str, seq: int) -> int:
        """Record ``seq`` for (name, key) if it is the newest; the newest seen so far."""
        value = await self.pool.fetchval(
            "INSERT INTO flow_newest (name, key, seq) VALUES ($1, $2, $3) ON CONFLICT (name, key) "
            "DO UPDATE SET seq = greatest(flow_newest.seq, $3) RETURNING seq",
            name,
            key,
            seq,
        )
        return int(value)

    async def older_running(self, name: str, key: str, seq: int) -> list[str]:
        """Runs of the key's steps that hold its slots and are older than ``seq``."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT correlation_id FROM flow_leases WHERE name = $1 AND key = $2 "
            "AND seq < $3 AND correlation_id IS NOT NULL AND expires_at > clock_timestamp()",
            name,
            key,
            seq,
        )
        return [r["correlation_id"] for r in rows]

    async def release(self, leases: Sequence[int]) -> None:
        if leases:
            await self.pool.execute(
                "DELETE FROM flow_leases WHERE lease_id = ANY($1::bigint[])", list(leases)
            )

    async def renew(self, lease_s: float, waiting: dict[str, int]) -> None:
        """Extend this holder's leases; record what waits at its gates, per limit."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE flow_leases SET expires_at = clock_timestamp() + make_interval(secs => $2) "
                "WHERE holder = $1",
                self.holder,
                lease_s,
            )
            await conn.executemany(
                "INSERT INTO flow_waiting (name, holder, waiting) VALUES ($1, $2, $3) "
                "ON CONFLICT (name, holder) DO UPDATE SET waiting = $3, updated_at = now()",
                [(name, self.holder, n) for name, n in waiting.items()],
            )

    async def sweep(self) -> None:
        """Drop what no acquirer will look at again: expired leases, starts out of every window,
        the queue rows of replicas gone (any replica may run it; each delete stands alone)."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM flow_leases WHERE expires_at < clock_timestamp() - interval '1 minute'"
            )
            await conn.execute(
                "DELETE FROM flow_starts s USING flow_limits l WHERE s.name = l.name "
                "AND s.at < clock_timestamp() - make_interval(secs => coalesce(l.rate_period_s, 0) * 2 + 60)"
            )
            await conn.execute("DELETE FROM flow_waiting WHERE updated_at < now() - interval '1 hour'")

    async def forget(self) -> None:
        """At shutdown: this holder's leases and queue rows go (its steps have settled)."""
        await self.pool.execute("DELETE FROM flow_leases WHERE holder = $1", self.holder)
        await self.pool.execute("DELETE FROM flow_waiting WHERE holder = $1", self.holder)


async def limit_rows(pool: asyncpg.Pool, stale_s: float = 60.0) -> list[dict[str, Any]]:
    """Each limit, its use now (running slots, starts in the current window, keys busy) and queue."""
    rows = await pool.fetch(
        """
        SELECT l.name, l.rate_n, l.rate_period_s, l.max_running, l.per_key,
               (SELECT count(*) FROM flow_leases f
                 WHERE f.name = l.name AND f.expires_at > clock_timestamp()) AS running,
               (SELECT count(DISTINCT f.key) FROM flow_leases f
                 WHERE f.name = l.name AND f.expires_at > clock_timestamp()) AS keys_running,
               (SELECT count(*) FROM flow_starts s
                 WHERE s.name = l.name
                   AND s.at > clock_timestamp()
                              - make_interval(secs => coalesce(l.rate_period_s, 0))) AS starts,
               (SELECT coalesce(sum(w.waiting), 0) FROM flow_waiting w
                 WHERE w.name = l.name
                   AND w.updated_at > now() - make_interval(secs => $1)) AS waiting
          FROM flow_limits l ORDER BY l.name
        """,
        stale_s,
    )
    return [dict(r) for r in rows]
