"""``tracks deploy permissions``: the users it prints are enough to run the reference workflow
on a nats-server that enforces them, and refuse what a track's actor has no business doing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import nats
import nats.errors
import pytest
from click.testing import CliRunner
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from actors import RunFailed, Runtime, TracksClient
from actors.loader import load_workflow
from actors.runtime.request_api import ApiError, call
from foundation.connections import connect_nats
from foundation.settings import Settings, SettingsError, load_settings
from scheduler.schedules import NewSchedule, OverlapPolicy, ScheduleStore
from tests.conftest import Servers
from tests.support.configured_nats import ConfiguredNats, configured_nats
from tests.support.scheduling import cleanup_schedules, running_scheduler
from tests.support.waiting import eventually
from tracks.cli.main import cli
from tracks.deploy import deployment_users, to_json

MODULE = "tracks.examples.receipts"
GUARDED = "tests.support.apps.guarded_app"


def _printed(*args: str) -> str:
    result = CliRunner().invoke(cli, ["deploy", "permissions", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _passwords(module: str = MODULE) -> dict[str, str]:
    """What nats-server reads each user's password from (its environment)."""
    return {u.password_variable: f"pw-{u.user}" for u in deployment_users([load_workflow(module)])}


@pytest.fixture
async def enforced(tmp_path: Path) -> AsyncIterator[ConfiguredNats]:
    """A nats-server whose only users are those ``tracks deploy permissions`` printed."""
    with configured_nats(tmp_path / "nats", _printed(MODULE), env=_passwords()) as server:
        yield server


def _as(server: ConfiguredNats, servers: Servers, user: str) -> Settings:
    return load_settings(
        nats_url=server.url,
        database_url=servers.database_url,
        nats_user=user,
        nats_password=f"pw-{user}",
        run_timeout_check_s=0.5,
        payload_threshold_bytes=64,  # outputs go by reference: the payload store under the allow-lists
        metrics_interval_s=0.5,  # the metrics publish happens during the test, within the allow-list
    )


async def _client(server: ConfiguredNats, user: str, errors: list[str]) -> NATS:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    return await nats.connect(
        server.url,
        user=user,
        password=f"pw-{user}",
        inbox_prefix=f"_INBOX.{user}",  # what Settings.nats_inbox gives a process connected as user
        error_cb=on_error,
        max_reconnect_attempts=0,
    )


def test_the_printed_users_cover_every_track_and_role() -> None:
    """One user per track of the module, then the scheduler, the operator and the observer; JSON
    carries the same users, with passwords as variables, never values."""
    data = json.loads(_printed(MODULE, "--format", "json"))
    assert [u["user"] for u in data["users"]] == [
        "track-gmail",
        "track-drive",
        "track-file_management",
        "track-freee",
        "tracks-scheduler",
        "tracks-operator",
        "tracks-observer",
    ]
    assert data == to_json(deployment_users([load_workflow(MODULE)]))
    assert all(u["password"].startswith("$TRACKS_NATS_PASSWORD_") for u in data["users"])
    gmail = data["users"][0]["permissions"]
    assert "tracks.gmail.completed.*" in gmail["publish"]["allow"]
    assert not any(s.startswith("tracksapi.") and "metrics" not in s for s in gmail["publish"]["allow"])


def test_a_module_gives_every_workflow_and_module_workflow_gives_one() -> None:
    def users(target: str) -> list[str]:
        return [u["user"] for u in json.loads(_printed(target, "--format", "json"))["users"]]

    roles = ["tracks-scheduler", "tracks-operator", "tracks-observer"]
    assert users("tests.support.apps.diamond_app:single") == ["track-only", *roles]
    assert users("tests.support.apps.diamond_app") == [f"track-{t}" for t in "abced"] + ["track-only", *roles]


