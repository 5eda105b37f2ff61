"""Servers named in messages: ``host:port`` (never a URL's credentials) and a short reason.

Apart from :mod:`foundation.connections` (which needs nats-py) so that what talks only to
PostgreSQL (the pool, read-only CLI commands) names servers without importing it.
"""

from __future__ import annotations

import errno
import re

__all__ = ["describe_error", "server_address"]


def server_address(url: str) -> str:
    """``host:port`` of the server(s) a URL or DSN names, comma-separated; never its user or password.

    ``nats://u:secret@a:4222,nats://b:4222`` gives ``a:4222,b:4222``;
    ``postgresql://u:secret@h1:5432,h2:5432/db?sslmode=require`` gives ``h1:5432,h2:5432``.
    """
    addresses = []
    for part in url.split(","):
        rest = part.strip().split("://", 1)[-1]
        netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
        addresses.append(netloc.rpartition("@")[2])
    return ",".join(a for a in addresses if a) or "the default host"


def describe_error(exc: BaseException | None) -> str:
    """A short reason for a log line: ``connection refused``, ``timed out``, or the error's text."""
    if exc is None:
        return "no error reported"
    text = str(exc).strip()
    if isinstance(exc, ConnectionRefusedError) or (
        isinstance(exc, OSError) and f"[Errno {errno.ECONNREFUSED}]" in text
    ):
        return "connection refused"
    if isinstance(exc, TimeoutError) and not text:
        return "timed out"
    return text or type(exc).__name__
