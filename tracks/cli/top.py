"""``tracks top``: a live per-track view of running actors, read from their ``/metrics``.

Each frame scrapes every ``--url`` twice, ``--interval`` apart (the refresh of the live view
is the second scrape of one frame and the first of the next): rates and step-time percentiles
come from the differences (the ``tracks_step_duration_seconds`` buckets, interpolated as
Prometheus's ``histogram_quantile`` does); pending, in flight, breaker and DLQ depth are the
latest values; failures are counted since each actor started. Several actors of one track
add up (pending and the breaker: the largest value).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import click
from prometheus_client.parser import text_string_to_metric_families

from foundation.metrics import quantile
from tracks.cli._common import ServerUnreachable, UserError

__all__ = ["Scrape", "TrackRow", "parse", "rows", "top"]

FAILURES = ("retried", "dead_lettered", "poison")
BREAKER = {0: "closed", 1: "half-open", 2: "open"}


@dataclass
class Track:
    """One track's values in one scrape (several URLs merged)."""

    outcomes: dict[str, float] = field(default_factory=dict)
    buckets: dict[float, float] = field(default_factory=dict)
    """Cumulative count per upper bound (``le``), +Inf included."""
    count: float = 0.0
    pending: float | None = None
    in_flight: float = 0.0
    breaker: int = 0


@dataclass
class Scrape:
    at: float
    tracks: dict[str, Track] = field(default_factory=dict)
    dlq: float | None = None


@dataclass(frozen=True)
class TrackRow:
    track: str
    rate: float
    p50_s: float | None
    p99_s: float | None
    pending: int | None
    in_flight: int
    failures: int
    breaker: str
    outcomes: dict[str, int]


def parse(texts: list[str], at: float) -> Scrape:
    """The tracks' samples of one or more ``/metrics`` pages, merged."""
    scrape = Scrape(at)
    for text in texts:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                track = s.labels.get("track")
                if s.name == "tracks_dlq_messages":
                    scrape.dlq = max(scrape.dlq or 0.0, s.value)
                if track is None:
                    continue
                t = scrape.tracks.setdefault(track, Track())
                if s.name == "tracks_steps_total":
                    t.outcomes[s.labels["outcome"]] = t.outcomes.get(s.labels["outcome"], 0.0) + s.value
                elif s.name == "tracks_step_duration_seconds_bucket":
                    le = float(s.labels["le"])
                    t.buckets[le] = t.buckets.get(le, 0.0) + s.value
                elif s.name == "tracks_step_duration_seconds_count":
                    t.count += s.value
                elif s.name == "tracks_consumer_pending":
                    t.pending = max(t.pending or 0.0, s.value)
                elif s.name == "tracks_in_flight":
                    t.in_flight += s.value
                elif s.name == "tracks_breaker_state":
                    t.breaker = max(t.breaker, int(s.value))
    return scrape


def rows(before: Scrape, after: Scrape) -> list[TrackRow]:
    span = max(after.at - before.at, 1e-9)
    out = []
    for name in sorted(after.tracks):
        now, then = after.tracks[name], before.tracks.get(name, Track())
        window = {le: max(0.0, n - then.buckets.get(le, 0.0)) for le, n in now.buckets.items()}
        out.append(
            TrackRow(
                track=name,
                rate=max(0.0, now.count - then.count) / span,
                p50_s=quantile(0.5, window),
                p99_s=quantile(0.99, window),
                pending=None if now.pending is None else int(now.pending),
                in_flight=int(now.in_flight),
                failures=int(sum(now.outcomes.get(o, 0.0) for o in FAILURES)),
                breaker=BREAKER.get(now.breaker, str(now.breaker)),
                outcomes={o: int(n) for o, n in sorted(now.outcomes.items())},
            )
        )
    return out


def _fetch(url: str, timeout_s: float) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            body: bytes = response.read()
            return body.decode()
    except urllib.error.HTTPError as exc:
        raise UserError(f"{url} answered HTTP {exc.code}: is it an actor's /metrics?") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServerUnreachable(
            f"cannot reach {url} ({reason}): is the actor running with TRACKS_HTTP_PORT set?"
        ) from None


