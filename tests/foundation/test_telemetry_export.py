"""Where spans go: ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``; span names never carry an ID."""

from __future__ import annotations

import importlib.util
import logging
import sys

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from foundation import telemetry
from subjects import names

_ENV = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    return monkeypatch


def test_http_protobuf_is_the_default(env, caplog):
    with caplog.at_level(logging.WARNING):
        assert isinstance(telemetry._exporter_from_env(), OTLPSpanExporter)
    assert not caplog.records


def test_no_endpoint_no_exporter(env):
    env.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    assert telemetry._exporter_from_env() is None


def test_grpc_without_the_extra_warns_once_and_falls_back_to_http(env, caplog):
    env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    env.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)  # not installed
    with caplog.at_level(logging.WARNING, logger="foundation.telemetry"):
        assert isinstance(telemetry._exporter_from_env(), OTLPSpanExporter)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "pip install 'tracks[grpc]'" in line and "http/protobuf" in line and "\n" not in line


def test_the_traces_protocol_wins_over_the_general_one(env, caplog):
    env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    env.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    with caplog.at_level(logging.WARNING):
        assert isinstance(telemetry._exporter_from_env(), OTLPSpanExporter)
    assert not caplog.records


def test_an_unsupported_protocol_says_so_and_uses_http(env, caplog):
    env.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
    with caplog.at_level(logging.WARNING, logger="foundation.telemetry"):
        assert isinstance(telemetry._exporter_from_env(), OTLPSpanExporter)
    assert "'http/json' is not supported" in caplog.text


@pytest.mark.skipif(
    importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is None,
    reason="the grpc extra (tracks[grpc]) is not installed",
)
def test_grpc_with_the_extra(env):
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

    env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert isinstance(telemetry._exporter_from_env(), Grpc)


@pytest.mark.parametrize(
    ("subject", "template", "cid"),
    [
        ("tracks.gmail.completed.c1", "tracks.gmail.completed", "c1"),
        ("tracks.gmail.run.c1", "tracks.gmail.run", "c1"),
        ("tracks.gmail.run", "tracks.gmail.run", None),
        ("tracks.gmail.run.a.b", "tracks.gmail.run", "a.b"),  # unrouted: a cid of several tokens
        ("tracks.workflow.w.timed_out.c1", "tracks.workflow.w.timed_out", "c1"),
        ("dlq.gmail.c1", "dlq.gmail", "c1"),
        ("tracks.alerts.breaker", "tracks.alerts.breaker", None),
    ],
)
def test_a_subject_template_has_no_correlation_id(subject, template, cid):
    assert names.template(subject) == (template, cid)
