"""What every command shares: settings from the environment, async entry, one-line errors."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click

from foundation.redact import mask_secrets

if TYPE_CHECKING:  # imported where used: read-only commands start without the runtime (or nats-py),
    # and `tracks --help` / `--version` without asyncio, the settings or the embedded servers
    from nats.js import JetStreamContext

    from actors.transport.payloads import PayloadStore
    from actors.workflow import Workflow
    from foundation.settings import Settings

__all__ = [
    "CONNECT_TIMEOUT_KEY",
    "EXIT_CODES",
    "EXIT_NOT_SET_UP",
    "EXIT_UNREACHABLE",
    "PAYLOAD_HELP",
    "STREAM_HINT",
    "NotSetUp",
    "ServerUnreachable",
    "UserError",
    "async_command",
    "get_settings",
    "parse_json_object",
    "payload_store",
    "read_payload",
    "resolve_workflow",
]

P = ParamSpec("P")
R = TypeVar("R")


EXIT_UNREACHABLE = 4
EXIT_NOT_SET_UP = 5
EXIT_CODES = (
    ("0", "done (alerts check: nothing fires)"),
    ("1", "error you can fix: bad input, unknown name, failed run (one line says what)"),
    ("2", "usage error (unknown option, missing argument); run --wait: still running"),
    ("3", "alerts check: an alert fires"),
    ("4", "a server is unreachable, or none is configured or running"),
    ("5", "not set up: database not migrated, or a stream missing"),
    ("130", "interrupted (Ctrl-C)"),
)
"""The exit codes of every command (README "CLI behaviour", ``tracks --help``)."""

STREAM_HINT = (
    "start an actor (`tracks actor run MODULE`) or the scheduler (`tracks scheduler run`): they create it"
)
CONNECT_TIMEOUT_KEY = "tracks.connect_timeout_s"
"""Where ``tracks --connect-timeout`` leaves its value (``click.Context.meta``) for :func:`get_settings`."""


class UserError(click.ClickException):
    """A mistake the user can fix: printed as one line, exit code 1. Secrets in it are masked."""

    def format_message(self) -> str:
        return mask_secrets(self.message)


class ServerUnreachable(UserError):
    """No server answers (or none is configured or running): exit code 4."""

    exit_code = EXIT_UNREACHABLE


class NotSetUp(UserError):
    """The server answers but is not set up (database not migrated, stream missing): exit code 5."""

    exit_code = EXIT_NOT_SET_UP


def get_settings() -> Settings:
    """Settings from the environment; ``tracks --connect-timeout`` overrides TRACKS_CONNECT_TIMEOUT_S."""
    from foundation.settings import SettingsError, load_settings

    ctx = click.get_current_context(silent=True)
    timeout = ctx.meta.get(CONNECT_TIMEOUT_KEY) if ctx is not None else None
    try:
        return load_settings(**({"connect_timeout_s": timeout} if timeout is not None else {}))
    except SettingsError as exc:
        raise invalid_settings(exc) from None


def invalid_settings(exc: ValueError) -> UserError:
    """One line naming each bad variable: ``invalid setting TRACKS_X: why`` (several: ``; ``)."""
    problems = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(problems) == 1:
        return UserError(f"invalid setting {problems[0]}")
    return UserError(f"invalid settings: {'; '.join(problems)}")


def parse_json_object(text: str, what: str = "--payload") -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(value, dict):
        raise UserError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


PAYLOAD_HELP = "a JSON object, @FILE to read it from a file, or - to read it from stdin"


def read_payload(value: str, what: str = "--payload") -> dict[str, Any]:
    """A ``--payload`` given inline, as ``@FILE`` or as ``-`` (stdin): a command line holds only
    ~128 KiB per argument, large inputs come from a file or a pipe."""
    if value != "-" and not value.startswith("@"):
        return parse_json_object(value, what)
    source = "stdin" if value == "-" else value[1:]
    try:
        data = sys.stdin.buffer.read() if value == "-" else Path(source).read_bytes()
        text = data.decode("utf-8")
    except OSError as exc:
        raise UserError(f"{what}: cannot read {source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{what}: {source} is not UTF-8 text") from None
    return parse_json_object(text, what)


def payload_store(js: JetStreamContext, settings: Settings) -> PayloadStore:
    """The payload store as the actors see it (threshold and TTL from the settings)."""
    from actors.transport.payloads import PayloadStore

    return PayloadStore(
        js,
        threshold_bytes=settings.payload_threshold_bytes,
        ttl_s=settings.payload_ttl_s,
        replicas=settings.stream_replicas,
        max_bytes=settings.payload_max_bytes,
    )


def async_command(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, R]:
    """Run an async click callback; failures become one clear line with its exit code
    (:data:`EXIT_CODES`): no server (4), an unmigrated database or a missing stream (5)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        import asyncio

        try:
            return asyncio.run(fn(*args, **kwargs))
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:  # the reader went away (`tracks runs ls | head`): click quiets it
            raise
        except KeyboardInterrupt:
            sys.exit(130)
        except Exception as exc:
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            raise _one_line(exc) from None

    return wrapper


def _one_line(exc: Exception) -> UserError:
    # A module never imported cannot have raised ``exc``: the classes are looked up in
    # sys.modules, so that commands which do not use asyncpg or nats-py start without them.
    endpoints = sys.modules.get("tracks.endpoints")
    if endpoints is not None and isinstance(exc, endpoints.NoServers):
        return ServerUnreachable(str(exc))
    asyncpg = sys.modules.get("asyncpg")
    if asyncpg is not None and isinstance(exc, asyncpg.UndefinedTableError | asyncpg.UndefinedColumnError):
        return NotSetUp(f"the database is not migrated ({exc}): run `tracks db migrate`")
    process = sys.modules.get("actors.runtime.process")
    if process is not None and isinstance(exc, process.SchemaError):  # an actor's start-up check
        return NotSetUp(str(exc))
    js_errors = sys.modules.get("nats.js.errors")
    if js_errors is not None:
        if isinstance(exc, js_errors.NotFoundError) and "stream" in (exc.description or ""):
            return NotSetUp(f"{exc.description}: {STREAM_HINT}")
        if isinstance(exc, js_errors.NoStreamResponseError):
            return NotSetUp(f"no stream holds what was published (is TRACKS missing?): {STREAM_HINT}")
    if isinstance(exc, ConnectionError) and str(exc):  # ours: it names the server already
        return ServerUnreachable(str(exc))
    nats_errors = sys.modules.get("nats.errors")
    no_servers = (nats_errors.NoServersError,) if nats_errors is not None else ()
    if isinstance(exc, ConnectionError | OSError | TimeoutError | no_servers):
        return ServerUnreachable(f"cannot reach a server: {exc or type(exc).__name__}")
    return UserError(f"{type(exc).__name__}: {exc}")


def resolve_workflow(target: str) -> Workflow:
    """A workflow named on the command line (``pkg.module[:name]``), or one clear error line."""
    from actors.errors import WorkflowError
    from actors.loader import LoadError, load_workflow

    try:
        return load_workflow(target)
    except (LoadError, WorkflowError) as exc:
        raise UserError(str(exc)) from None
