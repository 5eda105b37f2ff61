"""How a runtime's steps in flight learn that their run was cancelled.

The runtime listens (core NATS) to ``tracks.workflow.*.cancelled.*``, the announcement
:func:`actors.ledger.cancel.cancel` publishes, and marks the steps it runs for that correlation
ID (:meth:`TrackContext.mark_cancelled`). The event is checked against the ledger first: anyone
who can publish on ``tracks.>`` could send one, and a forged cancellation must not stop a step.

Best effort by design: a runtime that misses the event (disconnected at that moment) lets its
step finish; the ledger's claim still refuses every later step of the run, so nothing
downstream starts either way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

import asyncpg
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from actors.runtime.worker import TrackWorker
from subjects import names

__all__ = ["CancelListener"]

log = logging.getLogger(__name__)


class CancelListener:
    def __init__(self, nc: NATS, pool: asyncpg.Pool, workers: Mapping[str, TrackWorker]) -> None:
        self._nc = nc
        self._pool = pool
        self._workers = workers
        self._sub: Subscription | None = None
        self.told = 0
        """Steps told so far (for tests and diagnostics)."""

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(names.workflow_cancellations(), cb=self._on_event)

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None and self._nc.is_connected:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # the connection may be closing
                log.debug("unsubscribing from cancellations: %s", exc)

    async def _on_event(self, msg: Msg) -> None:
        cid = msg.subject.rsplit(".", 1)[-1]
        try:
            status = await self._pool.fetchval(
                "SELECT status FROM workflow_runs WHERE correlation_id = $1", cid
            )
        except Exception as exc:  # the database away: the steps finish, the ledger still guards
            log.warning("could not check the cancellation of run %s: %s", cid, exc)
            return
        if status != "cancelled":
            log.warning("ignored a cancellation event for run %s: the ledger says %s", cid, status)
            return
        try:
            reason = json.loads(msg.data).get("payload", {}).get("reason")
        except (ValueError, AttributeError):
            reason = None
        told = sum(
            w.cancel_run(cid, reason if isinstance(reason, str) else None) for w in self._workers.values()
        )
        if told:
            self.told += told
            log.info("run %s cancelled: %d step(s) in flight told", cid, told)
