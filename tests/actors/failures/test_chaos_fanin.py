"""Chaos on a fan-in workflow: the three promises under SIGKILLed actors and restarted servers.

Two actor processes, each running every track of ``tests.support.apps.chaos_app`` (roots ``ra`` and
``rb`` fan in to ``join``, which feeds ``leaf``), take a steady stream of runs while the test
SIGKILLs actor processes (a replacement starts at once), stops and restarts the nats-server
and stops and restarts PostgreSQL. Once everything is quiet, the database, the streams and the
handlers' marker file must say:

- **never lose a message**: every run ``completed`` with the right result, every step
  ``completed``, every step and run announced, nothing dead-lettered (the failures are
  infrastructure ones only);
- **never run a completed step twice**: one ``completed`` row per (run, track), one completion
  event per (run, track) and one workflow announcement per run in the stream (which stores a
  repeat with the same ``Nats-Msg-Id`` once, so a count of 2 is a second, different announce);
  the handler run the ledger recorded is the only one at its attempt, and no handler ran after
  the attempt that completed the step;
- **say clearly what went wrong**: a handler that ran to its return without its completion
  being recorded did so in a process that was killed, or its attempt has a ``superseded`` or
  ``failed`` row saying why it did not count, or its actor logged that it could not settle the
  step (counted as ``dropped_outcomes``). Anything else is a silent re-run. Every ``failed`` row
  has an error and an error type; outcome rows are never written twice for one attempt.

Tries that failed (``failed_tries``), dropped outcomes and the actors' ERROR lines and tracebacks
are printed, not judged. When this test was written, a PostgreSQL restart produced some in most
runs: asyncpg raises ``InternalClientError`` ("cannot switch to state 12; another operation (2) is
in progress") on a pooled connection the server terminated, and ``foundation.group_commit.is_transient``
does not take it for an outage, so a claim became a failed try and a completion write an
unsettled step (its handler ran again on the redelivery).

The slow test uses a nats-server and a PostgreSQL of its own (it stops them); the fast one uses
the session's servers and only kills an actor. Each prints a summary line (``pytest -s``)::

    chaos fan-in: runs=… kills=… nats_restarts=… pg_restarts=… lost=… duplicated=… unannounced=…
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Servers
from tests.support.fanin_chaos import Plan, check_promises, run_scenario
from tests.support.servers import own_nats, own_postgres


@pytest.mark.slow
async def test_fanin_keeps_the_three_promises_through_kills_and_server_restarts(
    unique: str, tmp_path: Path
) -> None:
    """600 runs over 40 s. The nats-server is down 10-14 s, PostgreSQL 22-27 s (both longer than
    the 2 s ack wait); 7 SIGKILLs: at 5 s, during each outage (12 s, 24 s), at 17 s and 31 s, and
    both actors at once at 36 s."""
    plan = Plan(
        runs=600,
        publish_s=40,
        kills=((5, (0,)), (12, (1,)), (17, (0,)), (24, (1,)), (31, (0,)), (36, (0, 1))),
        nats_restart_at=10,
        nats_outage_s=4,
        pg_restart_at=22,
        pg_outage_s=5,
    )
    with own_nats(tmp_path) as nats:
        async with own_postgres(tmp_path) as pg:
            check_promises(plan, await run_scenario(plan, unique, tmp_path, nats.url, pg.url, nats, pg))


async def test_fanin_keeps_the_three_promises_through_one_kill(
    servers: Servers, migrated: None, unique: str, tmp_path: Path
) -> None:
    """60 runs over 6 s on the session's servers; one actor SIGKILLed at 3 s."""
    plan = Plan(runs=60, publish_s=6, kills=((3, (0,)),), settle_timeout_s=25)
    check_promises(plan, await run_scenario(plan, unique, tmp_path, servers.nats_url, servers.database_url))