def test_an_unknown_module_is_one_clear_line() -> None:
    result = CliRunner().invoke(cli, ["deploy", "permissions", "no_such_module_here"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: cannot import 'no_such_module_here': No module named 'no_such_module_here'"
    ]


async def test_each_track_runs_with_its_own_user_and_the_operator_triggers(
    enforced: ConfiguredNats, servers: Servers, migrated: None
) -> None:
    """The reference workflow's four actors, each connected as its track's user, complete a run
    the operator user starts, their outputs passed through the payload store; nats-server reports
    no permissions violation meanwhile."""
    wf = load_workflow(MODULE)
    async with AsyncExitStack() as stack:
        for track in wf:
            runtime = Runtime([track], settings=_as(enforced, servers, f"track-{track.name}"))
            await stack.enter_async_context(runtime)
        operator = _as(enforced, servers, "tracks-operator")
        nc = await connect_nats(operator, enforced.url, wait_for_server=False)
        stack.push_async_callback(nc.drain)
        result = await TracksClient(nc).run(wf, {"mailbox": "me@example.com", "count": 2}, timeout=60)
        assert result["total_jpy"] == 3000
        await asyncio.sleep(1.0)  # a metrics report and a timeout check pass under the allow-lists
    assert "Violation" not in enforced.log(), enforced.log()[-3000:]


async def test_a_push_track_a_fan_in_and_a_manual_gate_work_under_the_allow_lists(
    tmp_path: Path, servers: Servers, migrated: None
) -> None:
    """The wiring the reference workflow lacks: a push track, a fan-in, and a manual phase that
    the operator releases with ``tracksapi.proceed``, answered by a track's actor (which then
    triggers the gated track); the run completes; a refused step is dead-lettered and fails its
    run; no permissions violation."""
    wf = load_workflow(GUARDED)
    with configured_nats(tmp_path / "nats", _printed(GUARDED), env=_passwords(GUARDED)) as server:
        async with AsyncExitStack() as stack:
            for track in wf:
                runtime = Runtime([track], settings=_as(server, servers, f"track-{track.name}"))
                await stack.enter_async_context(runtime)
            nc = await connect_nats(
                _as(server, servers, "tracks-operator"), server.url, wait_for_server=False
            )
            stack.push_async_callback(nc.drain)
            outcomes: asyncio.Queue[str] = asyncio.Queue()

            async def on_outcome(msg: Msg) -> None:
                outcomes.put_nowait(msg.subject)

            cid = uuid.uuid4().hex
            await nc.subscribe(f"tracks.workflow.{wf.name}.*.{cid}", cb=on_outcome)
            await TracksClient(nc).start(wf, {"n": 1}, correlation_id=cid)

            async def released() -> bool:
                try:
                    await call(nc, "proceed", {"correlationId": cid})
                except ApiError:  # 409 until the run reaches the gate
                    return False
                return True

            await eventually(released, timeout=30, what="the review gate released")
            assert await asyncio.wait_for(outcomes.get(), 30) == f"tracks.workflow.{wf.name}.completed.{cid}"
            with pytest.raises(RunFailed, match="this scan is refused"):  # a dead letter, a failed run
                await TracksClient(nc).run(wf, {"fail": True}, timeout=30, correlation_id=f"{cid}-f")
            letter = await nc.jetstream().get_last_msg("DLQ", f"dlq.g-scan.{cid}-f")
            assert letter.headers and letter.headers["Tracks-Error-Type"] == "PermanentError"
    assert "Violation" not in server.log(), server.log()[-3000:]


async def test_the_scheduler_user_fires_a_schedule_and_records_its_outcome(
    enforced: ConfiguredNats, servers: Servers, pool, unique: str
) -> None:
    """The scheduler, connected as ``tracks-scheduler`` with its default history consumer,
    publishes a tick that the track actors run, and records the step's completion from the stream;
    no permissions violation."""
    wf = load_workflow(MODULE)
    store, name = ScheduleStore(pool), f"t{unique}-perm"
    try:
        async with AsyncExitStack() as stack:
            for track in wf:
                runtime = Runtime([track], settings=_as(enforced, servers, f"track-{track.name}"))
                await stack.enter_async_context(runtime)
            scheduler = _as(enforced, servers, "tracks-scheduler")
            await stack.enter_async_context(
                running_scheduler(
                    scheduler, unique, history_consumer="scheduler-history", metrics_interval_s=0.5
                )
            )
            await store.add(
                NewSchedule(name=name, cron_expression="* * * * * *", target="gmail", payload={"count": 1},
                            overlap_policy=OverlapPolicy.ALLOW)
            )  # fmt: skip

            async def recorded() -> bool:
                return bool(await pool.fetchval(
                    "SELECT count(*) FROM job_executions e JOIN job_schedules s ON s.id = e.schedule_id "
                    "WHERE s.name = $1 AND e.status = 'completed'", name,
                ))  # fmt: skip

            await eventually(recorded, timeout=30, what="a scheduled run recorded as completed")
            await store.set_enabled(name, False)
    finally:
        await cleanup_schedules(pool, unique)
    assert "Violation" not in enforced.log(), enforced.log()[-3000:]


async def test_a_track_user_cannot_forge_another_tracks_events_or_call_the_api(
    enforced: ConfiguredNats,
) -> None:
    """gmail's user publishing drive's completion, or asking ``tracksapi.proceed``: refused by the
    server (a permissions violation reaches the error callback; no PubAck, no reply)."""
    errors: list[str] = []
    nc = await _client(enforced, "track-gmail", errors)
    try:
        js = nc.jetstream()
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await js.publish("tracks.drive.completed.x", b"{}", timeout=1.0)
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await nc.request("tracksapi.proceed", b'{"correlationId": "x"}', timeout=1.0)
        await nc.flush()
    finally:
        await nc.close()
    assert 'Publish Violation - Subject "tracksapi.proceed"' in enforced.log()  # what the next test rules out
    assert any('publish to "tracks.drive.completed.x"' in e.lower() for e in errors), errors
    assert any('publish to "tracksapi.proceed"' in e.lower() for e in errors), errors


def test_a_process_takes_its_users_own_inbox() -> None:
    """``_INBOX.<TRACKS_NATS_USER>`` unless TRACKS_NATS_INBOX_PREFIX says otherwise (NKey or
    .creds users name theirs); a user name that is no subject token keeps ``_INBOX``."""
    assert load_settings(nats_user="track-gmail").nats_inbox == "_INBOX.track-gmail"
    assert load_settings(nats_user="track-gmail", nats_inbox_prefix="_INBOX.x").nats_inbox == "_INBOX.x"
    assert load_settings(nats_user="a.b").nats_inbox == load_settings().nats_inbox == "_INBOX"
    with pytest.raises(SettingsError, match=r"^TRACKS_NATS_INBOX_PREFIX: '_INBOX\.>' is not a subject"):
        load_settings(nats_inbox_prefix="_INBOX.>")


async def test_a_user_cannot_listen_to_another_users_replies(enforced: ConfiguredNats) -> None:
    """Replies (pulled batches with their payloads, PubAcks, API answers) go to the user's own
    ``_INBOX.<user>``: gmail's user may not subscribe to everyone's, nor to drive's."""
    errors: list[str] = []
    nc = await _client(enforced, "track-gmail", errors)
    try:
        await nc.subscribe("_INBOX.>")
        await nc.subscribe("_INBOX.track-drive.>")
        await nc.subscribe("_INBOX.track-gmail.>")
        await nc.flush()
        await asyncio.sleep(0.2)
    finally:
        await nc.close()
    refused = {e.lower().rsplit(" ", 1)[-1] for e in errors if "subscription" in e.lower()}  # nats-py lowers
    assert refused == {'"_inbox.>"', '"_inbox.track-drive.>"'}, errors


async def test_the_observer_reads_but_cannot_trigger(enforced: ConfiguredNats) -> None:
    """The read-only user may subscribe to every event but not publish a trigger."""
    errors: list[str] = []
    nc = await _client(enforced, "tracks-observer", errors)
    try:
        await nc.subscribe("tracks.>")
        await nc.publish("tracks.gmail.run.x", b"{}")
        await nc.flush()
        await asyncio.sleep(0.2)
    finally:
        await nc.close()
    assert any('publish to "tracks.gmail.run.x"' in e.lower() for e in errors), errors
    assert not any("subscription" in e.lower() for e in errors), errors
