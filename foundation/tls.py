"""The TLS context for NATS connections, from ``TRACKS_NATS_TLS_CA`` / ``_CERT`` / ``_KEY``.

Without any of them nothing is built: nats-py then uses the system trust store for a
``tls://`` URL or a server that requires TLS. With a CA file, the server's certificate must
chain to it (and name the host connected to); with a certificate and key, the client presents
them (mutual TLS: nats-server's ``tls { verify: true }``). A file that is not what it should be
is one :class:`SettingsError` line naming the variable.
"""

from __future__ import annotations

import ssl

from foundation.settings import Settings, SettingsError

__all__ = ["TlsRefused", "nats_tls_context", "tls_failure"]


def nats_tls_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.nats_tls_ca is None and settings.nats_tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if settings.nats_tls_ca is not None:
        try:
            context.load_verify_locations(cafile=str(settings.nats_tls_ca))
        except (ssl.SSLError, ValueError) as exc:
            raise SettingsError(
                f"TRACKS_NATS_TLS_CA: {settings.nats_tls_ca} holds no PEM CA certificate ({exc})"
            ) from None
    if settings.nats_tls_cert is not None and settings.nats_tls_key is not None:
        try:
            context.load_cert_chain(str(settings.nats_tls_cert), str(settings.nats_tls_key))
        except ssl.SSLError as exc:
            raise SettingsError(
                f"TRACKS_NATS_TLS_CERT / TRACKS_NATS_TLS_KEY: {settings.nats_tls_cert} and "
                f"{settings.nats_tls_key} are not a PEM certificate and its unencrypted key ({exc})"
            ) from None
    return context


class TlsRefused(ConnectionError):
    """A TLS handshake the server (or this client) refused, said as what to set."""


def tls_failure(
    exc: BaseException, settings: Settings, previous: BaseException | None = None
) -> TlsRefused | None:
    """A TLS failure of one connection attempt as one line saying what to set; None for another
    error. A refusal seen on an earlier attempt is kept over a later attempt's broken pipe (with
    TLS 1.3 the server's "certificate required" alert may come after the client starts writing)."""
    if not isinstance(exc, ssl.SSLError):
        if isinstance(previous, TlsRefused):
            return previous
        if (
            isinstance(exc, (BrokenPipeError, ConnectionResetError))
            and settings.nats_tls_ca is not None
            and settings.nats_tls_cert is None
        ):
            return TlsRefused(
                "the server closed the TLS connection at once: if it verifies clients (mutual TLS), "
                "set TRACKS_NATS_TLS_CERT and TRACKS_NATS_TLS_KEY"
            )
        return None
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TlsRefused(
            f"the server's TLS certificate is not trusted ({exc.verify_message}): set TRACKS_NATS_TLS_CA "
            "to the PEM file of the CA that signed it"
        )
    reason = (exc.reason or str(exc)).upper()
    if "CERTIFICATE_REQUIRED" in reason:
        return TlsRefused(
            "the server requires a client certificate (mutual TLS): set TRACKS_NATS_TLS_CERT and "
            "TRACKS_NATS_TLS_KEY"
        )
    if "UNKNOWN_CA" in reason or "BAD_CERTIFICATE" in reason or "CERTIFICATE_UNKNOWN" in reason:
        return TlsRefused(
            f"the server refused this client's certificate ({exc.reason}): TRACKS_NATS_TLS_CERT must be "
            "signed by a CA the server trusts (its tls ca_file)"
        )
    return TlsRefused(f"TLS handshake failed: {exc.reason or exc}")
