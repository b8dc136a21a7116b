"""The switch over real sockets (127.0.0.1, port 0): sessions across reconnects, pipelining,
malformed frames, and the neighbours of a bad connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from specs.framing import Frame, FrameDecoder
from switch.app import RunningSwitch, serve_switch
from switch.config import DeclaredTerminal, SwitchConfig
from switch.sqlite_store import SqliteStore
from tests.switch.pos import CODEC, MERCHANT, TERMINAL, TMK, Pos


@pytest.fixture
async def switch() -> AsyncIterator[RunningSwitch]:
    config = SwitchConfig(
        host="127.0.0.1",
        port=0,
        db=":memory:",
        frame_timeout=0.5,
        terminals=(DeclaredTerminal(MERCHANT, TERMINAL, TMK),),
    )
    running = await serve_switch(config, SqliteStore(":memory:"), InProcTransport(Dispatcher(reraise_bugs=True)))
    yield running
    await running.close()


async def exchange(port: int, wires: list[bytes]) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(wires))
    await writer.drain()
    decoder = FrameDecoder(CODEC.dialect.framing)
    frames: list[bytes] = []
    while len(frames) < len(wires):
        data = await asyncio.wait_for(reader.read(65536), 5)
        assert data, "switch closed the connection early"
        decoder.feed(data)
        for event in decoder.events():
            assert isinstance(event, Frame)
            frames.append(
                b"\x00\x00"
                + (event.tpdu.to_bytes() if event.tpdu else b"")
                + (event.header.to_bytes() if event.header else b"")
                + event.body
            )
    writer.close()
    return [len(f[2:]).to_bytes(2, "big") + f[2:] for f in frames]


async def test_signin_holds_across_connections(switch: RunningSwitch) -> None:
    pos = Pos()
    [answer] = await exchange(switch.port, [pos.wire(pos.signin("004"))])
    reply = pos.read(answer)
    assert reply[39] == "00"
    pos.take_keys(reply)
    # a fresh connection, as UnionPay terminals open for every transaction
    [answer] = await exchange(switch.port, [pos.wire(pos.operator_signin("001", "0000"), mac=True)])
    reply = pos.read(answer)
    assert reply[39] == "00"
    pos.check_mac(reply)


async def test_pipelined_requests_answered_in_order(switch: RunningSwitch) -> None:
    pos = Pos()
    requests = [pos.message("0820", "301") for _ in range(20)]
    answers = await exchange(switch.port, [pos.wire(r) for r in requests])
    assert [pos.read(a)[11] for a in answers] == [r[11] for r in requests]


async def test_malformed_frame_answers_30_and_connection_lives(switch: RunningSwitch) -> None:
    pos = Pos()
    good = pos.wire(pos.message("0820", "301"))
    bad = bytearray(good)
    bad[2 + 11 + 10] = 0x0A  # first byte of field 11: not BCD
    answers = await exchange(switch.port, [bytes(bad), good])
    first, second = pos.read(answers[0]), pos.read(answers[1])
    assert first[39] == "30" and first.mti == "0830" and 11 not in first
    assert second[39] == "00"


async def test_oversized_frame_closes_only_that_connection(switch: RunningSwitch) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", switch.port)
    writer.write(b"\xff\xff")
    assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed
    pos = Pos()
    [answer] = await exchange(switch.port, [pos.wire(pos.message("0820", "301"))])
    assert pos.read(answer)[39] == "00"


async def test_unfinished_frame_times_out(switch: RunningSwitch) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", switch.port)
    writer.write(b"\x00\x40\x60")
    assert await asyncio.wait_for(reader.read(100), 5) == b""
    writer.close()


async def test_many_concurrent_terminals(switch: RunningSwitch) -> None:
    async def one(i: int) -> str:
        pos = Pos()
        [answer] = await exchange(switch.port, [pos.wire(pos.signin("003"))])
        reply = pos.read(answer)
        pos.take_keys(reply)
        return reply[39]

    assert await asyncio.gather(*(one(i) for i in range(50))) == ["00"] * 50


async def test_iso87_binary_switch_answers_network_management() -> None:
    from specs.codec import codec_for
    from specs.framing import decode_frame, encode_frame

    codec = codec_for("iso87-binary")
    config = SwitchConfig(host="127.0.0.1", port=0, db=":memory:", dialect="iso87-binary")
    running = await serve_switch(config, SqliteStore(":memory:"), InProcTransport(Dispatcher(reraise_bugs=True)))
    try:
        request = codec.message("0800", {7: "1122123456", 11: "000042", 70: "301"})
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(encode_frame(codec.dialect.framing, codec.encode(request)))
        head = await asyncio.wait_for(reader.readexactly(2), 5)
        body = await asyncio.wait_for(reader.readexactly(int.from_bytes(head, "big")), 5)
        reply = codec.decode(decode_frame(codec.dialect.framing, head + body).body)
        assert reply.mti == "0810" and reply[39] == "00" and reply[11] == "000042" and reply[70] == "301"
        writer.close()
    finally:
        await running.close()


@pytest.mark.parametrize("scheme", ["tcp", "udp"])
async def test_switch_with_remote_hsm(scheme: str) -> None:
    from hsm_sim.server import HsmServerConfig, serve_hsm
    from hsm_sim.transports.url import transport_from_url

    hsm = await serve_hsm(HsmServerConfig(port=0, udp_port=0))
    url = hsm.tcp_url if scheme == "tcp" else hsm.udp_url
    assert url is not None
    config = SwitchConfig(
        host="127.0.0.1", port=0, db=":memory:", hsm=url, terminals=(DeclaredTerminal(MERCHANT, TERMINAL, TMK),)
    )
    running = await serve_switch(config, SqliteStore(":memory:"), transport_from_url(url))
    try:
        pos = Pos()
        [answer] = await exchange(running.port, [pos.wire(pos.signin("004"))])
        reply = pos.read(answer)
        assert reply[39] == "00"
        pos.take_keys(reply)  # keys generated by the remote HSM, checked with the TMK
        [answer] = await exchange(running.port, [pos.wire(pos.operator_signin("001", "0000"), mac=True)])
        assert pos.read(answer)[39] == "00"
    finally:
        await running.close()
        await hsm.close()
