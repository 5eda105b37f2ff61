"""Settings read without pydantic behave as they did with pydantic-settings (values, wording, repr).

The expected values and messages are what pydantic-settings 2 gave for the same input.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from foundation.settings import SettingsError, load_settings

ACCEPTED = [
    ("connect_timeout_s", " 2 ", 2.0),
    ("connect_timeout_s", "1e1", 10.0),
    ("connect_timeout_s", "inf", float("inf")),
    ("connect_timeout_s", 3, 3.0),
    ("db_pool_size", "5.0", 5),
    ("db_pool_size", " 7", 7),
    ("db_pool_size", "1_000", 1000),
    ("db_pool_size", True, 1),
    ("lean_spans", "YES", True),
    ("lean_spans", "0", False),
    ("record_payloads", "full", "full"),
    ("http_port", "0", 0),
    ("guard_cpu_percent", "50", 50.0),
    ("nats_url", "", None),
    ("nats_url", "nats://a:1, tls://b:2", "nats://a:1, tls://b:2"),
    ("nats_inbox_prefix", "", None),
    ("data_dir", "/tmp/x", Path("/tmp/x")),
    ("redact", "a.b:c", "a.b:c"),
]

REFUSED = [
    ("connect_timeout_s", "0", "TRACKS_CONNECT_TIMEOUT_S: Input should be greater than 0"),
    ("connect_timeout_s", "nan", "TRACKS_CONNECT_TIMEOUT_S: Input should be greater than 0"),
    (
        "connect_timeout_s",
        "abc",
        "TRACKS_CONNECT_TIMEOUT_S: Input should be a valid number, unable to parse string as a number",
    ),
    (
        "db_pool_size",
        "5.5",
        "TRACKS_DB_POOL_SIZE: Input should be a valid integer, unable to parse string as an integer",
    ),
    ("stream_replicas", "9", "TRACKS_STREAM_REPLICAS: Input should be less than or equal to 5"),
    ("stream_replicas", "0", "TRACKS_STREAM_REPLICAS: Input should be greater than or equal to 1"),
    ("lean_spans", "", "TRACKS_LEAN_SPANS: Input should be a valid boolean, unable to interpret input"),
    ("record_payloads", "x", "TRACKS_RECORD_PAYLOADS: Input should be 'full', 'once' or 'none'"),
    ("http_port", "70000", "TRACKS_HTTP_PORT: Input should be less than or equal to 65535"),
    ("guard_cpu_percent", "-1", "TRACKS_GUARD_CPU_PERCENT: Input should be greater than or equal to 0"),
    ("nats_url", "http://x", "TRACKS_NATS_URL: 'http://x' is not a nats://, tls://, ws:// or wss:// URL"),
    (
        "database_url",
        "mysql://u:pw@x/y",
        "TRACKS_DATABASE_URL: 'mysql://u:***@x/y' is not a postgresql:// URL",
    ),
    ("nats_creds", "/nope", "TRACKS_NATS_CREDS: no credentials file at /nope"),
]


@pytest.mark.parametrize(("field", "raw", "expected"), ACCEPTED)
def test_an_environment_value_is_read_as_pydantic_read_it(
    monkeypatch: pytest.MonkeyPatch, field: str, raw: object, expected: object
) -> None:
    if isinstance(raw, str):
        monkeypatch.setenv(f"tracks_{field}", raw)  # names are case-insensitive
        settings = load_settings()
    else:
        settings = load_settings(**{field: raw})
    assert getattr(settings, field) == expected
    assert field in settings.model_fields_set


@pytest.mark.parametrize(("field", "raw", "message"), REFUSED)
def test_a_bad_value_is_one_line_in_pydantics_words(
    monkeypatch: pytest.MonkeyPatch, field: str, raw: str, message: str
) -> None:
    monkeypatch.setenv(f"TRACKS_{field.upper()}", raw)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value) == message


def test_overrides_win_every_bad_variable_is_named_and_unknown_ones_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRACKS_ACK_WAIT_S", "7")
    monkeypatch.setenv("TRACKS_NOT_A_SETTING", "x")
    settings = load_settings(ack_wait_s=2, not_a_field=1)
    assert settings.ack_wait_s == 2.0 and settings.max_deliver == 5
    monkeypatch.setenv("TRACKS_ACK_WAIT_S", "-1")
    monkeypatch.setenv("TRACKS_MAX_DELIVER", "x")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value).splitlines() == [
        "TRACKS_ACK_WAIT_S: Input should be greater than 0",
        "TRACKS_MAX_DELIVER: Input should be a valid integer, unable to parse string as an integer",
    ]


def test_repr_masks_secrets_and_model_copy_keeps_track_of_what_was_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRACKS_NATS_PASSWORD", "hunter2")
    monkeypatch.setenv("TRACKS_DATABASE_URL", "postgresql://u:pw@h/db")
    settings = load_settings()
    shown = repr(settings)
    assert "hunter2" not in shown and "pw@" not in shown
    assert "nats_password='***'" in shown and "database_url='postgresql://u:***@h/db'" in shown
    copied = settings.model_copy(update={"stream_replicas": 3})
    assert copied.stream_replicas == 3 and settings.stream_replicas == 1
    assert copied.model_fields_set == settings.model_fields_set | {"stream_replicas"}
    assert "stream_replicas" not in settings.model_fields_set
    with pytest.raises(AttributeError):
        settings.ack_wait_s = 1.0  # type: ignore[misc]  # frozen


def test_reading_the_settings_imports_no_pydantic() -> None:
    probe = "import sys, foundation.settings as s; s.load_settings(); print('pydantic' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
