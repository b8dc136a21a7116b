"""The HSM over TLS, both ends real (127.0.0.1, port 0): `hsm serve`'s TLS listener and the
``tls://`` transport, mutual TLS, a plaintext client and a stalled handshake."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hsm_sim.server import HsmServerConfig, RunningHsm, serve_hsm
from hsm_sim.transports.interface import HsmUnavailable
from hsm_sim.transports.tcp import TcpTransport
from hsm_sim.transports.url import transport_from_url
from specs.tls import ServerTls, TlsConfigError
from tests.hsm_sim.transports.peers import NC_ANSWER_PREFIX
from tests.tlscerts import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def logged(err: str, event: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


def server_tls(pki: Pki, *, mutual: bool) -> ServerTls:
    return ServerTls(cert=str(pki.server_cert), key=str(pki.server_key), client_ca=str(pki.ca) if mutual else None)


@contextlib.asynccontextmanager
async def serving(pki: Pki) -> AsyncIterator[RunningHsm]:
    """A mutual-TLS HSM started inside the test, so its log lines reach the test's capsys."""
    running = await serve_hsm(HsmServerConfig(port=0, tls=server_tls(pki, mutual=True), shutdown_timeout=1.0))
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def mutual_hsm(pki: Pki) -> AsyncIterator[RunningHsm]:
    async with serving(pki) as running:
        yield running


def url(hsm: RunningHsm, pki: Pki, *, cert: bool = True) -> str:
    client = f"&cert={pki.client_cert}&key={pki.client_key}" if cert else ""
    return f"tls://127.0.0.1:{hsm.port}?ca={pki.ca}{client}"


async def test_host_commands_over_mutual_tls(mutual_hsm: RunningHsm, pki: Pki) -> None:
    assert mutual_hsm.tcp_url == f"tls://127.0.0.1:{mutual_hsm.port}"
    transport = transport_from_url(url(mutual_hsm, pki), pool_size=2)
    assert isinstance(transport, TcpTransport) and transport.url == mutual_hsm.tcp_url
    try:
        answers = await asyncio.wait_for(asyncio.gather(*(transport.request(b"NC") for _ in range(50))), 10)
        assert all(a.startswith(NC_ANSWER_PREFIX) for a in answers)
        assert await transport.request(b"XX") == b"XY67"
        assert mutual_hsm.connection_count == 2
    finally:
        await transport.close()


async def test_a_client_without_a_certificate_is_refused_by_a_mutual_tls_hsm(
    pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(pki) as mutual_hsm:
        capsys.readouterr()
        transport = transport_from_url(url(mutual_hsm, pki, cert=False), pool_size=1, timeout=5)
        try:
            # The refusal is the HSM's; the client sees its connection end under the request.
            with pytest.raises(HsmUnavailable, match=r"connection to tls://127\.0\.0\.1:\d+ lost"):
                await transport.request(b"NC")
        finally:
            await transport.close()
        [line] = logged(capsys.readouterr().err, "tls_handshake_failed")
        assert line["reason"].startswith("PEER_DID_NOT_RETURN_A_CERTIFICATE")
        assert mutual_hsm.connection_count == 0


async def test_the_client_refuses_an_hsm_its_ca_did_not_sign(pki: Pki, tmp_path: Path) -> None:
    other = make_pki(tmp_path)  # the same names, another CA
    running = await serve_hsm(HsmServerConfig(port=0, tls=server_tls(other, mutual=False)))
    try:
        transport = transport_from_url(f"tls://127.0.0.1:{running.port}?ca={pki.ca}", pool_size=1)
        with pytest.raises(HsmUnavailable, match="TLS: certificate verify failed: unable to get local issuer"):
            await transport.request(b"NC")
        await transport.close()
    finally:
        await running.close()


async def test_plaintext_on_the_hsm_tls_port_is_closed_and_logged_while_tls_is_served(
    pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(pki) as mutual_hsm:
        capsys.readouterr()
        tls = transport_from_url(url(mutual_hsm, pki), pool_size=1)
        plain = TcpTransport("127.0.0.1", mutual_hsm.port, pool_size=1, timeout=5)
        try:
            assert (await tls.request(b"NC")).startswith(NC_ANSWER_PREFIX)
            with pytest.raises(HsmUnavailable):
                await plain.request(b"NC")
            assert (await tls.request(b"NC")).startswith(NC_ANSWER_PREFIX)
        finally:
            await tls.close()
            await plain.close()
    [line] = logged(capsys.readouterr().err, "tls_handshake_failed")
    assert line["reason"] == "plaintext on a TLS port" and line["remote"].startswith("127.0.0.1:")


async def test_a_handshake_never_finished_is_closed_at_the_hsm_deadline(
    pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    config = HsmServerConfig(port=0, tls=server_tls(pki, mutual=False), handshake_timeout=0.5)
    running = await serve_hsm(config)
    try:
        capsys.readouterr()
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        started = time.monotonic()
        writer.write(b"\x16\x03\x01")  # the first bytes of a TLS record, and then nothing
        assert await asyncio.wait_for(reader.read(100), 10) == b""
        assert 0.4 <= time.monotonic() - started < 5
        writer.close()
        [line] = logged(capsys.readouterr().err, "tls_handshake_failed")
        assert line["reason"] == "TLS handshake not finished within 0.5 s"
    finally:
        await running.close()


def test_a_tls_hsm_takes_no_udp_port(pki: Pki) -> None:
    with pytest.raises(ValueError, match="UDP has no TLS"):
        HsmServerConfig(port=0, udp_port=0, tls=server_tls(pki, mutual=False))


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("?ca=a&ca=b", "ca must be given once"),
        ("?ca=", "ca must be given once"),
        ("?pin=1234", "unknown parameter 'pin'"),
        ("?ca", "the part after ?"),
    ],
)
def test_tls_addresses_with_bad_parameters_are_refused(query: str, problem: str) -> None:
    with pytest.raises(ValueError, match=f"bad HSM address .*{problem}"):
        transport_from_url(f"tls://127.0.0.1:1500{query}")


def test_only_tls_addresses_take_parameters(pki: Pki) -> None:
    with pytest.raises(ValueError, match="only scheme, host and port"):
        transport_from_url(f"tcp://127.0.0.1:1500?ca={pki.ca}")


def test_a_tls_address_naming_a_missing_file_says_which(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    with pytest.raises(TlsConfigError, match=f"TLS CA {missing}: No such file or directory"):
        transport_from_url(f"tls://127.0.0.1:1500?ca={missing}")
