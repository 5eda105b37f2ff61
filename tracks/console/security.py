"""Who may use the console, and that a form was sent by the console's own page.

- A token (``TRACKS_CONSOLE_TOKEN``), when set, is asked of every request: as a bearer token
  (``Authorization: Bearer TOKEN``) or as the password of basic auth (any user name), so a
  browser can ask for it. ``tracks console`` refuses to bind beyond loopback without one.
- CSRF: every page sets a random per-session token in a cookie (``SameSite=Strict``) and puts
  it in each form; a POST whose form field does not match the cookie is refused (403).
- Every answer forbids framing and inline scripts (a Content-Security-Policy).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import secrets

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

__all__ = ["CSRF_COOKIE", "CSRF_FIELD", "SecurityMiddleware", "csrf_token", "is_loopback", "valid_csrf"]

CSRF_COOKIE = "tracks_csrf"
CSRF_FIELD = "csrf"
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1: reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _authorized(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return hmac.compare_digest(value.strip().encode(), token.encode())
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(decoded.partition(":")[2].encode(), token.encode())
    return False


def csrf_token(request: Request) -> str:
    """The session's CSRF token: the cookie's, or a new one (set on the response by the middleware)."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token:
        token = secrets.token_urlsafe(32)
        request.state.new_csrf = token
    return str(token)


def valid_csrf(request: Request, sent: object) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    return bool(cookie) and isinstance(sent, str) and hmac.compare_digest(sent.encode(), str(cookie).encode())


class SecurityMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: object, token: str | None) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self._token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if self._token and not _authorized(request, self._token):
            return PlainTextResponse(
                "the console needs its token (TRACKS_CONSOLE_TOKEN): a bearer token or basic-auth password\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="tracks console"', **_HEADERS},
            )
        response = await call_next(request)
        new = getattr(request.state, "new_csrf", None)
        if new:
            response.set_cookie(CSRF_COOKIE, new, httponly=True, samesite="strict", path="/")
        response.headers.update(_HEADERS)
        return response
