"""NATS over TLS with a private CA, mutual TLS, and NKey authentication (TRACKS_NATS_TLS_CA,
TRACKS_NATS_TLS_CERT, TRACKS_NATS_TLS_KEY, TRACKS_NATS_NKEY_SEED), against real nats-servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nkeys
import pytest
import trustme

from actors import Runtime, TracksClient
from foundation.connections import connect_nats
from foundation.settings import Settings, SettingsError, load_settings
from foundation.tls import TlsRefused, nats_tls_context, tls_failure
from tests.conftest import Servers
from tests.support.apps.workflows import passthrough_pair
from tests.support.configured_nats import ConfiguredNats, configured_nats


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A throwaway CA, a certificate for 127.0.0.1 and one for a client, as PEM files."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("actor@tracks.example")
    root = tmp_path / "pki"
    root.mkdir()
    paths = Pki(*(root / n for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")))
    ca.cert_pem.write_to_path(str(paths.ca))
    server.cert_chain_pems[0].write_to_path(str(paths.server_cert))
    server.private_key_pem.write_to_path(str(paths.server_key))
    client.cert_chain_pems[0].write_to_path(str(paths.client_cert))
    client.private_key_pem.write_to_path(str(paths.client_key))
    return paths


@pytest.fixture
def mtls_nats(tmp_path: Path, pki: Pki) -> Iterator[ConfiguredNats]:
    """nats-server that requires TLS and a client certificate signed by the CA."""
    conf = (
        f'tls {{ cert_file: "{pki.server_cert}", key_file: "{pki.server_key}", '
        f'ca_file: "{pki.ca}", verify: true, timeout: 2 }}'
    )
    with configured_nats(tmp_path / "nats", conf) as server:
        yield server


def _settings(server: ConfiguredNats, servers: Servers, **tls: object) -> Settings:
    return load_settings(nats_url=server.url, database_url=servers.database_url, connect_timeout_s=3, **tls)


async def test_a_workflow_runs_over_mutual_tls(
    mtls_nats: ConfiguredNats, pki: Pki, servers: Servers, migrated: None, unique: str
) -> None:
    """Actors and the client trust the private CA and present the client certificate: a run of a
    two-track workflow completes over the verified connection."""
    settings = _settings(
        mtls_nats, servers, nats_tls_ca=pki.ca, nats_tls_cert=pki.client_cert, nats_tls_key=pki.client_key
    )
    wf = passthrough_pair(f"tls-{unique}", f"{unique}-up", f"{unique}-down")
    async with Runtime(list(wf), settings=settings):
        nc = await connect_nats(settings, mtls_nats.url, wait_for_server=False)
        try:
            result = await TracksClient(nc).run(wf, {"secret": "over tls"}, timeout=30)
            assert result == {"secret": "over tls"}
        finally:
            await nc.drain()


async def test_a_client_without_a_certificate_is_refused_in_one_line(
    mtls_nats: ConfiguredNats, pki: Pki, servers: Servers
) -> None:
    """Trusting the CA is not enough when the server verifies clients: one ConnectionError line
    naming the server and saying a certificate is wanted."""
    settings = _settings(mtls_nats, servers, nats_tls_ca=pki.ca)
    with pytest.raises(ConnectionError) as caught:
        await connect_nats(settings, mtls_nats.url, wait_for_server=False)
    message = str(caught.value)
    assert "\n" not in message
    assert f"127.0.0.1:{mtls_nats.port}" in message
    assert "TRACKS_NATS_TLS_CERT" in message, message


async def test_a_server_certificate_from_another_ca_is_refused_in_one_line(
    mtls_nats: ConfiguredNats, pki: Pki, servers: Servers, tmp_path: Path
) -> None:
    """The system trust store (or another CA) does not vouch for the server: one line that says
    which setting to give."""
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    settings = _settings(
        mtls_nats, servers, nats_tls_ca=other, nats_tls_cert=pki.client_cert, nats_tls_key=pki.client_key
    )
    with pytest.raises(ConnectionError) as caught:
        await connect_nats(settings, mtls_nats.url, wait_for_server=False)
    assert "\n" not in str(caught.value)
    assert "TRACKS_NATS_TLS_CA" in str(caught.value), str(caught.value)


def test_a_certificate_without_its_key_is_one_settings_line(pki: Pki) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(nats_tls_cert=pki.client_cert)
    assert str(caught.value) == (
        "TRACKS_NATS_TLS_KEY: set it together with TRACKS_NATS_TLS_CERT (mutual TLS), or neither"
    )
    with pytest.raises(SettingsError, match=r"^TRACKS_NATS_TLS_CA: no such file: /nowhere/ca\.pem$"):
        load_settings(nats_tls_ca="/nowhere/ca.pem")


def test_a_refusal_is_kept_over_a_later_broken_pipe(pki: Pki) -> None:
    """With TLS 1.3 the server's "certificate required" may arrive after the client wrote: an
    attempt then ends in a broken pipe. The hint stays (kept from an earlier attempt, or given
    for the broken pipe itself when no client certificate is configured)."""
    trusting = load_settings(nats_tls_ca=pki.ca)
    refused = tls_failure(BrokenPipeError(32, "Broken pipe"), trusting)
    assert isinstance(refused, TlsRefused) and "TRACKS_NATS_TLS_CERT" in str(refused)
    assert tls_failure(ConnectionRefusedError(), trusting, refused) is refused
    assert tls_failure(ConnectionRefusedError(), trusting) is None
    assert tls_failure(BrokenPipeError(), load_settings()) is None  # no TLS configured: no guess


def test_a_file_that_is_no_certificate_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(SettingsError, match=r"^TRACKS_NATS_TLS_CA: .*ca\.pem holds no PEM CA certificate"):
        nats_tls_context(load_settings(nats_tls_ca=bad))


async def test_an_nkey_seed_file_authenticates(tmp_path: Path, servers: Servers) -> None:
    """A server that knows the user only by its public NKey admits the holder of the seed, and
    refuses a client without it."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(seed)
    seed_file.chmod(0o600)
    auth = f'authorization {{ users = [ {{ nkey: "{public}" }} ] }}'
    with configured_nats(tmp_path / "nats", auth) as server:
        holder = _settings(server, servers, nats_nkey_seed=seed_file)
        nc = await connect_nats(holder, server.url, wait_for_server=False)
        await nc.drain()
        with pytest.raises(ConnectionError, match="uthorization"):
            await connect_nats(_settings(server, servers), server.url, wait_for_server=False)
