"""Settings: one frozen, validated object read once from the environment.

Every knob is a ``TRACKS_*`` variable. When ``TRACKS_NATS_URL`` or ``TRACKS_DATABASE_URL``
is unset the embedded default (see :mod:`tracks.embedded`) provides the server. A bad value
is reported as one line per variable (:class:`SettingsError`), never as a traceback.

A plain frozen dataclass (:mod:`foundation.env_settings`), not a pydantic model: every command
reads these first, and pydantic's import was half of a read-only command's start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from foundation.env_settings import Bounds, EnvSettings, FieldErrors, validates
from foundation.redact import mask_url

__all__ = ["Settings", "SettingsError", "load", "load_settings"]

_S = TypeVar("_S")

PositiveFloat = Annotated[float, Bounds(gt=0)]
PositiveInt = Annotated[int, Bounds(gt=0)]


class SettingsError(ValueError):
    """The environment holds invalid values; ``str()`` is one line per bad variable."""


@dataclass(frozen=True, repr=False)
class Settings(EnvSettings):
    SECRETS = frozenset({"nats_password", "nats_token"})
    URLS = frozenset({"nats_url", "database_url"})

    # --- servers -------------------------------------------------------------------------
    nats_url: str | None = None
    """Comma-separated NATS URLs; unset means the embedded nats-server."""
    nats_user: str | None = None
    nats_password: str | None = None
    nats_token: str | None = None
    nats_creds: Path | None = None
    """A NATS ``.creds`` file (JWT + NKey)."""
    nats_nkey_seed: Path | None = None
    """A file holding a user NKey seed (``SU...``): the server knows the user by its public key."""
    nats_inbox_prefix: str | None = None
    """Where this process's replies come (PubAcks, pulled batches, answers): unset, ``_INBOX.<user>``
    when ``nats_user`` is a subject token, else ``_INBOX``; a user may then be allowed only its own."""
    nats_tls_ca: Path | None = None
    """PEM file of the CA(s) that signed the NATS servers' certificates (default: the system's)."""
    nats_tls_cert: Path | None = None
    """PEM client certificate for mutual TLS (with ``nats_tls_key``)."""
    nats_tls_key: Path | None = None
    """Its PEM private key (unencrypted)."""
    database_url: str | None = None
    """A PostgreSQL DSN; unset means the embedded PostgreSQL."""
    data_dir: Path = Path(".tracks")
    """Where the embedded servers keep their data, logs and state file."""
    db_pool_size: PositiveInt = 8
    connect_wait_s: PositiveFloat = 60.0
    """How long a starting actor waits for NATS and for PostgreSQL to answer before it gives up."""
    connect_timeout_s: PositiveFloat = 5.0
    """How long a one-shot CLI command waits for a server (``tracks --connect-timeout``)."""

    # --- streams -------------------------------------------------------------------------
    stream_replicas: Annotated[int, Bounds(ge=1, le=5)] = 1
    stream_max_age_s: PositiveFloat = 7 * 24 * 3600.0
    """How long TRACKS keeps events (limits retention)."""
    stream_max_bytes: PositiveInt = 10 * 2**30  # subjects.streams.TRACKS_MAX_BYTES
    """Most bytes TRACKS holds (10 GiB); full, a publish fails (discard=new) rather than old events
    being dropped unread: size it with README "Sizing", the ``stream_space`` alert warns first."""
    dlq_max_age_s: PositiveFloat = 30 * 24 * 3600.0
    dlq_max_bytes: PositiveInt = 2**30  # subjects.streams.DLQ_MAX_BYTES
    """Most bytes DLQ holds (1 GiB); full, a dead letter is not written and its step comes back."""
    duplicate_window_s: PositiveFloat = 120.0
    """JetStream de-duplication window for ``Nats-Msg-Id``."""

    # --- consumers (defaults for every track; a track may override) -------------------------
    ack_wait_s: PositiveFloat = 30.0
    max_deliver: Annotated[int, Bounds(ge=1)] = 5
    max_ack_pending: PositiveInt = 1024
    concurrency: PositiveInt = 256
    """Handlers running at once per track in one process."""
    fetch_batch: PositiveInt = 256
    fetch_timeout_s: PositiveFloat = 1.0
    shutdown_grace_s: PositiveFloat = 30.0
    """On SIGTERM, how long in-flight handlers may take to finish before they are abandoned."""

    # --- failures (defaults for every track; a track may override) ----------------------
    retry_base_s: Annotated[float, Bounds(ge=0)] = 1.0
    """First retry delay; doubles per delivery (with jitter) up to ``retry_cap_s``."""
    retry_cap_s: PositiveFloat = 60.0
    time_limit_s: PositiveFloat = 300.0
    """Longest a handler may run; every step has one (heartbeats keep ack_wait from expiring)."""
    breaker_threshold: Annotated[int, Bounds(ge=0)] = 25
    """Consecutive failures that open a track's circuit breaker (0 disables it)."""
    breaker_cooldown_s: PositiveFloat = 30.0
    """How long an open breaker waits before it lets one probe message through."""

    metrics_interval_s: PositiveFloat = 30.0
    """How often an actor reports CPU, RSS and open connections (log line + tracksapi.metrics.*)."""
    priority_aging_s: PositiveFloat = 10.0
    """Waiting this long lifts a pending message one priority level (low never starves)."""
    run_timeout_check_s: PositiveFloat = 5.0
    """How often each runtime looks for workflow runs past their deadline."""
    sweep_interval_s: PositiveFloat = 60.0
    """How often each runtime looks for steps whose message JetStream gave up on unheard (and at start)."""
    lean_spans: bool = True
    """Per-step spans built without the SDK's span machinery (docs/hot-path.md); false: SDK spans."""
    gc_tuning: bool = True
    """Freeze the start-up heap and raise the collector's thresholds (see :mod:`foundation.gc_tuning`)."""
    idle_trim_s: Annotated[float, Bounds(ge=0)] = 10.0
    """An actor idle this long after a burst gives glibc's free heap pages back to the OS
    (:mod:`foundation.idle_trim`); 0: never."""

    # --- resource guard (actors/runtime/guard.py) ----------------------------------------
    guard_cpu_percent: Annotated[float, Bounds(ge=0)] | None = None
    """Pause every track's fetching while this process's CPU stays at or above this (100: one
    core) for ``guard_cpu_for_s``; fetching resumes once it is below. Unset: no CPU guard."""
    guard_cpu_for_s: Annotated[float, Bounds(ge=0)] = 30.0
    """How long the CPU must stay at or above ``guard_cpu_percent`` before tracks pause."""
    guard_memory_mb: PositiveFloat | None = None
    """Stop the actor cleanly (in-flight steps finish, nothing new is fetched) once its RSS
    reaches this many MB. Unset: no memory guard."""
    guard_interval_s: PositiveFloat = 1.0
    """How often the guard samples the process (when a guard threshold is set)."""

    # --- metrics and health ---------------------------------------------------------------
    http_port: Annotated[int, Bounds(ge=0, le=65535)] | None = None
    """Actors and the scheduler serve ``/metrics``, ``/healthz`` and ``/readyz`` on this port
    (unset: no server; 0: any free port)."""
    http_host: str = "127.0.0.1"
    """The address that server listens on (``0.0.0.0``: every interface)."""

    # --- records -------------------------------------------------------------------------
    records_batch: PositiveInt = 500
    records_linger_ms: Annotated[float, Bounds(ge=0)] = 0.0
    """Extra wait before a record batch is written (0: batch whatever queued meanwhile)."""

    # --- payloads and retention ----------------------------------------------------------
    payload_threshold_bytes: PositiveInt = 256 * 1024
    """Payloads whose JSON is larger go by reference through the object store (NATS's max is 1 MiB)."""
    payload_ttl_s: PositiveFloat = 7 * 24 * 3600.0
    """How long the object store keeps offloaded payloads."""
    payload_max_bytes: PositiveInt = 5 * 2**30  # subjects.streams.PAYLOADS_MAX_BYTES
    """Most bytes the payload object store holds (5 GiB); full, an offload fails loudly."""
    retention_s: PositiveFloat = 30 * 24 * 3600.0
    """Finished coordination data older than this is purged by ``tracks retention run``."""
    retention_budget: Annotated[float, Bounds(gt=0, le=1)] = 0.05
    """Share of its wall time ``tracks retention run`` spends in statements; it rests the rest, so
    a purge beside running actors takes little from them (1: no rests; README "Retention")."""
    record_payloads: Literal["full", "once", "none"] = "once"
    """What ``processing_logs`` keeps of payloads (:data:`actors.ledger.store.RECORD_PAYLOADS`):
    ``once``, each payload once (an output in ``track_steps.output`` only, an input only when it
    is nobody's output)."""
    redact: str | None = None
    """``package.module:function(track, payload) -> dict``: what ``processing_logs`` and dead
    letters keep of each payload (see :mod:`actors.ledger.redaction`); unset: all of it."""

    @validates("nats_url")
    @classmethod
    def _nats_scheme(cls, value: str | None, checked: dict[str, Any]) -> str | None:
        if value is None or value == "":
            return None
        for url in value.split(","):
            if not url.strip().startswith(("nats://", "tls://", "ws://", "wss://")):
                raise ValueError(f"{mask_url(url.strip())!r} is not a nats://, tls://, ws:// or wss:// URL")
        return value

    @validates("database_url")
    @classmethod
    def _pg_scheme(cls, value: str | None, checked: dict[str, Any]) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgres://", "postgresql://")):
            raise ValueError(f"{mask_url(value)!r} is not a postgresql:// URL")
        return value

    @validates("nats_creds")
    @classmethod
    def _creds_exist(cls, value: Path | None, checked: dict[str, Any]) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no credentials file at {value}")
        return value

    @validates("nats_inbox_prefix")
    @classmethod
    def _inbox_subject(cls, value: str | None, checked: dict[str, Any]) -> str | None:
        if value and not re.fullmatch(r"[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*", value):
            raise ValueError(f"{value!r} is not a subject without wildcards (e.g. _INBOX.track-gmail)")
        return value or None

    @validates("redact")
    @classmethod
    def _hook_spec(cls, value: str | None, checked: dict[str, Any]) -> str | None:
        if value and not re.fullmatch(r"[\w.]+:\w+", value):
            raise ValueError(f"{value!r} is not package.module:function")
        return value or None

    @validates("nats_nkey_seed", "nats_tls_ca", "nats_tls_cert", "nats_tls_key")
    @classmethod
    def _file_exists(cls, value: Path | None, checked: dict[str, Any]) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @validates("nats_tls_key")
    @classmethod
    def _key_with_cert(cls, value: Path | None, checked: dict[str, Any]) -> Path | None:
        if "nats_tls_cert" in checked and (value is None) != (checked["nats_tls_cert"] is None):
            raise ValueError("set it together with TRACKS_NATS_TLS_CERT (mutual TLS), or neither")
        return value

    @property
    def nats_inbox(self) -> str:
        """The inbox prefix to connect with (see ``nats_inbox_prefix``)."""
        if self.nats_inbox_prefix:
            return self.nats_inbox_prefix
        if self.nats_user and re.fullmatch(r"[A-Za-z0-9_-]{1,128}", self.nats_user):
            return f"_INBOX.{self.nats_user}"
        return "_INBOX"

    @property
    def nats_servers(self) -> list[str]:
        return [u.strip() for u in self.nats_url.split(",")] if self.nats_url else []


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; raise :class:`SettingsError` with one line per bad value."""
    return load(Settings, "TRACKS_", **overrides)


def load(model: type[_S], env_prefix: str, **overrides: object) -> _S:
    """Any settings model of the project from the environment (an :class:`EnvSettings` dataclass or
    a pydantic ``BaseSettings``): the one place that turns a refusal into :class:`SettingsError`,
    one line per bad variable (``PREFIX_FIELD: why``)."""
    if issubclass(model, EnvSettings):
        try:
            return model.from_env(env_prefix, **overrides)
        except FieldErrors as exc:
            lines = [f"{env_prefix}{name.upper()}: {why}" for name, why in exc.errors.items()]
            raise SettingsError("\n".join(lines)) from None
    from pydantic import ValidationError  # the models of the libraries and the product

    try:
        return model(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            lines.append(f"{env_prefix}{field.upper()}: {err['msg'].removeprefix('Value error, ')}")
        raise SettingsError("\n".join(lines)) from None
