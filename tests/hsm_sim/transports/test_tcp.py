"""TcpTransport against the real server and against scripted peers, over real sockets."""

from __future__ import annotations

import asyncio

import pytest

from hsm_sim.server import HsmServerConfig, RunningHsm, serve_hsm
from hsm_sim.transports.interface import HsmProtocolError, HsmTimeout, HsmTransportError, HsmUnavailable
from hsm_sim.transports.tcp import TcpTransport
from tests.hsm_sim.transports.peers import NC_ANSWER_PREFIX, frame, free_port, read_frame, scripted_tcp_peer

# --- against the real server --------------------------------------------------------------


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


def test_tcp_transport_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="pool_size"):
        TcpTransport("127.0.0.1", 1, pool_size=0)
    with pytest.raises(ValueError, match="timeout"):
        TcpTransport("127.0.0.1", 1, timeout=0)
