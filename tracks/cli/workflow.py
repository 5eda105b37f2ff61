"""``tracks workflow show NAME [--mermaid]``: a workflow's graph, without any server.

What a person checks before deploying: the order tracks run in, what each waits for,
which phases need a manual ``proceed``, and the run timeout. ``--mermaid`` renders the
same graph for docs and pull requests (GitHub renders ```mermaid blocks).
"""

from __future__ import annotations

import json

import click

from actors import Workflow, WorkflowError
from actors.track import Track
from tracks.cli._common import resolve_workflow

__all__ = ["as_wire", "mermaid", "render_text", "topological", "workflow"]


@click.group()
def workflow() -> None:
    """Inspect workflow definitions."""


@workflow.command("show")
@click.argument("name")
@click.option("--mermaid", "as_mermaid", is_flag=True, help="Print a Mermaid flowchart instead of text.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (camelCase keys).")
def show(name: str, as_mermaid: bool, as_json: bool) -> None:
    """Show NAME (pkg.module:workflow, or pkg.module when it defines one workflow)."""
    wf = resolve_workflow(name)
    if as_json:
        click.echo(json.dumps(as_wire(wf), indent=2))
        return
    click.echo(mermaid(wf) if as_mermaid else render_text(wf))


def as_wire(wf: Workflow) -> dict[str, object]:
    """Tracks in dependency order with their upstreams and phase; phases with their gate."""
    return {
        "name": wf.name,
        "timeoutS": wf.timeout_s,
        "autoProceed": wf.auto_proceed,
        "phases": [{"name": p.name, "manual": p.manual, "tracks": list(p.tracks)} for p in wf.phases],
        "tracks": [
            {"name": t.name, "after": list(t.after), "phase": getattr(wf.phase_of(t.name), "name", None)}
            for t in topological(wf)
        ],
    }


def topological(wf: Workflow) -> list[Track]:
    """Tracks in an order where every upstream comes first; ties keep the declaration order."""
    placed: set[str] = set()
    order: list[Track] = []
    pending = list(wf)
    while pending:
        ready = [t for t in pending if set(t.after) <= placed]
        if not ready:  # cannot happen for a validated workflow; never loop forever
            raise WorkflowError(f"workflow {wf.name}: cannot order {', '.join(t.name for t in pending)}")
        for t in ready:
            placed.add(t.name)
            order.append(t)
        pending = [t for t in pending if t.name not in placed]
    return order


def _headline(wf: Workflow) -> str:
    parts = [f"{len(wf)} track{'s' if len(wf) != 1 else ''}"]
    parts.append(f"run timeout {wf.timeout_s:g}s" if wf.timeout_s else "no run timeout")
    if any(p.manual for p in wf.phases):
        parts.append(
            "manual gates release themselves (auto_proceed)"
            if wf.auto_proceed
            else "manual gates wait for `tracks proceed CID`"
        )
    return f"workflow {wf.name}: " + ", ".join(parts)


def render_text(wf: Workflow) -> str:
    ordered = topological(wf)
    width = max((len(t.name) for t in ordered), default=0) + 2

    def line(t: Track) -> str:
        return f"  {t.name:{width}}" + (f"after {', '.join(t.after)}" if t.after else "(starts the run)")

    lines = [_headline(wf)]
    if not wf.phases:
        lines += [line(t).rstrip() for t in ordered]
        return "\n".join(lines)
    for phase in wf.phases:
        lines.append(f"phase {phase.name}" + ("  [manual]" if phase.manual else ""))
        lines += [line(t).rstrip() for t in ordered if t.name in phase.tracks]
    return "\n".join(lines)


def mermaid(wf: Workflow) -> str:
    """A ``flowchart LR``; node ids are generated, names (checked tokens) only appear quoted as labels."""
    ordered = topological(wf)
    ids = {t.name: f"t{i}" for i, t in enumerate(ordered)}
    lines = ["flowchart LR"]

    def node(t: Track) -> str:
        return f'{ids[t.name]}["{t.name}"]'

    if wf.phases:
        for i, phase in enumerate(wf.phases):
            label = f"{phase.name} (manual)" if phase.manual else phase.name
            lines.append(f'  subgraph p{i} ["{label}"]')
            lines += [f"    {node(t)}" for t in ordered if t.name in phase.tracks]
            lines.append("  end")
    else:
        lines += [f"  {node(t)}" for t in ordered]
    for t in ordered:
        lines += [f"  {ids[u]} {_arrow(wf, u, t.name)} {ids[t.name]}" for u in t.after]
    return "\n".join(lines)


def _arrow(wf: Workflow, upstream: str, track: str) -> str:
    """Dotted where the edge enters a manual phase: that hand-off waits for a person."""
    phase = wf.phase_of(track)
    if phase is not None and phase.manual and wf.phase_of(upstream) is not phase:
        return "-. proceed .->"
    return "-->"
