"""What every command shares: settings from the environment, async entry, one-line errors."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
from nats.js import JetStreamContext

from actors.errors import WorkflowError
from actors.loader import LoadError, load_workflow
from actors.transport.payloads import PayloadStore
from actors.workflow import Workflow
from foundation.settings import Settings, SettingsError, load_settings

__all__ = [
    "PAYLOAD_HELP",
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


class UserError(click.ClickException):
    """A mistake the user can fix: printed as one line, exit code 1."""


def get_settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise UserError(f"invalid settings:\n{exc}") from None


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
    return PayloadStore(js, threshold_bytes=settings.payload_threshold_bytes, ttl_s=settings.payload_ttl_s)


def async_command(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, R]:
    """Run an async click callback; connection failures become one clear line."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return asyncio.run(fn(*args, **kwargs))
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            sys.exit(130)
        except (OSError, TimeoutError) as exc:
            raise UserError(f"cannot reach a server: {exc}") from None
        except Exception as exc:
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            raise UserError(f"{type(exc).__name__}: {exc}") from None

    return wrapper


def resolve_workflow(target: str) -> Workflow:
    """A workflow named on the command line (``pkg.module[:name]``), or one clear error line."""
    try:
        return load_workflow(target)
    except (LoadError, WorkflowError) as exc:
        raise UserError(str(exc)) from None
