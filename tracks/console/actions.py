"""The state-changing actions: POST only, CSRF-checked, each after a confirmation step.

A button posts its form; the first post (without ``confirmed=yes``) answers with a page that
asks "really?" and posts again with ``confirmed=yes``. Each action is the CLI's own call
(:func:`~actors.ledger.progress.proceed`, :func:`~actors.ledger.progress.resume`,
:func:`~actors.ledger.cancel.cancel`, :class:`~actors.failures.dlq_ops.Replayer`,
:func:`~actors.failures.dlq_ops.purge`, :meth:`~scheduler.schedules.ScheduleStore.set_enabled`),
so it is recorded as the CLI's is (processing_logs rows, the run's trace, NATS events), and it
is logged with who asked (the client's address).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from actors.failures import dlq_ops
from actors.ledger.cancel import cancel
from actors.ledger.progress import ProgressError, proceed, resume
from actors.ledger.store import Ledger
from scheduler.schedules import InvalidSchedule, ScheduleStore, UnknownSchedule
from tracks.console.security import valid_csrf
from tracks.console.state import Console
from tracks.console.views import BadRequest

__all__ = ["Action", "act"]

log = logging.getLogger("tracks.console")

REFUSED = (
    ProgressError,
    dlq_ops.UnknownDeadLetter,
    dlq_ops.NotADeadLetter,
    dlq_ops.StepStillRunning,
    UnknownSchedule,
    InvalidSchedule,
    BadRequest,
)
"""What an action may refuse with: shown as the message, nothing changed."""


@dataclass(frozen=True)
class Action:
    question: str
    """What the confirmation page asks."""
    button: str
    back: str
    """Where to go afterwards (and on "no")."""
    run: Callable[[Console, FormData], Awaitable[str]]
    """Does it; returns what to tell the user."""
    fields: tuple[str, ...] = ()
    """Extra inputs the confirmation page shows: ``reason`` (text), ``force`` (checkbox), ``track``."""


def run_action(kind: str, cid: str) -> Action:
    back = f"/runs/{quote(cid, safe='')}"
    if kind == "proceed":

        async def go_proceed(c: Console, form: FormData) -> str:
            done = await proceed(c.pool, c.publisher, cid)
            return f"released phase {done.phase}; started: {', '.join(done.tracks) or '(none waiting yet)'}"

        return Action(f"Release the manual gate run {cid} waits at?", "Proceed", back, go_proceed)
    if kind == "resume":

        async def go_resume(c: Console, form: FormData) -> str:
            done = await resume(c.pool, c.publisher, cid)
            return f"resumed {cid}: re-activated {', '.join(done.tracks) or 'nothing'}"

        return Action(f"Resume run {cid} from its last successful steps?", "Resume", back, go_resume)

    async def go(c: Console, form: FormData) -> str:
        reason = str(form.get("reason") or "").strip() or None
        done = await cancel(c.pool, c.publisher, cid, reason)
        if done.already:
            return f"run {cid} was already cancelled; its cancellation was announced again"
        return f"cancelled run {cid} (workflow {done.workflow})"

    return Action(f"Cancel run {cid}? No further step starts.", "Cancel the run", back, go, ("reason",))


def replay_action(seq: int) -> Action:
    async def go(c: Console, form: FormData) -> str:
        js = c.nc.jetstream()
        ledger = Ledger(c.pool)
        ledger.start()
        try:
            done = await dlq_ops.Replayer(js, c.pool, ledger).replay(seq, force=form.get("force") == "yes")
        finally:
            await ledger.close()
        note = " (already replayed: de-duplicated)" if done.duplicate else ""
        return f"replayed dead letter {seq} to {done.subject} (stream sequence {done.stream_seq}){note}"

    return Action(
        f"Replay dead letter {seq} to its original subject as a fresh attempt?",
        "Replay",
        "/dlq",
        go,
        ("force",),
    )


def purge_action(track: str | None) -> Action:
    async def go(c: Console, form: FormData) -> str:
        return f"purged {await dlq_ops.purge(c.nc.jetstream(), track)} dead letter(s)"

    what = f"all dead letters of track {track}" if track else "ALL dead letters"
    return Action(f"Delete {what} for good?", "Purge", "/dlq", go, ("track",) if track else ())


def schedule_action(name: str, enabled: bool) -> Action:
    async def go(c: Console, form: FormData) -> str:
        await ScheduleStore(c.pool).set_enabled(name, enabled)
        return f"{'enabled' if enabled else 'disabled'} {name}"

    verb = "Enable" if enabled else "Disable"
    return Action(f"{verb} schedule {name}?", verb, "/schedules", go)


async def act(
    request: Request,
    console: Console,
    action: Action,
    render: Callable[[str, dict[str, object], int], Response],
) -> Response:
    form = await request.form()
    if not valid_csrf(request, form.get("csrf")):
        return render(
            "message.html",
            {
                "title": "Refused",
                "message": "the form's CSRF token is missing or stale: reload the page and try again",
            },
            403,
        )
    if form.get("confirmed") != "yes":
        values = {name: str(form.get(name) or "") for name in action.fields}
        return render("confirm.html", {"action": action, "target": request.url.path, "values": values}, 200)
    client = request.client.host if request.client else "?"
    try:
        message, kind = await action.run(console, form), "ok"
    except REFUSED as exc:
        message, kind = str(exc), "error"
    log.info("console %s by %s: %s", request.url.path, client, message)
    return RedirectResponse(f"{action.back}?{urlencode({'msg': message, 'kind': kind})}", status_code=303)
