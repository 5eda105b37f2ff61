"""Least-privilege NATS users for a deployment, derived from its workflows.

One user per role, each with publish and subscribe allow-lists (nats-server denies the rest):

``track-<name>``      the actor of one track: its own events, dead letters and consumer; the
                      triggers and run outcomes of its workflow (the request API it hosts
                      releases phases and ends runs); the request API's subscriptions
``tracks-scheduler``  triggers of the module's tracks, its history consumer
``tracks-operator``   the CLI: every tracks subject, the request API, the JetStream API
``tracks-observer``   read only: events, dead letters, metrics, stream and consumer info

Every subject comes from the wire vocabulary (:mod:`subjects.names`) or from the module that
owns it (the payload bucket, the advisory queue group, the scheduler's durable). Passwords are
never written: each user's password is a nats-server variable (``$TRACKS_NATS_PASSWORD_...``)
that the server resolves from its environment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from actors import Workflow
from actors.failures.strays import CONSUMER as UNROUTED_CONSUMER
from actors.transport.payloads import BUCKET
from subjects import DLQ_STREAM, STREAM, RunOutcome, SubjectKind, names

__all__ = ["NatsUser", "Permissions", "deployment_users", "inbox", "password_variable", "to_conf", "to_json"]

JS_API = "$JS.API"


def inbox(user: str) -> str:
    """A user's replies (PubAcks, pulled batches, answers): a process connected as ``user`` takes
    ``_INBOX.<user>`` as its inbox prefix (``Settings.nats_inbox``), so no user can subscribe to
    another's replies."""
    return f"_INBOX.{user}.>"


SERVICE = "$SRV.>"
"""``nats.micro`` discovery (PING, INFO, STATS) of the request API."""
READ_ONLY_ENDPOINTS = ("chain", "deps", "status")
"""Request API endpoints that change nothing (``proceed``, ``resume``, ``cancel`` do)."""


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False
    """May answer requests (publish once to a request's reply subject)."""


@dataclass(frozen=True)
class NatsUser:
    user: str
    role: str
    """``track``, ``scheduler``, ``operator`` or ``observer``."""
    permissions: Permissions

    @property
    def password_variable(self) -> str:
        return password_variable(self.user)


def password_variable(user: str) -> str:
    """The environment variable nats-server reads this user's password from."""
    return "TRACKS_NATS_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", user).upper()


def _stream_api(stream: str, *actions: str) -> list[str]:
    return [f"{JS_API}.STREAM.{action}.{stream}" for action in actions]


def _consumer(stream: str, consumer: str) -> list[str]:
    """What a process needs to create, inspect and pull from one durable consumer, and to ack."""
    return [
        f"{JS_API}.CONSUMER.CREATE.{stream}.{consumer}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.{consumer}.>",  # a single filter rides in the subject
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{consumer}",
        f"{JS_API}.CONSUMER.INFO.{stream}.{consumer}",
        f"{JS_API}.CONSUMER.DELETE.{stream}.{consumer}",  # a drifted consumer is recreated
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
        f"$JS.ACK.{stream}.{consumer}.>",
    ]


def _payload_store(bucket: str) -> list[str]:
    """The claim-check object store: write chunks and metadata, read them back, purge."""
    stream = f"OBJ_{bucket}"
    return [
        f"$O.{bucket}.>",
        *_stream_api(stream, "INFO", "CREATE", "UPDATE", "PURGE", "MSG.GET"),
        f"{JS_API}.DIRECT.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}.>",
        f"{JS_API}.CONSUMER.CREATE.{stream}",  # reading an object: an ordered, ephemeral consumer
        f"{JS_API}.CONSUMER.CREATE.{stream}.>",
        f"{JS_API}.CONSUMER.DELETE.{stream}.>",
        f"{JS_API}.CONSUMER.INFO.{stream}.>",
        f"{JS_API}.STREAM.NAMES",  # nats-py looks the stream up by the object's subject
        f"$JS.FC.{stream}.>",  # the ordered consumer's flow-control replies
        f"$JS.ACK.{stream}.>",
    ]


def _own_streams() -> list[str]:
    """Runtimes create or reconcile TRACKS and DLQ at start, and read DLQ's depth for alerts."""
    return [
        *_stream_api(STREAM, "INFO", "CREATE", "UPDATE", "MSG.GET"),
        f"{JS_API}.DIRECT.GET.{STREAM}",
        f"{JS_API}.DIRECT.GET.{STREAM}.>",
        *_stream_api(DLQ_STREAM, "INFO", "CREATE", "UPDATE"),
    ]


