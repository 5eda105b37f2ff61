"""The benchmark suite: each scenario for the raw baseline and the runtime, same servers, same run."""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from nats.aio.client import Client as NATS

from actors import Runtime, TrackOptions, Workflow
from foundation import metrics
from foundation.connections import connect_nats
from foundation.db import create_pool
from foundation.gc_tuning import tune_gc
from foundation.settings import Settings
from subjects import (
    DLQ_STREAM,
    STREAM,
    SubjectKind,
    dlq_stream,
    ensure_streams,
    headers,
    names,
    tracks_stream,
)
from tracks.bench.driver import Measurement, drive
from tracks.bench.failures import measure_failures
from tracks.bench.faststream_chain import MISSING, available, faststream_chain
from tracks.bench.limits import measure_limits
from tracks.bench.processes import track_processes
from tracks.bench.raw import raw_chain, raw_diamond
from tracks.bench.waits import read as read_waits
from tracks.bench.waits import waits
from tracks.bench.workflows import diamond_workflow, linear_workflow
from tracks.endpoints import with_endpoints

__all__ = ["BenchConfig", "run_bench"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class BenchConfig:
    n: int = 20_000
    stages: int = 4
    paced_n: int = 3_000
    paced_rates: tuple[float, ...] = (200.0, 1000.0)
    repeat: int = 1
    """Linear bursts (raw, then runtime) to run; the median pair is the headline."""
    faststream: bool = True
    """The FastStream chain too, when it is installed (``tracks[faststream]``)."""
    processes: bool = False
    """The linear chain again with one ``tracks actor run`` process per track (burst and paced)."""
    limits: bool = False
    """Flow control's cost and rate accuracy (:mod:`tracks.bench.limits`)."""


def _envelope_payload(data: bytes) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(data)["payload"]
    return body


async def _measure_raw(
    nc: NATS,
    stages: contextlib.AbstractAsyncContextManager[str],
    entry: str,
    n: int,
    rate: float | None = None,
) -> Measurement:
    """A raw nats-py graph (it yields its final subject filter), triggered on ``<entry>.<i>``."""
    async with stages as final:
        return await drive(
            nc,
            n=n,
            rate=rate,
            final_subject=final,
            trigger=lambda i, body: (f"{entry}.{i}", body, {headers.MSG_ID: f"{entry}:{i}"}),
        )


async def _measure_runtime(
    nc: NATS,
    settings: Settings,
    wf: Workflow,
    n: int,
    rate: float | None = None,
    *,
    failure_handling: bool = True,
    processes: str | None = None,
) -> Measurement:
    """A workflow on the full runtime, triggered at its root, timed at its (only) leaf.

    ``processes`` (the chain's prefix) runs each track in its own ``tracks actor run`` process.
    """
    (first,), (last,) = wf.roots, wf.leaves
    if processes is not None:
        actors: contextlib.AbstractAsyncContextManager[Any] = track_processes(
            settings, processes, len(list(wf))
        )
    else:
        actors = Runtime(list(wf), settings=settings, name="tracks-bench", failure_handling=failure_handling)
    async with actors as pids:
        return await drive(
            nc,
            n=n,
            rate=rate,
            final_subject=names.event(last.name, SubjectKind.COMPLETED, "*"),
            final_payload=_envelope_payload,
            trigger=lambda i, body: (
                names.run(first.name, f"{wf.name}-{i}"),
                body,
                {headers.MSG_ID: f"{wf.name}:{i}"},
            ),
            pids=pids if processes is not None else (),
        )


async def run_bench(settings: Settings, cfg: BenchConfig) -> dict[str, Any]:
    if settings.gc_tuning:  # before the baseline too: every contender runs in the same process
        tune_gc()
    settings, endpoints = with_endpoints(settings)
    nc = await connect_nats(settings, endpoints.nats_url, name="tracks-bench")
    run_id = uuid.uuid4().hex[:6]
    left: list[Traffic] = []

    def prefix(kind: str, tracks: tuple[str, ...] = ()) -> str:
        """A fresh name prefix for a scenario, remembered (with its tracks) for the clean-up."""
        p = f"b{run_id}{kind}"
        left.append(Traffic(p, tuple(f"{p}-{t}" for t in tracks), p))
        return p

    def workflow(kind: str, build: Callable[[str], Workflow]) -> Workflow:
        """A runtime scenario's workflow, remembered with its tracks for the clean-up."""
        wf = build(f"b{run_id}{kind}")
        left.append(Traffic(f"b{run_id}{kind}", tuple(t.name for t in wf), wf.name))
        return wf

    async def measured(result: T) -> T:
        """Each scenario starts on a stream without the previous ones' messages."""
        while left:
            await _clean_up(nc, endpoints.database_url, left.pop())
        return result

    def linear(p: str) -> Workflow:
        return linear_workflow(p, cfg.stages)

    def raw_chain_of(kind: str) -> tuple[contextlib.AbstractAsyncContextManager[str], str]:
        """A raw chain scenario: the stages, and the subject its triggers go to."""
        p = prefix(kind)
        return raw_chain(nc, p, cfg.stages), f"tracks.{p}.s0"

    try:
        results: dict[str, Any] = {
            "run": f"b{run_id}",
            "config": cfg.__dict__,
            "machine": {"python": platform.python_version(), "cpus": _cpus(), "embedded": endpoints.embedded},
        }
        await ensure_streams(
            nc.jetstream(),
            tracks_stream(
                max_age_s=settings.stream_max_age_s,
                duplicate_window_s=settings.duplicate_window_s,
                max_bytes=settings.stream_max_bytes,
            ),
            dlq_stream(max_age_s=settings.dlq_max_age_s, max_bytes=settings.dlq_max_bytes),
        )
        pool = await create_pool(endpoints.database_url, max_size=2)
        try:  # the clean-up after the first (raw) scenario needs the tables
            await Runtime.check_schema(pool, migrate_if_behind=endpoints.embedded)
        finally:
            await pool.close()

        pairs = []
        for r in range(cfg.repeat):  # raw and runtime alternately, under the same conditions
            raw = await measured(await _measure_raw(nc, *raw_chain_of(f"raw{r}-"), cfg.n))
            full = await measured(await _measure_runtime(nc, settings, workflow(f"rt{r}-", linear), cfg.n))
            pairs.append((raw, full))
        ratios = [_ratio(full, raw) for raw, full in pairs]
        raw, full = sorted(pairs, key=lambda p: _ratio(p[1], p[0]))[len(pairs) // 2]  # the median pair
        fast: dict[str, Any] = {
            "skipped": MISSING if cfg.faststream else "FastStream comparison not asked for"
        }
        if cfg.faststream and available():
            p = prefix("fs")
            fast_m = await measured(
                await _measure_raw(
                    nc, faststream_chain(endpoints.nats_url, p, cfg.stages), f"tracks.{p}.s0", cfg.n
                )
            )
            fast = {**fast_m.as_dict(), "runtime_ratio": round(full.per_second / fast_m.per_second, 3)}
        procs: dict[str, Any] | None = None
        if cfg.processes:
            p_wf = workflow("rtproc", linear)
            burst = await measured(
                await _measure_runtime(nc, settings, p_wf, cfg.n, processes=p_wf.name[:-7])
            )
            procs = {"burst": burst.as_dict(), "ratio": _ratio(burst, raw), "paced": []}
            for k, rate in enumerate(cfg.paced_rates):
                p_wf = workflow(f"rtprocp{k}", linear)
                m = await measured(
                    await _measure_runtime(nc, settings, p_wf, cfg.paced_n, rate, processes=p_wf.name[:-7])
                )
                procs["paced"].append({"rate": rate, "runtime": m.as_dict()})
        if cfg.limits:

            async def limited(kind: str, options: TrackOptions, n: int, first_only: bool) -> Measurement:
                wf = workflow(kind, lambda p: linear_workflow(p, cfg.stages, options, first_only=first_only))
                return await measured(await _measure_runtime(nc, settings, wf, n))

            results["limits"] = await measure_limits(limited, cfg.n, full)
        bare = await measured(
            await _measure_runtime(nc, settings, workflow("rtoff", linear), cfg.n, failure_handling=False)
        )
        pool = await create_pool(endpoints.database_url, max_size=2)
        try:
            failures = prefix("fail", ("flaky", "broken"))
            results["failures"] = await measured(await measure_failures(nc, settings, pool, failures))
        finally:
            await pool.close()
        results["failures"]["happy_path"] = {
            "with_failure_handling": full.as_dict(),
            "without": bare.as_dict(),
            "cost_pct": round(100 * (1 - full.per_second / bare.per_second), 1) if bare.per_second else None,
            "cpu_cost_pct": round(100 * (full.cpu_ms_per_workflow / bare.cpu_ms_per_workflow - 1), 1)
            if bare.cpu_ms_per_workflow
            else None,
        }
        rawd = prefix("rawd")
        raw_d = await measured(await _measure_raw(nc, raw_diamond(nc, rawd), f"tracks.{rawd}.a", cfg.n))
        diamond = workflow("rtd", diamond_workflow)
        full_d = await measured(await _measure_runtime(nc, settings, diamond, cfg.n))
        results["diamond"] = {
            "raw": raw_d.as_dict(),
            "runtime": full_d.as_dict(),
            "ratio": _ratio(full_d, raw_d),
        }
        # Last: the runtime's wait histograms are turned on here (for good, in this process), so
        # that no throughput figure above carries their cost.
        metrics.configure(None, local=True)
        paced = []
        for k, rate in enumerate(cfg.paced_rates):
            raw_paced = await measured(await _measure_raw(nc, *raw_chain_of(f"rawp{k}"), cfg.paced_n, rate))
            before = read_waits()
            full_paced = await measured(
                await _measure_runtime(nc, settings, workflow(f"rtp{k}", linear), cfg.paced_n, rate)
            )
            paced.append(
                {
                    "rate": rate,
                    "raw": raw_paced.as_dict(),
                    "runtime": full_paced.as_dict(),
                    "waits": waits(before, read_waits()),
                }
            )
        results["linear"] = {
            "raw": raw.as_dict(),
            "runtime": full.as_dict(),
            "ratio": _ratio(full, raw),
            "ratios": ratios,
            "runs": [{"raw": r.as_dict(), "runtime": f.as_dict(), "ratio": _ratio(f, r)} for r, f in pairs],
            "paced": paced,
            "faststream": fast,
            "processes": procs,
        }
        return results
    finally:
        for traffic in left:
            await _clean_up(nc, endpoints.database_url, traffic)
        await nc.drain()


def _ratio(runtime: Measurement, raw: Measurement) -> float:
    return round(runtime.per_second / raw.per_second, 3) if raw.per_second else 0.0


@dataclass(frozen=True)
class Traffic:
    """What one scenario leaves behind: everything is named after ``prefix``."""

    prefix: str
    tracks: tuple[str, ...]
    workflow: str

    def subjects(self) -> list[tuple[str, str]]:
        """(stream, subject filter) pairs holding its messages (``*`` cannot match part of a token)."""
        return [
            (STREAM, f"{names.ROOT}.{self.prefix}.>"),  # the raw chains
            (STREAM, f"{names.ROOT}.workflow.{self.workflow}.>"),
            *((STREAM, f"{names.ROOT}.{t}.>") for t in self.tracks),
            *((DLQ_STREAM, f"{names.DLQ_ROOT}.{t}.>") for t in self.tracks),
        ]


async def _clean_up(nc: NATS, database_url: str, traffic: Traffic) -> None:
    """Leave no benchmark traffic behind in a user's streams, consumers or tables."""
    js = nc.jetstream()
    with contextlib.suppress(Exception):
        for info in await js.consumers_info(STREAM):
            if info.name.startswith(traffic.prefix):
                await js.delete_consumer(STREAM, info.name)
    for stream, subject in traffic.subjects():
        with contextlib.suppress(Exception):
            await js.purge_stream(stream, subject=subject)
    pool = await create_pool(database_url, max_size=2)
    try:
        p = f"{traffic.prefix}%"
        await pool.execute("DELETE FROM processing_logs WHERE track_id LIKE $1", p)
        await pool.execute("DELETE FROM track_steps WHERE track_id LIKE $1", p)
        await pool.execute("DELETE FROM workflow_runs WHERE workflow LIKE $1", p)
    finally:
        await pool.close()


def _cpus() -> int:
    import os

    return os.cpu_count() or 0
