"""The switch over TLS, real sockets (127.0.0.1, port 0): a terminal's sign-in and an operator
sign-in on a fresh connection, mutual TLS, a plaintext client beside a TLS one, a handshake
never finished, and the switch reaching its HSM over mutual TLS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.server import HsmServerConfig, serve_hsm
from hsm_sim.transports.inproc import InProcTransport
from hsm_sim.transports.interface import HsmTransport
from hsm_sim.transports.url import transport_from_url
from specs.framing import Frame, FrameDecoder
from specs.observer import NullObserver
from specs.tls import ClientTls, ServerTls
from switch.app import RunningSwitch, serve_switch
from switch.config import DeclaredTerminal, SwitchConfig
from switch.sqlite_store import SqliteStore
from tests.switch.pos import CODEC, MERCHANT, TERMINAL, TMK, Pos
from tests.tlscerts import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


class Refusals(NullObserver):
    __slots__ = ("opened", "refused")

    def __init__(self) -> None:
        self.refused: list[str] = []
        self.opened = 0

    def connection_refused(self, reason: str) -> None:
        self.refused.append(reason)

    def connection_opened(self) -> None:
        self.opened += 1


def logged(err: str, event: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


@contextlib.asynccontextmanager
async def tls_switch(
    pki: Pki, *, mutual: bool = False, frame_timeout: float = 5.0, transport: HsmTransport | None = None,
    observer: Refusals | None = None,
) -> AsyncIterator[RunningSwitch]:
    tls = ServerTls(cert=str(pki.server_cert), key=str(pki.server_key), client_ca=str(pki.ca) if mutual else None)
    config = SwitchConfig(
        host="127.0.0.1", port=0, db=":memory:", frame_timeout=frame_timeout, tls=tls,
        terminals=(DeclaredTerminal(MERCHANT, TERMINAL, TMK),),
    )
    hsm = transport or InProcTransport(Dispatcher(reraise_bugs=True))
    running = await serve_switch(config, SqliteStore(":memory:"), hsm, observer or Refusals())
    try:
        yield running
    finally:
        await running.close()


def client(pki: Pki, *, cert: bool = False) -> ssl.SSLContext:
    if cert:
        return ClientTls(ca=str(pki.ca), cert=str(pki.client_cert), key=str(pki.client_key)).context()
    return ClientTls(ca=str(pki.ca)).context()


async def exchange(port: int, wires: list[bytes], ctx: ssl.SSLContext | None) -> list[bytes]:
    """Send the frames on one connection (TLS with ``ctx``); the answers, or fewer when the
    switch closes the connection first."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    writer.write(b"".join(wires))
    decoder = FrameDecoder(CODEC.dialect.framing)
    answers: list[bytes] = []
    try:
        while len(answers) < len(wires):
            data = await asyncio.wait_for(reader.read(65536), 10)
            if not data:
                break
            decoder.feed(data)
            for event in decoder.events():
                assert isinstance(event, Frame)
                answers.append(_wire(event))
    except (ConnectionResetError, ssl.SSLError):
        pass  # the switch's TLS layer ended the connection
    finally:
        writer.close()
    return answers


def _wire(frame: Frame) -> bytes:
    tpdu = frame.tpdu.to_bytes() if frame.tpdu else b""
    raw = tpdu + (frame.header.to_bytes() if frame.header else b"") + frame.body
    return len(raw).to_bytes(2, "big") + raw


async def test_a_terminal_signs_in_over_tls_and_its_operator_on_a_fresh_connection(pki: Pki) -> None:
    async with tls_switch(pki) as switch:
        pos = Pos()
        [answer] = await exchange(switch.port, [pos.wire(pos.signin("003"))], client(pki))
        reply = pos.read(answer)
        assert reply[39] == "00"
        pos.take_keys(reply)  # checks the keys' check values with the test-side crypto
        [answer] = await exchange(switch.port, [pos.wire(pos.operator_signin("001", "0000"), mac=True)], client(pki))
        reply = pos.read(answer)
        assert reply[39] == "00"
        pos.check_mac(reply)


