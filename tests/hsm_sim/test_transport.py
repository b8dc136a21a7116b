"""Remote transports against the real server and against scripted peers that misbehave on cue,
all over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest

from hsm_sim.facade import HsmTransport, InProcTransport
from hsm_sim.server import HsmServerConfig, RunningHsm, serve_hsm
from hsm_sim.transport import (
    HsmProtocolError,
    HsmTimeout,
    HsmTransportError,
    HsmUnavailable,
    TcpTransport,
    UdpTransport,
    close_transport,
    transport_from_url,
)

# NC on the public Thales test LMK (see test_server.py for its derivation from the vectors).
NC_ANSWER_PREFIX = b"ND007B44AC1DDEE2A94B"


@pytest.fixture
async def hsm() -> AsyncIterator[RunningHsm]:
    running = await serve_hsm(HsmServerConfig(port=0, udp_port=0, shutdown_timeout=1.0))
    try:
        yield running
    finally:
        await running.close()


def free_port() -> int:
    """A port nothing listens on (bound, read and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


async def scripted_tcp_peer(script: Script) -> tuple[asyncio.Server, int]:
    """A TCP peer running ``script(reader, writer, connection_number)`` per connection."""
    count = 0

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        count += 1
        try:
            await script(reader, writer, count)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    n = int.from_bytes(await reader.readexactly(2), "big")
    return await reader.readexactly(n)


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(2, "big") + body


# --- TCP against the real server ----------------------------------------------------------


async def test_tcp_request_returns_answer_without_header(hsm: RunningHsm) -> None:
    async with TcpTransport("127.0.0.1", hsm.port) as transport:
        answer = await transport.request(b"NC")
        assert answer.startswith(NC_ANSWER_PREFIX)
        assert await transport.request(b"XX") == b"XY67"


async def test_tcp_concurrent_requests_share_a_bounded_pool(hsm: RunningHsm) -> None:
    async with TcpTransport("127.0.0.1", hsm.port, pool_size=3) as transport:
        commands = [b"NC" if i % 3 else b"XX" for i in range(300)]
        answers = await asyncio.wait_for(
            asyncio.gather(*(transport.request(c) for c in commands)), 10
        )
        for c, a in zip(commands, answers, strict=True):
            assert a.startswith(NC_ANSWER_PREFIX) if c == b"NC" else a == b"XY67"
        assert transport.connected == 3
        assert hsm.connection_count == 3


async def test_tcp_header_of_other_length_matches_server(hsm: RunningHsm) -> None:
    running = await serve_hsm(HsmServerConfig(port=0, header_length=6))
    try:
        async with TcpTransport("127.0.0.1", running.port, header=b"ABCDEF") as transport:
            assert (await transport.request(b"NC")).startswith(NC_ANSWER_PREFIX)
    finally:
        await running.close()


async def test_tcp_reconnects_after_server_restart_on_same_port() -> None:
    first = await serve_hsm(HsmServerConfig(port=0))
    port = first.port
    transport = TcpTransport("127.0.0.1", port, pool_size=1)
    try:
        assert (await transport.request(b"NC")).startswith(NC_ANSWER_PREFIX)
        await first.close()
        await asyncio.sleep(0.05)  # let the transport see the close
        with pytest.raises(HsmUnavailable, match="cannot connect"):
            await transport.request(b"NC")
        second = await serve_hsm(HsmServerConfig(port=port))
        try:
            assert (await transport.request(b"NC")).startswith(NC_ANSWER_PREFIX)
        finally:
            await second.close()
    finally:
        await transport.close()


async def test_tcp_refused_is_unavailable_naming_the_address() -> None:
    port = free_port()
    async with TcpTransport("127.0.0.1", port) as transport:
        with pytest.raises(HsmUnavailable) as info:
            await transport.request(b"NC")
    assert f"tcp://127.0.0.1:{port}" in str(info.value)
    assert "refused" in str(info.value).lower()


async def test_tcp_closed_transport_refuses_requests(hsm: RunningHsm) -> None:
    transport = TcpTransport("127.0.0.1", hsm.port)
    await transport.close()
    with pytest.raises(HsmUnavailable, match="closed"):
        await transport.request(b"NC")


# --- TCP against scripted peers -----------------------------------------------------------


async def test_tcp_timeout_then_next_request_uses_a_new_connection() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            body = await read_frame(reader)
            if n == 1:
                continue  # first connection: swallow requests, never answer
            writer.write(frame(body[:4] + b"ND00"))

    server, port = await scripted_tcp_peer(script)
    try:
        async with TcpTransport("127.0.0.1", port, pool_size=1, timeout=0.2) as transport:
            with pytest.raises(HsmTimeout, match=r"within 0\.2 s"):
                await transport.request(b"NC")
            assert await transport.request(b"NC") == b"ND00"
    finally:
        server.close()


async def test_tcp_timeout_fails_the_rest_of_the_pipeline_as_unavailable() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            await read_frame(reader)

    server, port = await scripted_tcp_peer(script)
    try:
        async with TcpTransport("127.0.0.1", port, pool_size=1, timeout=0.2) as transport:
            results = await asyncio.gather(
                transport.request(b"NC"), transport.request(b"NC"), return_exceptions=True
            )
        assert isinstance(results[0], HsmTimeout)
        assert isinstance(results[1], HsmTransportError)
    finally:
        server.close()


async def test_tcp_wrong_header_is_protocol_error() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_frame(reader)
        writer.write(frame(b"9999ND00"))
        await reader.read()

    server, port = await scripted_tcp_peer(script)
    try:
        async with TcpTransport("127.0.0.1", port, header=b"0000") as transport:
            with pytest.raises(HsmProtocolError, match="message header"):
                await asyncio.wait_for(transport.request(b"NC"), 2)
    finally:
        server.close()


async def test_tcp_connection_lost_mid_request_is_unavailable() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_frame(reader)  # then hang up without answering

    server, port = await scripted_tcp_peer(script)
    try:
        async with TcpTransport("127.0.0.1", port, pool_size=1) as transport:
            with pytest.raises(HsmUnavailable, match="lost"):
                await asyncio.wait_for(transport.request(b"NC"), 2)
    finally:
        server.close()


async def test_tcp_answers_split_and_coalesced_are_matched_in_order() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        bodies = [await read_frame(reader) for _ in range(3)]
        wire = b"".join(frame(b[:4] + b[4:6] + b"00") for b in bodies)
        for i in range(len(wire)):  # the worst case: one byte per segment
            writer.write(wire[i : i + 1])
            await writer.drain()
        await reader.read()

    server, port = await scripted_tcp_peer(script)
    try:
        async with TcpTransport("127.0.0.1", port, pool_size=1) as transport:
            answers = await asyncio.wait_for(
                asyncio.gather(*(transport.request(c) for c in (b"A1", b"B2", b"C3"))), 2
            )
        assert answers == [b"A100", b"B200", b"C300"]
    finally:
        server.close()


# --- UDP ----------------------------------------------------------------------------------


async def test_udp_request_against_the_server(hsm: RunningHsm) -> None:
    assert hsm.udp_port is not None
    async with UdpTransport("127.0.0.1", hsm.udp_port) as transport:
        answers = await asyncio.wait_for(
            asyncio.gather(*(transport.request(b"NC" if i % 2 else b"XX") for i in range(40))), 5
        )
    for i, answer in enumerate(answers):
        assert answer.startswith(NC_ANSWER_PREFIX) if i % 2 else answer == b"XY67"


class ScriptedUdpPeer(asyncio.DatagramProtocol):
    """Records datagrams; answers ``header + ND00`` unless told to drop the first ``drop``."""

    def __init__(self, drop: int) -> None:
        self.drop = drop
        self.seen: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.seen.append(data)
        if len(self.seen) > self.drop and self.transport is not None:
            self.transport.sendto(data[:4] + b"ND00", addr)


async def scripted_udp_peer(drop: int) -> tuple[ScriptedUdpPeer, int]:
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(
        lambda: ScriptedUdpPeer(drop), local_addr=("127.0.0.1", 0)
    )
    return peer, int(transport.get_extra_info("sockname")[1])


async def test_udp_retries_once_with_the_same_header() -> None:
    peer, port = await scripted_udp_peer(drop=1)
    try:
        async with UdpTransport("127.0.0.1", port, timeout=0.2) as transport:
            assert await transport.request(b"NC") == b"ND00"
        assert len(peer.seen) == 2
        assert peer.seen[0] == peer.seen[1]
    finally:
        assert peer.transport is not None
        peer.transport.close()


async def test_udp_times_out_after_the_retry() -> None:
    peer, port = await scripted_udp_peer(drop=10)
    try:
        async with UdpTransport("127.0.0.1", port, timeout=0.1) as transport:
            with pytest.raises(HsmTimeout, match="2 attempts"):
                await transport.request(b"NC")
        assert len(peer.seen) == 2
    finally:
        assert peer.transport is not None
        peer.transport.close()


async def test_udp_concurrent_requests_get_distinct_headers() -> None:
    peer, port = await scripted_udp_peer(drop=0)
    try:
        async with UdpTransport("127.0.0.1", port) as transport:
            await asyncio.wait_for(
                asyncio.gather(*(transport.request(b"NC") for _ in range(50))), 5
            )
        headers = [d[:4] for d in peer.seen]
        assert len(set(headers)) == 50
    finally:
        assert peer.transport is not None
        peer.transport.close()


async def test_udp_refused_fails_fast_as_unavailable() -> None:
    async with UdpTransport("127.0.0.1", free_port(), timeout=2.0) as transport:
        with pytest.raises(HsmUnavailable, match="refused"):
            await asyncio.wait_for(transport.request(b"NC"), 1.5)


def test_udp_needs_a_header_to_match_answers() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        UdpTransport("127.0.0.1", 1500, header_length=0)


# --- choosing a transport -----------------------------------------------------------------


async def test_transport_from_url_inproc_answers_nc() -> None:
    transport = transport_from_url("inproc")
    assert isinstance(transport, InProcTransport)
    assert (await transport.request(b"NC")).startswith(NC_ANSWER_PREFIX)
    await close_transport(transport)


async def test_transport_from_url_tcp_and_udp(hsm: RunningHsm) -> None:
    tcp = transport_from_url(f"tcp://127.0.0.1:{hsm.port}", pool_size=2)
    udp = transport_from_url(f"udp://127.0.0.1:{hsm.udp_port}")
    assert isinstance(tcp, TcpTransport) and isinstance(udp, UdpTransport)
    transports: list[HsmTransport] = [tcp, udp]
    try:
        for t in transports:
            assert (await t.request(b"NC")).startswith(NC_ANSWER_PREFIX)
    finally:
        for t in transports:
            await close_transport(t)


def test_transport_from_url_defaults_port_1500() -> None:
    transport = transport_from_url("tcp://hsm.example")
    assert isinstance(transport, TcpTransport)
    assert (transport.host, transport.port) == ("hsm.example", 1500)


@pytest.mark.parametrize(
    "url",
    ["", "http://x:1", "tcp://", "tcp://h:notaport", "tcp://h:70000", "udp://h:1/path", "inproc2"],
)
def test_transport_from_url_rejects_bad_addresses(url: str) -> None:
    with pytest.raises(ValueError, match="bad HSM address"):
        transport_from_url(url)


def test_tcp_transport_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="pool_size"):
        TcpTransport("127.0.0.1", 1, pool_size=0)
    with pytest.raises(ValueError, match="timeout"):
        TcpTransport("127.0.0.1", 1, timeout=0)