def _track_user(track: str, workflow: Workflow, bucket: str) -> NatsUser:
    """Upstream completions reach the track through its consumer: no subscription for them."""
    publish = [
        *(
            names.event(track, kind, "*")
            for kind in (SubjectKind.COMPLETED, SubjectKind.FAILED, SubjectKind.DATA_READY)
        ),
        *(subject for t in workflow for subject in names.run_filters(t.name)),  # proceed / resume
        names.workflow_events(workflow.name, "*"),  # its runs end: completed, failed, cancelled
        names.workflow_event("*", RunOutcome.TIMED_OUT, "*"),  # every runtime reaps any late run
        names.dlq("*", "*"),  # the unrouted-trigger catcher buries a stray under its subject's track
        names.alert("*"),
        names.metrics("actor", "*"),
        *_own_streams(),
        *_consumer(STREAM, track),
        *_consumer(STREAM, names.urgent_consumer(track)),  # its urgent lane (high priority)
        *_consumer(STREAM, UNROUTED_CONSUMER),
        *_payload_store(bucket),
    ]
    subscribe = [
        inbox(f"track-{track}"),
        f"{names.PUSH_DELIVER_PREFIX}.{track}",
        names.max_deliveries_advisory(STREAM, track),
        names.max_deliveries_advisory(STREAM, names.urgent_consumer(track)),
        names.urgent_filter(track),  # the signal that opens and pulls its urgent lane
        names.workflow_cancellations(),
        f"{names.API_PREFIX}.*",
        SERVICE,
    ]
    return NatsUser(f"track-{track}", "track", Permissions(tuple(publish), tuple(subscribe), True))


def _scheduler_user(tracks: Iterable[str], history_consumer: str) -> NatsUser:
    publish = [
        *(subject for t in tracks for subject in names.trigger_filters(t)),
        names.metrics("scheduler", "*"),
        *_stream_api(STREAM, "INFO"),
        *_consumer(STREAM, history_consumer),
    ]
    user = "tracks-scheduler"
    return NatsUser(user, "scheduler", Permissions(tuple(publish), (inbox(user),)))


def _operator_user() -> NatsUser:
    root, dlq_root = f"{names.ROOT}.>", f"{names.DLQ_ROOT}.>"
    api = f"{names.API_PREFIX}.>"
    publish = (root, dlq_root, api, f"{JS_API}.>", "$JS.ACK.>", "$JS.FC.>", "$O.>", SERVICE)
    subscribe = (inbox("tracks-operator"), root, dlq_root, api, "$JS.EVENT.>")
    return NatsUser("tracks-operator", "operator", Permissions(publish, subscribe))


def _observer_user() -> NatsUser:
    publish = (
        f"{JS_API}.INFO",
        f"{JS_API}.STREAM.NAMES",
        f"{JS_API}.STREAM.LIST",
        f"{JS_API}.STREAM.INFO.*",
        f"{JS_API}.CONSUMER.NAMES.*",
        f"{JS_API}.CONSUMER.LIST.*",
        f"{JS_API}.CONSUMER.INFO.*.*",
        *(names.api(endpoint) for endpoint in READ_ONLY_ENDPOINTS),
        SERVICE,
    )
    subscribe = (
        inbox("tracks-observer"),
        f"{names.ROOT}.>",
        f"{names.DLQ_ROOT}.>",
        f"{names.METRICS_ROOT}.>",
        "$JS.EVENT.ADVISORY.>",
    )
    return NatsUser("tracks-observer", "observer", Permissions(publish, subscribe))


def deployment_users(
    workflows: Sequence[Workflow], *, bucket: str = BUCKET, history_consumer: str = "scheduler-history"
) -> list[NatsUser]:
    """One user per track of ``workflows``, then the scheduler, the operator and the observer."""
    users = [_track_user(track.name, wf, bucket) for wf in workflows for track in wf]
    users += [
        _scheduler_user([t.name for wf in workflows for t in wf], history_consumer),
        _operator_user(),
        _observer_user(),
    ]
    seen: dict[str, str] = {}
    for user in users:
        variable = user.password_variable
        if variable in seen and seen[variable] != user.user:
            raise ValueError(
                f"users {seen[variable]!r} and {user.user!r} would share the password variable "
                f"{variable}; rename one of the tracks"
            )
        seen[variable] = user.user
    return users


def to_json(users: Sequence[NatsUser]) -> dict[str, Any]:
    """The ``authorization`` block as data (passwords as ``$VARIABLE`` references)."""
    return {
        "users": [
            {
                "user": u.user,
                "password": f"${u.password_variable}",
                "permissions": {
                    "publish": {"allow": list(u.permissions.publish)},
                    "subscribe": {"allow": list(u.permissions.subscribe)},
                    **({"allow_responses": True} if u.permissions.allow_responses else {}),
                },
            }
            for u in users
        ]
    }


def to_conf(users: Sequence[NatsUser]) -> str:
    """An ``authorization { users = [...] }`` block for nats-server's configuration file.

    Passwords are unquoted variables, which nats-server resolves from its environment
    (``TRACKS_NATS_PASSWORD_TRACK_GMAIL=... nats-server -c nats.conf``)."""
    lines = ["authorization {", "  users = ["]
    for u in users:
        lines.append(f"    # {u.role}")
        lines.append(f"    {{ user: {json.dumps(u.user)}, password: ${u.password_variable}, permissions: {{")
        lines.append(f"        publish: {{ allow: {_list(u.permissions.publish)} }}")
        lines.append(f"        subscribe: {{ allow: {_list(u.permissions.subscribe)} }}")
        if u.permissions.allow_responses:
            lines.append("        allow_responses: true")
        lines.append("    } }")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def _list(subjects: Sequence[str]) -> str:
    items = ",\n          ".join(json.dumps(s) for s in subjects)
    return f"[\n          {items}\n        ]"
