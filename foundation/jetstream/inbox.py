"""Reply inboxes whose messages are handled inside nats.py's read loop.

nats.py gives a callback subscription a queue and a task: each message is queued, the task
woken and the callback awaited. A step receives two messages on such inboxes (its delivery,
on the pull inbox, and its PubAck), and that hand-off was a measurable share of a step's CPU
(``tracks bench``). A subscription made with ``future=`` has each message handed to
``future.set_result`` right in the read loop instead: nats.py's path for a request's reply.
:class:`_Direct` is such a "future" that calls a plain function, for every message.

The function runs in the read loop: it must be quick and must not wait. What it raises is
logged, so that nats.py's reader never sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

__all__ = ["subscribe_inbox"]

log = logging.getLogger(__name__)


class _Direct:
    __slots__ = ("_handle", "_subject")

    def __init__(self, subject: str, handle: Callable[[Msg], None]) -> None:
        self._subject = subject
        self._handle = handle

    def cancelled(self) -> bool:
        return False

    def set_result(self, msg: Msg) -> None:
        try:
            self._handle(msg)
        except Exception:
            log.exception("handling a message on %s failed", self._subject)


async def subscribe_inbox(nc: NATS, subject: str, handle: Callable[[Msg], None]) -> Subscription:
    """Subscribe ``handle`` (a plain function) to ``subject``; it is called once per message."""
    return await nc.subscribe(subject, future=_Direct(subject, handle))  # type: ignore[arg-type]
