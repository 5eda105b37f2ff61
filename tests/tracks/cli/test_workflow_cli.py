"""``tracks workflow show``: the graph as text and as Mermaid, and one-line errors."""

from __future__ import annotations

from click.testing import CliRunner

from actors import Workflow
from tracks.cli.main import cli
from tracks.cli.workflow import mermaid, render_text


def show(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["workflow", "show", *args])
    return result.exit_code, result.output


def test_receipts_as_text() -> None:
    code, out = show("tracks.examples.receipts")
    assert code == 0, out
    assert out.splitlines() == [
        "workflow receipts: 4 tracks, no run timeout",
        "  gmail            (starts the run)",
        "  drive            after gmail",
        "  file_management  after drive",
        "  freee            after file_management",
    ]


def test_diamond_with_phases_in_topological_order() -> None:
    code, out = show("tests.support.apps.diamond_app:diamond")
    assert code == 0, out
    assert out.splitlines() == [
        "workflow diamond: 5 tracks, run timeout 600s, manual gates wait for `tracks proceed CID`",
        "phase intake",
        "  a  (starts the run)",
        "  b  after a",
        "  c  after a",
        "phase review  [manual]",
        "  d  after b, c",
        "  e  after d",
    ]


def test_diamond_as_mermaid() -> None:
    code, out = show("tests.support.apps.diamond_app:diamond", "--mermaid")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "flowchart LR"
    assert '  subgraph p0 ["intake"]' in lines
    assert '  subgraph p1 ["review (manual)"]' in lines
    assert lines.count("  end") == 2
    ids = {line.split("[")[0].strip(): line.split('"')[1] for line in lines if line.startswith("    t")}
    by_name = {name: node for node, name in ids.items()}
    edges = [line.strip() for line in lines if "->" in line]
    a, b, c, d, e = (by_name[n] for n in "abcde")
    assert sorted(edges) == sorted(
        [
            f"{a} --> {b}",
            f"{a} --> {c}",
            f"{b} -. proceed .-> {d}",
            f"{c} -. proceed .-> {d}",  # entering the manual phase
            f"{d} --> {e}",
        ]
    )


def test_receipts_as_mermaid_without_phases() -> None:
    code, out = show("tracks.examples.receipts", "--mermaid")
    assert code == 0, out
    assert "subgraph" not in out
    assert out.splitlines()[0] == "flowchart LR" and out.count("-->") == 3


def test_module_with_several_workflows_needs_a_name() -> None:
    code, out = show("tests.support.apps.diamond_app")
    assert code == 1
    assert out.strip() == (
        "Error: tests.support.apps.diamond_app defines several workflows (diamond, single); "
        "name one: tests.support.apps.diamond_app:NAME"
    )
    code, out = show("tests.support.apps.diamond_app:single")
    assert code == 0 and "  only  (starts the run)" in out


def test_unknown_module_and_workflow_are_one_line() -> None:
    code, out = show("no_such_module_xyz")
    assert code == 1 and len(out.strip().splitlines()) == 1
    assert "cannot import 'no_such_module_xyz'" in out
    code, out = show("tracks.examples.receipts:nope")
    assert code == 1
    assert out.strip() == "Error: tracks.examples.receipts has no workflow 'nope' (it has: receipts)"
    code, out = show("foundation.settings")
    assert code == 1 and out.strip() == "Error: module 'foundation.settings' defines no Workflow"


def test_a_workflow_without_tracks_still_renders() -> None:
    wf = Workflow("empty")
    assert render_text(wf) == "workflow empty: 0 tracks, no run timeout"
    assert mermaid(wf) == "flowchart LR"
