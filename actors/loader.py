"""Find tracks by name: ``package.module`` (all its tracks) or ``package.module:a,b``."""

from __future__ import annotations

import importlib
import os
import sys

from actors.errors import WorkflowError
from actors.track import Track
from actors.workflow import Workflow

__all__ = ["LoadError", "load_tracks", "load_workflow", "load_workflows"]


class LoadError(ValueError):
    pass


def load_workflows(module_name: str) -> list[Workflow]:
    if os.getcwd() not in sys.path:  # like uvicorn: modules in the working directory load
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise LoadError(f"cannot import {module_name!r}: {exc}") from None
    workflows = [v for v in vars(module).values() if isinstance(v, Workflow)]
    if not workflows:
        raise LoadError(f"module {module_name!r} defines no Workflow")
    for wf in workflows:
        wf.validate()
    return workflows


def load_tracks(targets: list[str]) -> list[Track]:
    chosen: dict[str, Track] = {}
    for target in targets:
        module_name, _, wanted = target.partition(":")
        available = {t.name: t for wf in load_workflows(module_name) for t in wf}
        names = [n for n in wanted.split(",") if n] or list(available)
        for name in names:
            if name not in available:
                raise LoadError(
                    f"{module_name} has no track {name!r} (it has: {', '.join(sorted(available))})"
                )
            chosen[name] = available[name]
    return list(chosen.values())


def load_workflow(target: str) -> Workflow:
    """``pkg.module:name``, or ``pkg.module`` when the module defines exactly one workflow."""
    module_name, _, wanted = target.partition(":")
    try:
        found = load_workflows(module_name)
    except (LoadError, WorkflowError):
        raise
    except Exception as exc:  # the module itself failed to import (syntax error, bad import, ...)
        raise LoadError(f"cannot load {module_name!r}: {type(exc).__name__}: {exc}") from None
    available = ", ".join(sorted(w.name for w in found))
    if wanted:
        for wf in found:
            if wf.name == wanted:
                return wf
        raise LoadError(f"{module_name} has no workflow {wanted!r} (it has: {available})")
    if len(found) > 1:
        raise LoadError(
            f"{module_name} defines several workflows ({available}); name one: {module_name}:NAME"
        )
    return found[0]