async def test_mutual_tls_refuses_a_terminal_without_a_certificate_and_serves_one_with(
    pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    observer = Refusals()
    async with tls_switch(pki, mutual=True, observer=observer) as switch:
        capsys.readouterr()
        pos = Pos()
        assert await exchange(switch.port, [pos.wire(pos.signin("003"))], client(pki)) == []
        [line] = logged(capsys.readouterr().err, "tls_handshake_failed")
        assert line["reason"] == "PEER_DID_NOT_RETURN_A_CERTIFICATE: peer did not return a certificate"
        assert observer.refused == ["tls_handshake"] and observer.opened == 0
        [answer] = await exchange(switch.port, [pos.wire(pos.signin("003"))], client(pki, cert=True))
        assert pos.read(answer)[39] == "00"
        assert observer.opened == 1


async def test_plaintext_on_the_tls_port_is_closed_and_logged_while_a_tls_terminal_is_served(
    pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    observer = Refusals()
    async with tls_switch(pki, observer=observer) as switch:
        capsys.readouterr()
        tls_pos, plain_pos = Pos(), Pos()
        reader, writer = await asyncio.open_connection("127.0.0.1", switch.port, ssl=client(pki))
        # The plaintext terminal sends a whole sign-in: it gets no answer, only the close.
        plain_reader, plain_writer = await asyncio.open_connection("127.0.0.1", switch.port)
        remote = plain_writer.get_extra_info("sockname")
        plain_writer.write(plain_pos.wire(plain_pos.signin("003")))
        assert await asyncio.wait_for(plain_reader.read(100), 10) == b""
        plain_writer.close()
        # The TLS terminal, connected before it, is served after it.
        writer.write(tls_pos.wire(tls_pos.signin("003")))
        head = await asyncio.wait_for(reader.readexactly(2), 10)
        body = await asyncio.wait_for(reader.readexactly(int.from_bytes(head, "big")), 10)
        assert tls_pos.read(head + body)[39] == "00"
        writer.close()
        [line] = logged(capsys.readouterr().err, "tls_handshake_failed")
        assert line["remote"] == f"{remote[0]}:{remote[1]}"
        assert line["reason"] == "plaintext on a TLS port"
        assert line["level"] == "warning"
        assert observer.refused == ["tls_plaintext"]


async def test_a_handshake_never_finished_is_closed_at_the_frame_deadline(
    pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    async with tls_switch(pki, frame_timeout=0.5) as switch:
        capsys.readouterr()
        reader, writer = await asyncio.open_connection("127.0.0.1", switch.port)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(100), 10) == b""
        elapsed = time.monotonic() - started
        assert 0.4 <= elapsed < 5, f"closed after {elapsed:.2f} s"
        writer.close()
        [line] = logged(capsys.readouterr().err, "tls_handshake_failed")
        assert line["reason"] == "TLS handshake not finished within 0.5 s"
        assert switch.server.connections == set()


async def test_the_switch_reaches_its_hsm_over_mutual_tls(pki: Pki) -> None:
    hsm_tls = ServerTls(cert=str(pki.server_cert), key=str(pki.server_key), client_ca=str(pki.ca))
    hsm = await serve_hsm(HsmServerConfig(port=0, tls=hsm_tls, shutdown_timeout=1.0))
    try:
        url = f"tls://127.0.0.1:{hsm.port}?ca={pki.ca}&cert={pki.client_cert}&key={pki.client_key}"
        async with tls_switch(pki, transport=transport_from_url(url)) as switch:
            pos = Pos()
            [answer] = await exchange(switch.port, [pos.wire(pos.signin("004"))], client(pki))
            reply = pos.read(answer)
            assert reply[39] == "00"
            pos.take_keys(reply)
            assert hsm.connection_count >= 1
    finally:
        await hsm.close()
