"""Secrets out of every message: one place that masks passwords and tokens in text, and names
servers by ``host:port`` (:func:`server_address`) with a short reason (:func:`describe_error`).

Used by settings (``repr`` and validation errors), connection errors, the CLI's error lines and
the log formatters (:mod:`foundation.logs`), so ``nats://user:password@host`` is never printed.

- ``scheme://user:secret@host`` becomes ``scheme://user:***@host``;
- ``nats://token@host`` (a NATS token) becomes ``nats://***@host``; ``postgresql://user@host``
  (a user name alone) stays;
- ``password=…``, ``token=…``, ``secret=…`` (query strings, keyword DSNs) keep the key, lose the value.
"""

from __future__ import annotations

import errno
import re

__all__ = ["MASK", "describe_error", "mask_secrets", "mask_url", "server_address"]

MASK = "***"

_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s'\"<>]*)@")
_KEY_VALUE = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|token|auth_token|secret|api_key|apikey)=)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s&,;'\")]+)",
    re.IGNORECASE,
)


_TOKEN_SCHEMES = ("nats://", "tls://", "ws://", "wss://")
"""Where ``scheme://secret@host`` is a token (a NATS URL); elsewhere a lone user name is kept."""


def _userinfo(match: re.Match[str]) -> str:
    scheme = match["scheme"]
    user, colon, _ = match["userinfo"].partition(":")
    if colon:
        return f"{scheme}{user}:{MASK}@"
    if scheme.lower() in _TOKEN_SCHEMES:
        return f"{scheme}{MASK}@"
    return match[0]


def mask_url(url: str) -> str:
    """A URL (or comma-separated URLs, or a DSN) without its password or token."""
    return mask_secrets(url)


def mask_secrets(text: str) -> str:
    """``text`` with every URL credential and ``password=…``-style value replaced by ``***``.

    Cheap when there is nothing to mask (two substring checks before any regex runs).
    """
    if "@" in text and "://" in text:
        text = _USERINFO.sub(_userinfo, text)
    lowered = text.lower()
    if "=" in text and any(k in lowered for k in ("passw", "pwd", "token", "secret", "key")):
        text = _KEY_VALUE.sub(lambda m: m["key"] + MASK, text)
    return text


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
