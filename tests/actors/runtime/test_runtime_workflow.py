"""Workflow definitions are validated when declared: cycles, repeated names, unknown upstreams."""

from __future__ import annotations

import pytest

from actors import CycleError, Runtime, TrackContext, Workflow, WorkflowError


async def _noop(ctx: TrackContext, payload: dict[str, object]) -> None:
    return None


def test_a_cycle_is_refused_with_an_error_naming_it() -> None:
    """a → b → c → a cannot be declared; the error spells the cycle out in dependency order."""
    wf = Workflow("cyclic")
    wf.track("a", after=["c"])(_noop)
    wf.track("b", after=["a"])(_noop)
    with pytest.raises(CycleError, match="a → b → c → a") as caught:
        wf.track("c", after=["b"])(_noop)
    assert caught.value.cycle == ["a", "b", "c", "a"]
    assert [t.name for t in wf] == ["a", "b"], "the refused track must not be half-registered"


def test_a_self_dependency_is_a_cycle() -> None:
    """A track that waits for itself would never run: refused as the cycle a → a."""
    wf = Workflow("selfish")
    with pytest.raises(CycleError, match="a → a"):
        wf.track("a", after=["a"])(_noop)


def test_a_diamond_is_not_a_cycle() -> None:
    """Fan-out and fan-in (a → b, a → c, b + c → d) is a valid graph."""
    wf = Workflow("diamond")
    wf.track("a")(_noop)
    wf.track("b", after=["a"])(_noop)
    wf.track("c", after=["a"])(_noop)
    wf.track("d", after=["b", "c"])(_noop)
    wf.validate()
    assert [t.name for t in wf.dependents("a")] == ["b", "c"]


def test_a_track_name_declared_twice_is_refused() -> None:
    """Two tracks of one name would share one consumer and one step row: refused."""
    wf = Workflow("twice")
    wf.track("a")(_noop)
    with pytest.raises(WorkflowError, match="'a' is declared twice"):
        wf.track("a")(_noop)


def test_runtime_refuses_repeated_track_names() -> None:
    """Tracks from two workflows that share a name cannot run in one process (one consumer each)."""
    one, two = Workflow("one"), Workflow("two")
    one.track("same")(_noop)
    two.track("same")(_noop)
    with pytest.raises(ValueError, match="track names repeat"):
        Runtime([*one, *two])


def test_an_unknown_upstream_is_refused() -> None:
    """An upstream that is never declared would leave its dependent waiting forever: refused by name."""
    wf = Workflow("dangling")
    wf.track("a")(_noop)
    wf.track("b", after=["a", "ghost"])(_noop)
    with pytest.raises(WorkflowError, match="'b' depends on unknown track 'ghost'"):
        wf.validate()


@pytest.mark.parametrize("name", ["has.dot", "has space", "wild*", "", "x" * 129])
def test_a_track_name_that_breaks_subjects_is_refused(name: str) -> None:
    """A name that is not a single NATS subject token would route to the wrong subjects: refused."""
    wf = Workflow("names")
    with pytest.raises(ValueError, match="NATS subject token"):
        wf.track(name)(_noop)


def test_a_handler_must_be_async_and_take_ctx_and_payload() -> None:
    """A handler of the wrong shape is refused when declared, not when the first message arrives."""
    wf = Workflow("handlers")

    def sync_handler(ctx: TrackContext, payload: dict[str, object]) -> None:
        return None

    async def one_arg(ctx: TrackContext) -> None:
        return None

    with pytest.raises(WorkflowError, match="must take"):
        wf.track("one-arg")(one_arg)  # type: ignore[arg-type]
    with pytest.raises(WorkflowError, match="async"):
        wf.track("sync")(sync_handler)  # type: ignore[arg-type]
