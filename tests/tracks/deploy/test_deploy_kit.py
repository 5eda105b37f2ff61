"""The deploy kit (deploy/): validated statically, since no container runtime is at hand.

``compose.yaml`` against the compose-spec JSON schema that ``check-jsonschema`` ships;
``k8s/*.yaml`` against the Kubernetes schemas that ``kubernetes-validate`` ships (strict: an
unknown field is an error); the NATS Helm values against the few keys the kit relies on (the
chart's own schema is not packaged on PyPI). Every command a container runs must parse as a
real ``tracks`` command, and every ``actor run`` must name tracks that exist.
"""

from __future__ import annotations

import copy
import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import click
import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel, ConfigDict

from actors.loader import load_tracks, load_workflow
from tracks.cli.main import cli

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
REFERENCE = "tracks.examples.receipts"
K8S_VERSION = "1.30.0"
IMAGE = "tracks:latest"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def _compose_schema() -> dict[str, Any]:
    text = files("check_jsonschema").joinpath("builtin_schemas/vendor/compose-spec.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def _k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, doc)
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def tracks_command(argv: list[str]) -> click.Command:
    """The click command ``argv`` runs; raises click's UsageError when it is not a valid one."""
    assert argv[:1] == ["tracks"], argv
    ctx = click.Context(cli, info_name="tracks")
    command: click.Command = cli
    rest = argv[1:]
    while isinstance(command, click.Group):
        assert rest, f"{argv}: names a group, not a command"
        sub = command.get_command(ctx, rest[0])
        if sub is None:
            raise click.UsageError(f"{argv}: no command {rest[0]!r} in {ctx.command_path}")
        ctx = click.Context(sub, info_name=rest[0], parent=ctx)
        command, rest = sub, rest[1:]
    with command.make_context(ctx.info_name, list(rest), parent=ctx.parent):  # checks options, arguments
        pass
    if command.name == "run" and ctx.parent is not None and ctx.parent.info_name == "actor":
        load_tracks(list(rest))  # every MODULE:TRACK exists
    return command


def test_the_command_check_refuses_what_tracks_would_refuse() -> None:
    """The checker itself: a made-up command, a missing argument and an unknown track fail it."""
    tracks_command(["tracks", "actor", "run", f"{REFERENCE}:gmail"])
    with pytest.raises(click.UsageError):
        tracks_command(["tracks", "actors", "run", REFERENCE])
    with pytest.raises(click.UsageError):
        tracks_command(["tracks", "actor", "run"])
    with pytest.raises(ValueError, match="has no track 'gmial'"):
        tracks_command(["tracks", "actor", "run", f"{REFERENCE}:gmial"])


def test_compose_file_follows_the_compose_spec() -> None:
    schema = _compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    validator.validate(_compose())
    broken = copy.deepcopy(_compose())
    broken["services"]["gmail"]["comand"] = broken["services"]["gmail"].pop("command")
    assert not validator.is_valid(broken), "the schema must refuse an unknown service key"


def test_compose_runs_the_reference_workflow_on_a_three_node_cluster() -> None:
    """One service per track, a scheduler and a migration job, each running a real tracks
    command; three NATS nodes with JetStream routed to each other; streams at R3; long-running
    tracks services checked on /readyz and started after the migration."""
    compose = _compose()
    services = compose["services"]
    ours = {name: s for name, s in services.items() if s.get("image") == IMAGE}
    for service in ours.values():
        tracks_command(service["command"])
    actors = {
        s["command"][3].split(":")[1]: n for n, s in ours.items() if s["command"][1:3] == ["actor", "run"]
    }
    assert sorted(actors) == sorted(t.name for t in load_workflow(REFERENCE))
    assert ours["scheduler"]["command"] == ["tracks", "scheduler", "run"]
    assert ours["migrate"]["command"] == ["tracks", "db", "migrate"]
    for name in [*actors.values(), "scheduler"]:
        service = ours[name]
        assert "/readyz" in " ".join(service["healthcheck"]["test"]), name
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["environment"]["TRACKS_STREAM_REPLICAS"] == "3"
        assert service["environment"]["TRACKS_HTTP_PORT"] == "8080"
    nats = {n: s for n, s in services.items() if s.get("image", "").startswith("nats:")}
    assert len(nats) == 3
    for name, service in nats.items():
        args = service["command"]
        assert "-js" in args and args[args.index("--name") + 1] == name
        routes = args[args.index("--routes") + 1]
        assert sorted(re.findall(r"nats://([\w-]+):6222", routes)) == sorted(set(nats) - {name})
    urls = ours["gmail"]["environment"]["TRACKS_NATS_URL"]
    assert sorted(re.findall(r"nats://([\w-]+):4222", urls)) == sorted(nats)
    jaeger = services["jaeger"]
    assert jaeger["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert ours["gmail"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"


def test_kubernetes_manifests_follow_their_schemas() -> None:
    docs = _k8s_docs()
    assert docs
    for _file, doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    deployment = next(doc for _, doc in docs if doc["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kubernetes_runs_each_track_the_scheduler_twice_and_a_migration_job() -> None:
    docs = [doc for _, doc in _k8s_docs()]
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "Job", "ConfigMap", "Secret"} <= kinds
    tracks_run: set[str] = set()
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        pod = doc["spec"]["template"]["spec"]
        for container in pod["containers"]:
            tracks_command(container["command"])
            refs = {
                ref.get("configMapRef", ref.get("secretRef", {})).get("name") for ref in container["envFrom"]
            }
            assert refs == {"tracks"}
            if doc["kind"] == "Job":
                assert container["command"] == ["tracks", "db", "migrate"]
                continue
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            if container["command"][1:3] == ["actor", "run"]:
                tracks_run.update(t.split(":")[1] for t in container["command"][3:])
                user = next(e["value"] for e in container["env"] if e["name"] == "TRACKS_NATS_USER")
                assert user == f"track-{container['command'][3].split(':')[1]}"
            else:
                assert container["command"] == ["tracks", "scheduler", "run"]
                assert doc["spec"]["replicas"] == 2
    assert sorted(tracks_run) == sorted(t.name for t in load_workflow(REFERENCE))


class _Flag(BaseModel):
    model_config = ConfigDict(extra="allow")
    enabled: bool


class _Cluster(_Flag):
    replicas: int


class _NatsConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    cluster: _Cluster
    jetstream: _Flag


class _NatsValues(BaseModel):
    model_config = ConfigDict(extra="allow")
    config: _NatsConfig


def test_the_nats_helm_values_ask_for_a_three_node_jetstream_cluster() -> None:
    values = _NatsValues.model_validate(yaml.safe_load((DEPLOY / "k8s" / "nats" / "values.yaml").read_text()))
    assert values.config.cluster.enabled and values.config.cluster.replicas == 3
    assert values.config.jetstream.enabled


def test_the_dockerfile_copies_what_exists_and_defaults_to_a_tracks_command() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    root = DEPLOY.parent
    for sources in re.findall(r"^COPY\s+(.+?)\s+\S+$", text, flags=re.M):
        for source in sources.split():
            assert (root / source).exists(), source
    cmd = json.loads(re.search(r"^CMD\s+(\[.*\])$", text, flags=re.M).group(1))  # type: ignore[union-attr]
    assert cmd[0] == "tracks"
    assert "TRACKS_HTTP_PORT=8080" in text
