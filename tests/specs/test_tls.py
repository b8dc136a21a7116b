"""specs/tls.py: contexts from files (and the errors that name a bad one), and the listener and
connector over real sockets (127.0.0.1, port 0) with a small echo protocol behind them."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from specs.tls import ClientTls, Listener, ServerTls, TlsConfigError, connect, listen, tls_reason
from tests.tlscerts import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def logged(err: str, event: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


class Echo(asyncio.Protocol):
    """Answers every read with the same bytes; counts the connections it was handed."""

    made: ClassVar[list[Echo]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        Echo.made.append(self)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class Reader(asyncio.Protocol):
    """A client side that collects what it reads and hears how the connection ended."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.got = asyncio.Event()
        self.closed: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data
        self.got.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)


async def _serving(ctx: ssl.SSLContext | None, timeout: float = 5.0) -> Listener:
    Echo.made = []
    return await listen(Echo, "127.0.0.1", 0, tls=ctx, handshake_timeout=timeout)


@pytest.fixture
async def tls_echo(pki: Pki) -> AsyncIterator[Listener]:
    listener = await _serving(ServerTls(cert=str(pki.server_cert), key=str(pki.server_key)).context())
    yield listener
    listener.close()
    await listener.wait_closed()


async def echo_once(port: int, ctx: ssl.SSLContext | None, payload: bytes = b"ping", host: str = "127.0.0.1") -> bytes:
    transport, reader = await asyncio.wait_for(connect(Reader, host, port, tls=ctx, handshake_timeout=5), 10)
    try:
        transport.write(payload)
        while len(reader.data) < len(payload) and not reader.closed.done():
            reader.got.clear()
            waiters: list[asyncio.Future[Any]] = [reader.closed, asyncio.ensure_future(reader.got.wait())]
            await asyncio.wait(waiters, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            waiters[1].cancel()
        return bytes(reader.data)
    finally:
        transport.close()


def client(pki: Pki, *, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    return ClientTls(ca=str(pki.ca), cert=str(cert) if cert else None, key=str(key) if key else None).context()


# -- contexts and their errors ---------------------------------------------------------------------


def test_contexts_speak_tls_1_2_or_later_and_clients_verify_the_host(pki: Pki) -> None:
    server = ServerTls(cert=str(pki.server_cert), key=str(pki.server_key)).context()
    assert server.minimum_version is ssl.TLSVersion.TLSv1_2
    assert server.verify_mode is ssl.CERT_NONE
    mutual = ServerTls(cert=str(pki.server_cert), key=str(pki.server_key), client_ca=str(pki.ca)).context()
    assert mutual.verify_mode is ssl.CERT_REQUIRED
    ctx = client(pki)
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
    assert ctx.check_hostname and ctx.verify_mode is ssl.CERT_REQUIRED


def test_a_missing_file_is_named_with_the_reason(tmp_path: Path, pki: Pki) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(TlsConfigError) as caught:
        ServerTls(cert=str(missing), key=str(pki.server_key)).context()
    assert str(caught.value) == f"TLS certificate {missing}: No such file or directory"
    assert caught.value.path == str(missing)


def test_a_file_holding_the_wrong_thing_is_named(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(TlsConfigError, match=rf"TLS certificate {pki.server_key}: holds no PEM certificate"):
        ServerTls(cert=str(pki.server_key), key=str(pki.server_key)).context()
    with pytest.raises(TlsConfigError, match=rf"TLS private key {pki.server_cert}: holds no usable PEM private key"):
        ServerTls(cert=str(pki.server_cert), key=str(pki.server_cert)).context()
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    with pytest.raises(TlsConfigError, match=rf"TLS client CA {junk}: holds no PEM certificate"):
        ServerTls(cert=str(pki.server_cert), key=str(pki.server_key), client_ca=str(junk)).context()
    with pytest.raises(TlsConfigError, match=rf"TLS CA {junk}: "):
        ClientTls(ca=str(junk)).context()


def test_a_key_of_another_certificate_is_refused(pki: Pki) -> None:
    with pytest.raises(TlsConfigError) as caught:
        ServerTls(cert=str(pki.server_cert), key=str(pki.client_key)).context()
    assert str(caught.value) == f"TLS private key {pki.client_key}: does not match the certificate {pki.server_cert}"


def test_an_encrypted_key_is_refused_with_that_reason(pki: Pki, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pki.server_key.read_bytes(), None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(TlsConfigError, match="is encrypted"):
        ServerTls(cert=str(pki.server_cert), key=str(locked)).context()


def test_a_key_and_certificate_in_one_file_need_no_key_option(pki: Pki, tmp_path: Path) -> None:
    both = tmp_path / "both.pem"
    both.write_bytes(pki.server_cert.read_bytes() + pki.server_key.read_bytes())
    assert ServerTls(cert=str(both)).context().minimum_version is ssl.TLSVersion.TLSv1_2


def test_a_client_key_without_a_certificate_is_refused(pki: Pki) -> None:
    with pytest.raises(TlsConfigError, match="given without a certificate"):
        ClientTls(ca=str(pki.ca), key=str(pki.client_key))


# -- the listener and the connector ----------------------------------------------------------------


async def test_a_tls_client_is_served_and_the_protocol_sees_a_tls_transport(tls_echo: Listener, pki: Pki) -> None:
    assert await echo_once(tls_echo.port, client(pki), b"0123456789" * 100) == b"0123456789" * 100
    [handed] = Echo.made
    assert handed.transport.get_extra_info("ssl_object") is not None
    assert handed.transport.get_extra_info("peername")[0] == "127.0.0.1"


async def test_a_plain_listener_is_plain(pki: Pki) -> None:
    listener = await _serving(None)
    try:
        assert await echo_once(listener.port, None) == b"ping"
        assert Echo.made[0].transport.get_extra_info("ssl_object") is None
    finally:
        listener.close()


async def test_plaintext_on_a_tls_port_is_closed_and_logged_while_a_tls_client_is_served(
    tls_echo: Listener, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    good, good_reader = await connect(Reader, "127.0.0.1", tls_echo.port, tls=client(pki))
    reader, writer = await asyncio.open_connection("127.0.0.1", tls_echo.port)
    local = writer.get_extra_info("sockname")
    writer.write(bytes.fromhex("003C60000001386131003111080800"))  # the start of a cup-pos sign-in
    assert await asyncio.wait_for(reader.read(100), 10) == b""
    writer.close()
    good.write(b"still here")
    await asyncio.wait_for(good_reader.got.wait(), 10)
    assert bytes(good_reader.data) == b"still here"
    good.close()
    [line] = logged(capsys.readouterr().err, "tls_handshake_failed")
    assert line["remote"] == f"{local[0]}:{local[1]}"
    assert line["reason"] == "plaintext on a TLS port"
    assert line["level"] == "warning"
    assert len(Echo.made) == 1  # the plaintext client never reached the protocol


async def test_a_handshake_never_begun_is_closed_at_the_deadline(
    pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    listener = await _serving(ServerTls(cert=str(pki.server_cert), key=str(pki.server_key)).context(), timeout=0.5)
    try:
        capsys.readouterr()
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(100), 10) == b""
        elapsed = time.monotonic() - started
        assert 0.4 <= elapsed < 5, f"closed after {elapsed:.2f} s"
        writer.close()
        [line] = logged(capsys.readouterr().err, "tls_handshake_failed")
        assert line["reason"] == "TLS handshake not finished within 0.5 s"
        assert Echo.made == []
    finally:
        listener.close()


async def test_a_client_checks_the_name_it_dialled(tls_echo: Listener, pki: Pki) -> None:
    # The server's certificate names 127.0.0.1 only, so "localhost" (the same socket) is refused.
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        await connect(Reader, "localhost", tls_echo.port, tls=client(pki))
    assert "certificate verify failed: Hostname mismatch" in tls_reason(caught.value)


async def test_a_client_without_the_test_ca_refuses_the_server(tls_echo: Listener) -> None:
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        await connect(Reader, "127.0.0.1", tls_echo.port, tls=ClientTls().context())
    assert "unable to get local issuer certificate" in tls_reason(caught.value)


async def test_mutual_tls_refuses_a_client_without_a_certificate_and_serves_one_with(
    pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = ServerTls(cert=str(pki.server_cert), key=str(pki.server_key), client_ca=str(pki.ca)).context()
    listener = await _serving(ctx)
    try:
        capsys.readouterr()
        assert await echo_once(listener.port, client(pki)) == b""
        assert await echo_once(listener.port, client(pki, cert=pki.stranger_cert, key=pki.stranger_key)) == b""
        assert Echo.made == []
        assert await echo_once(listener.port, client(pki, cert=pki.client_cert, key=pki.client_key)) == b"ping"
        peer = Echo.made[0].transport.get_extra_info("peercert")
        assert dict(x[0] for x in peer["subject"])["commonName"] == "switchsim test client"
        lines = logged(capsys.readouterr().err, "tls_handshake_failed")
        assert [line["reason"] for line in lines] == [
            "PEER_DID_NOT_RETURN_A_CERTIFICATE: peer did not return a certificate",
            "certificate verify failed: unable to get local issuer certificate",
        ]
    finally:
        listener.close()


async def test_closing_the_listener_ends_handshakes_under_way(pki: Pki) -> None:
    listener = await _serving(ServerTls(cert=str(pki.server_cert), key=str(pki.server_key)).context(), timeout=30)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    await asyncio.sleep(0.1)
    listener.close()
    await listener.wait_closed()
    assert await asyncio.wait_for(reader.read(100), 5) == b""
    writer.close()


async def test_a_socket_bound_already_can_be_handed_to_the_listener(pki: Pki) -> None:
    # A supervisor that binds once and hands the socket on (serve --workers) uses sock=.
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    Echo.made = []
    ctx = ServerTls(cert=str(pki.server_cert), key=str(pki.server_key)).context()
    listener = await listen(Echo, None, None, tls=ctx, sock=sock)
    try:
        assert listener.port == sock.getsockname()[1]
        assert await echo_once(listener.port, client(pki)) == b"ping"
    finally:
        listener.close()
