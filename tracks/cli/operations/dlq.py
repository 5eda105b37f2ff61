"""``tracks dlq ls | show | replay | purge``: inspect and act on dead letters.

Reading never creates a consumer (see :mod:`actors.failures.dlq_ops`); ``nats stream view DLQ`` shows the
same messages.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC
from typing import TYPE_CHECKING

import click

from actors.failures import dlq_ops as letters_
from actors.failures.dlq_ops import (
    NotADeadLetter,
    Replayer,
    StepStillRunning,
    StoredLetter,
    UnknownDeadLetter,
)
from actors.ledger.listing import iso
from subjects import DLQ_STREAM, check_token
from tracks.cli._common import UserError, async_command, get_settings
from tracks.cli._connect import nats_session, open_pool

if TYPE_CHECKING:
    from nats.js import JetStreamContext

__all__ = ["dlq"]


@asynccontextmanager
async def _jetstream() -> AsyncIterator[JetStreamContext]:
    async with nats_session(get_settings(), streams=[DLQ_STREAM]) as nc:
        try:
            yield nc.jetstream()
        except (UnknownDeadLetter, NotADeadLetter, StepStillRunning) as exc:
            raise UserError(str(exc)) from None


@asynccontextmanager
async def _replayer(js: JetStreamContext) -> AsyncIterator[Replayer]:
    from actors.ledger.store import Ledger  # replay writes records: not for ls and show

    pool = await open_pool(get_settings())
    ledger = Ledger(pool)
    ledger.start()
    try:
        yield Replayer(js, pool, ledger)
    finally:
        await ledger.close()
        await pool.close()


def _checked_track(track: str | None) -> str | None:
    """Before connecting: a name that can never be a track needs no server to say so."""
    try:
        return None if track is None else check_token(track, "track name")
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _short(text: str | None, width: int) -> str:
    text = text or "-"
    return text if len(text) <= width else text[: width - 1] + "…"


@click.group()
def dlq() -> None:
    """Dead letters (the DLQ stream): list, show, replay, purge."""


@dlq.command("ls")
@click.option("--track", default=None, help="Only this track's dead letters.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Oldest N.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (camelCase, UTC times).")
@click.option("-w", "--wide", is_flag=True, help="Full IDs and error texts: no column is cut short.")
@async_command
async def ls_cmd(track: str | None, limit: int, as_json: bool, wide: bool) -> None:
    """List dead letters, oldest first: sequence, time, track, correlation ID, why, deliveries."""
    track = _checked_track(track)
    async with _jetstream() as js:
        found = [letter async for letter in letters_.letters(js, track, limit)]
        total = await letters_.count(js, track)
    if found and not as_json:
        click.echo(_header(wide))
    for letter in found:
        if as_json:
            click.echo(json.dumps(_summary(letter)))
            continue
        click.echo(_line(letter, wide))
    if total > len(found):
        click.echo(f"({len(found)} of {total} shown; use --limit)", err=True)
    elif not found:
        click.echo("no dead letters", err=True)


_WIDTHS = (24, 32, 22, 80)
"""track, correlation ID, error type, error: cut to these widths unless ``--wide``."""


def _header(wide: bool) -> str:
    names = ("SEQ", "TIME (UTC)", "TRACK", "CORRELATION ID", "ERROR TYPE", "TRIES", "ERROR")
    if wide:
        return "\t".join(names)
    track, cid, kind, _ = _WIDTHS
    widths = (">6", "19", str(track), str(cid), str(kind), ">5", "")
    return "  ".join(f"{name:{width}}" for name, width in zip(names, widths, strict=True)).rstrip()


def _line(letter: StoredLetter, wide: bool = False) -> str:
    when = letter.stored_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if letter.stored_at else "-"
    if wide:  # tab-separated, nothing cut: for cut/awk and for wide screens
        cells = [str(letter.seq), when, letter.track or "-", letter.correlation_id or "-"]
        cells += [
            letter.error_type or "-",
            str(letter.deliveries or "-"),
            " ".join((letter.error or "-").split()),
        ]
        return "\t".join(cells)
    track, cid, kind, error = _WIDTHS
    cells = [
        f"{letter.seq:>6}",
        f"{when:19}",
        f"{_short(letter.track, track):{track}}",
        f"{_short(letter.correlation_id, cid):{cid}}",
        f"{_short(letter.error_type, kind):{kind}}",
        f"{letter.deliveries or '-':>5}",
        _short(letter.error, error),
    ]
    return "  ".join(cells)


def _summary(letter: StoredLetter) -> dict[str, object]:
    return {
        "seq": letter.seq,
        "time": iso(letter.stored_at),
        "track": letter.track,
        "correlationId": letter.correlation_id,
        "errorType": letter.error_type,
        "error": letter.error,
        "deliveries": letter.deliveries,
        "subject": letter.original_subject,
    }


@dlq.command("show")
@click.argument("seq", type=int)
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object: the summary, headers, body, traceback."
)
@async_command
async def show_cmd(seq: int, as_json: bool) -> None:
    """Everything about dead letter SEQ: headers, the body (pretty-printed), the traceback."""
    async with _jetstream() as js:
        letter = await letters_.read(js, seq)
        body = await letters_.original_body(js, letter)
    if as_json:
        shown = {
            **_summary(letter),
            "storedOn": letter.subject,
            "headers": dict(sorted(letter.headers.items())),
            "body": _json_or_text(body),
            "bodyRef": letter.body_ref,
            "traceback": letter.traceback,
        }
        click.echo(json.dumps(shown, indent=2, ensure_ascii=False))
        return
    stored = letter.stored_at.isoformat() if letter.stored_at else "-"
    click.echo(f"dead letter {letter.seq} on {letter.subject}, stored {stored}")
    click.echo("headers:")
    for name in sorted(letter.headers):
        value = "(below)" if name == "Tracks-Traceback" else letter.headers[name]
        click.echo(f"  {name}: {value}")
    kept = f"body ({len(body)} bytes, kept in the payload store):"
    click.echo("body:" if letter.body_ref is None else kept)
    click.echo(_pretty(body))
    if letter.traceback:
        click.echo("traceback:")
        click.echo(letter.traceback.rstrip())


def _json_or_text(data: bytes) -> object:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return data.decode("utf-8", "backslashreplace")


def _pretty(data: bytes) -> str:
    try:
        return json.dumps(json.loads(data), indent=2, ensure_ascii=False)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return repr(data)


@dlq.command("replay")
@click.argument("seq", type=int, required=False)
@click.option("--all", "replay_all", is_flag=True, help="Every dead letter (of --track, if given).")
@click.option("--track", default=None, help="With --all: only this track's dead letters.")
@click.option(
    "--force", is_flag=True, help="Even when the step is still 'running' (it is marked failed first)."
)
@async_command
async def replay_cmd(seq: int | None, replay_all: bool, track: str | None, force: bool) -> None:
    """Publish dead letter SEQ (or --all) again to its original subject as a fresh attempt.

    Same correlation ID; a failed step runs again, a completed one is never re-run. The dead
    letter is deleted once the new message is stored and the replay recorded.
    """
    if (seq is None) == (not replay_all):
        raise UserError("give either a dead letter SEQ or --all")
    if track is not None and not replay_all:
        raise UserError("--track goes with --all (a SEQ names one dead letter already)")
    track = _checked_track(track)
    async with _jetstream() as js, _replayer(js) as replayer:
        if seq is not None:
            _echo_replayed(await replayer.replay(seq, force=force))
        else:
            await _replay_all(js, replayer, track, force=force)


async def _replay_all(js: JetStreamContext, replayer: Replayer, track: str | None, *, force: bool) -> None:
    """One by one, oldest first; one that cannot be replayed is reported and the rest still are."""
    targets = [letter.seq async for letter in letters_.letters(js, track)]
    if not targets:
        click.echo("no dead letters to replay", err=True)
    failures = 0
    for target in targets:
        try:
            _echo_replayed(await replayer.replay(target, force=force))
        except (UnknownDeadLetter, NotADeadLetter, StepStillRunning) as exc:
            failures += 1
            click.echo(f"{target}: not replayed: {exc}", err=True)
    if failures:
        raise UserError(f"{failures} of {len(targets)} dead letters were not replayed")


def _echo_replayed(done: letters_.Replayed) -> None:
    note = " (already replayed: de-duplicated)" if done.duplicate else ""
    click.echo(f"{done.letter.seq} → {done.subject} (stream sequence {done.stream_seq}){note}")


@dlq.command("purge")
@click.option("--track", default=None, help="Only this track's dead letters.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@async_command
async def purge_cmd(track: str | None, yes: bool) -> None:
    """Delete dead letters for good (all, or --track's)."""
    track = _checked_track(track)
    what = f"all dead letters of track {track}" if track else "ALL dead letters"
    if not yes:
        click.confirm(f"Delete {what}?", abort=True)
    async with _jetstream() as js:
        purged = await letters_.purge(js, track)
    click.echo(f"purged {purged} dead letter(s)")