def _scrape(urls: list[str], timeout_s: float) -> Scrape:
    return parse([_fetch(url, timeout_s) for url in urls], time.monotonic())


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f}ms" if seconds < 1 else f"{seconds:.2f}s"


def _cell(column: int, text: str, width: int) -> str:
    return text.ljust(width) if column == 0 else text.rjust(width)


def render(table: list[TrackRow], dlq: float | None, urls: list[str], note: str = "") -> str:
    head = ("TRACK", "STEPS/S", "P50", "P99", "PENDING", "IN FLIGHT", "FAILURES", "BREAKER")
    lines = [
        (
            r.track,
            f"{r.rate:.1f}",
            _ms(r.p50_s),
            _ms(r.p99_s),
            "-" if r.pending is None else str(r.pending),
            str(r.in_flight),
            str(r.failures),
            r.breaker,
        )
        for r in table
    ]
    widths = [max(len(row[i]) for row in [head, *lines]) for i in range(len(head))]
    text = [
        "  ".join(_cell(i, c, w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in [head, *lines]
    ]
    if not lines:
        text.append("(no tracks reported yet)")
    dlq_text = "-" if dlq is None else str(int(dlq))
    text.append(f"DLQ: {dlq_text}   from {', '.join(urls)}{'   ' + note if note else ''}")
    return "\n".join(text)


def _snapshot(table: list[TrackRow], after: Scrape, urls: list[str], interval_s: float) -> dict[str, Any]:
    return {
        "sources": urls,
        "intervalS": interval_s,
        "dlqMessages": None if after.dlq is None else int(after.dlq),
        "tracks": {
            r.track: {
                "stepsPerS": round(r.rate, 3),
                "p50S": r.p50_s,
                "p99S": r.p99_s,
                "pending": r.pending,
                "inFlight": r.in_flight,
                "failures": r.failures,
                "breaker": r.breaker,
                "outcomes": r.outcomes,
            }
            for r in table
        },
    }


@click.command("top")
@click.option(
    "--url",
    "urls",
    multiple=True,
    metavar="URL",
    help="An actor's metrics endpoint (repeatable). Default: http://127.0.0.1:$TRACKS_HTTP_PORT/metrics.",
)
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds between refreshes.",
)
@click.option("--once", is_flag=True, help="Print one frame (two scrapes --interval apart) and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print one snapshot as JSON and exit.")
@click.option(
    "--timeout",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds to wait for each URL.",
)
def top(urls: tuple[str, ...], interval: float, once: bool, as_json: bool, timeout: float) -> None:
    """Live per-track view of running actors: steps/s, p50/p99 step time, pending, in flight,
    failures, breaker state and DLQ depth, from their /metrics (TRACKS_HTTP_PORT). Ctrl-C quits."""
    sources = list(urls) or [_default_url()]
    before = _scrape(sources, timeout)
    if once or as_json:
        time.sleep(interval)
        after = _scrape(sources, timeout)
        table = rows(before, after)
        if as_json:
            click.echo(json.dumps(_snapshot(table, after, sources, interval), indent=2))
        else:
            click.echo(render(table, after.dlq, sources))
        return
    try:
        while True:
            time.sleep(interval)
            note = ""
            try:
                after = _scrape(sources, timeout)
            except UserError as exc:  # an actor restarting: say so, keep the last frame's values
                after, note = before, f"(last scrape failed: {exc.message})"
            click.echo("\x1b[H\x1b[2J" + render(rows(before, after), after.dlq, sources, note), nl=True)
            before = after
    except KeyboardInterrupt:
        return


def _default_url() -> str:
    port = os.environ.get("TRACKS_HTTP_PORT", "").strip()
    if not port:
        raise ServerUnreachable(  # none configured: exit 4, as the table says
            "no --url given and TRACKS_HTTP_PORT is unset: pass --url http://HOST:PORT/metrics"
        )
    return f"http://127.0.0.1:{port}/metrics"
