"""HSM listeners: the connection protocol fed bytes without sockets, then end to end over real
TCP and UDP sockets on 127.0.0.1.

The LMK check value NC reports is derived here from the published test LMK pairs (the
vectors beside the checkout; XOR of the 20 pairs, then of the two halves: the algorithm hsm_sim/lmk.py
documents) and must equal the value published in simulator walkthroughs.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from functools import reduce
from typing import Any

import pytest
from structlog.testing import capture_logs

from hsm_sim.hostframe import host_frame_format
from hsm_sim.server import HsmServerConfig, RunningHsm, _Connections, _Exchange, _HsmConnection, serve_hsm
from specs.logs import get_logger
from specs.observer import NULL_OBSERVER
from tests.vectorfiles import vector_path

VECTORS = vector_path("crypto.json")
PUBLISHED_LMK_CHECK = "7B44AC1DDEE2A94B"


def _lmk_check_from_vectors() -> bytes:
    pairs = json.loads(VECTORS.read_text())["thales_test_lmk_variant"]["pairs"]
    acc = reduce(
        lambda a, b: bytes(x ^ y for x, y in zip(a, b, strict=True)),
        (bytes.fromhex(v) for v in pairs.values()),
        bytes(16),
    )
    return bytes(x ^ y for x, y in zip(acc[:8], acc[8:], strict=True)).hex().upper().encode()


LMK_CHECK = _lmk_check_from_vectors() if VECTORS.exists() else PUBLISHED_LMK_CHECK.encode()
FIRMWARE_LEN = 9
NC_ANSWER_PREFIX = b"ND00" + LMK_CHECK


def test_lmk_check_from_vectors_matches_published_value() -> None:
    assert PUBLISHED_LMK_CHECK.encode() == LMK_CHECK


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(2, "big") + body


# --- the connection protocol without sockets ----------------------------------------------


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default


class EchoHandler:
    """Answers ``code`` + ``00`` + the request fields, so the test knows each answer exactly."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def handle(self, message: bytes) -> bytes:
        self.seen.append(message)
        return message[:2] + b"00" + message[2:]


def make_connection(
    header_length: int = 4, max_frame: int = 8192
) -> tuple[_HsmConnection, FakeTransport, EchoHandler, _Connections]:
    handler = EchoHandler()
    exchange = _Exchange(handler, header_length, get_logger("test").bind(), NULL_OBSERVER)
    connections = _Connections()
    conn = _HsmConnection(exchange, host_frame_format(max_frame), connections)
    transport = FakeTransport()
    conn.connection_made(transport)
    return conn, transport, handler, connections


async def test_connection_answers_pipelined_frames_in_order_with_one_write() -> None:
    conn, transport, handler, _ = make_connection()
    conn.data_received(frame(b"AAAAE1x") + frame(b"BBBBE2yy") + frame(b"CCCCE3"))
    assert transport.writes == [
        frame(b"AAAAE100x") + frame(b"BBBBE200yy") + frame(b"CCCCE300")
    ]
    assert handler.seen == [b"E1x", b"E2yy", b"E3"]
    assert not transport.closed


async def test_connection_reassembles_frames_split_across_reads() -> None:
    conn, transport, _, _ = make_connection()
    wire = frame(b"0001NC") + frame(b"0002NC")
    for i in range(len(wire)):  # one byte at a time
        conn.data_received(wire[i : i + 1])
    assert b"".join(transport.writes) == frame(b"0001NC00") + frame(b"0002NC00")
    assert len(transport.writes) == 2  # only reads that completed a frame write


async def test_connection_header_length_zero_and_six() -> None:
    conn, transport, _, _ = make_connection(header_length=0)
    conn.data_received(frame(b"NC"))
    assert transport.writes == [frame(b"NC00")]
    conn6, transport6, _, _ = make_connection(header_length=6)
    conn6.data_received(frame(b"H12345NC"))
    assert transport6.writes == [frame(b"H12345NC00")]


async def test_connection_ignores_zero_length_keepalive() -> None:
    conn, transport, handler, _ = make_connection()
    conn.data_received(b"\x00\x00" + frame(b"0001NC"))
    assert transport.writes == [frame(b"0001NC00")]
    assert handler.seen == [b"NC"]


async def test_connection_oversized_length_closes_after_answering_earlier_frames() -> None:
    conn, transport, handler, _ = make_connection(max_frame=64)
    conn.data_received(frame(b"0001NC") + b"\x00\x41" + b"x" * 65)
    assert transport.writes == [frame(b"0001NC00")]
    assert transport.closed
    conn.data_received(frame(b"0002NC"))  # nothing more is read from a failed stream
    assert transport.writes == [frame(b"0001NC00")]
    assert handler.seen == [b"NC"]


async def test_connection_frame_shorter_than_header_closes() -> None:
    conn, transport, handler, _ = make_connection()
    conn.data_received(frame(b"00"))
    assert transport.writes == []
    assert transport.closed
    assert handler.seen == []


async def test_connection_pauses_reading_while_write_buffer_full() -> None:
    conn, transport, _, _ = make_connection()
    conn.pause_writing()
    assert transport.reading is False
    conn.resume_writing()
    assert transport.reading is True


async def test_connection_registers_and_unregisters() -> None:
    conn, _, _, connections = make_connection()
    assert len(connections) == 1
    conn.connection_lost(None)
    assert len(connections) == 0


# --- end to end over TCP ------------------------------------------------------------------


@pytest.fixture
async def hsm() -> AsyncIterator[RunningHsm]:
    running = await serve_hsm(HsmServerConfig(port=0, udp_port=0, shutdown_timeout=2.0))
    try:
        yield running
    finally:
        await running.close()


async def open_client(hsm: RunningHsm) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", hsm.port)


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    length = int.from_bytes(await reader.readexactly(2), "big")
    return await reader.readexactly(length)


def assert_nc_answer(body: bytes, header: bytes) -> None:
    assert body.startswith(header + NC_ANSWER_PREFIX)
    assert len(body) == len(header) + len(NC_ANSWER_PREFIX) + FIRMWARE_LEN


async def test_tcp_nc_answers_lmk_check_value_and_echoes_header(hsm: RunningHsm) -> None:
    reader, writer = await open_client(hsm)
    writer.write(frame(b"Q7x!NC"))
    body = await asyncio.wait_for(read_frame(reader), 2)
    assert_nc_answer(body, b"Q7x!")
    writer.close()
    await writer.wait_closed()


async def test_tcp_unknown_command_answers_67(hsm: RunningHsm) -> None:
    reader, writer = await open_client(hsm)
    writer.write(frame(b"0000XX"))
    assert await asyncio.wait_for(read_frame(reader), 2) == b"0000XY67"
    writer.close()


async def test_tcp_garbage_closes_only_that_connection(hsm: RunningHsm) -> None:
    good_reader, good_writer = await open_client(hsm)
    bad_reader, bad_writer = await open_client(hsm)
    bad_writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # "GE" declares 18245 bytes > 8192
    assert await asyncio.wait_for(bad_reader.read(), 2) == b""  # closed, and nothing said
    good_writer.write(frame(b"0001NC"))
    assert_nc_answer(await asyncio.wait_for(read_frame(good_reader), 2), b"0001")
    new_reader, new_writer = await open_client(hsm)
    new_writer.write(frame(b"0002NC"))
    assert_nc_answer(await asyncio.wait_for(read_frame(new_reader), 2), b"0002")
    for w in (good_writer, bad_writer, new_writer):
        w.close()


async def test_tcp_bad_frame_after_good_one_answers_the_good_one_then_closes(
    hsm: RunningHsm,
) -> None:
    reader, writer = await open_client(hsm)
    writer.write(frame(b"0001NC") + frame(b"00"))  # second frame cannot hold the header
    assert_nc_answer(await asyncio.wait_for(read_frame(reader), 2), b"0001")
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()


async def test_tcp_binary_junk_inside_a_frame_gets_an_error_answer(hsm: RunningHsm) -> None:
    reader, writer = await open_client(hsm)
    writer.write(frame(b"0001\xff\x00\x19") + frame(b"0002NC"))
    # No command code: the dispatcher's ZZ15; the connection lives on.
    assert await asyncio.wait_for(read_frame(reader), 2) == b"0001ZZ15"
    assert_nc_answer(await asyncio.wait_for(read_frame(reader), 2), b"0002")
    writer.close()


async def test_tcp_fifty_clients_pipelining_twenty_each(hsm: RunningHsm) -> None:
    async def client(n: int) -> None:
        reader, writer = await open_client(hsm)
        headers = [f"{n:02d}{i:02d}".encode() for i in range(20)]
        # Alternate a known answer and an error answer so a mix-up cannot go unnoticed.
        commands = [b"NC" if i % 2 == 0 else b"XX" for i in range(20)]
        writer.write(b"".join(frame(h + c) for h, c in zip(headers, commands, strict=True)))
        for h, c in zip(headers, commands, strict=True):
            body = await read_frame(reader)
            if c == b"NC":
                assert_nc_answer(body, h)
            else:
                assert body == h + b"XY67"
        writer.close()
        await writer.wait_closed()

    await asyncio.wait_for(asyncio.gather(*(client(n) for n in range(50))), 10)


async def test_tcp_close_stops_accepting_and_closes_clients() -> None:
    running = await serve_hsm(HsmServerConfig(port=0, shutdown_timeout=2.0))
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    writer.write(frame(b"0001NC"))
    assert_nc_answer(await asyncio.wait_for(read_frame(reader), 2), b"0001")
    await asyncio.wait_for(running.close(), 3)
    assert running.connection_count == 0
    assert await asyncio.wait_for(reader.read(), 2) == b""
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", running.port)
    writer.close()


async def test_tcp_unread_answers_pause_reading_and_close_aborts_the_client() -> None:
    with capture_logs() as logs:
        running = await serve_hsm(HsmServerConfig(port=0, shutdown_timeout=0.3))
        await _flood_then_close(running, lambda: sum(e["event"] == "hsm_command" for e in logs))
    events = [e["event"] for e in logs]
    assert "hsm_shutdown_timeout" in events
    assert events[-1] == "hsm_stopped"


async def _flood_then_close(running: RunningHsm, answered: Callable[[], int]) -> None:
    # Small kernel buffers on both ends (accepted sockets inherit the listener's), so that
    # what is not read piles up in the server's own write buffer, not in the kernel.
    for listener in running.sockets:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock.connect(("127.0.0.1", running.port))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    # Pipelined NCs, never reading an answer: the server must stop reading once its write
    # buffer is full, so this send never completes; close() must then give up and abort.
    sender = asyncio.create_task(loop.sock_sendall(sock, frame(b"0001NC") * 400_000))
    try:
        # Reading pauses once the server's write buffer is full: from then on no command is
        # executed while the answers sit unread. On a loaded machine filling the buffer can take
        # a while, so wait (up to 15 s) for the count to hold still for 0.3 s, then check it holds.
        first, deadline = answered(), loop.time() + 15
        while True:
            await asyncio.sleep(0.3)
            now = answered()
            if (now == first and now > 0) or loop.time() > deadline:
                break
            first = now
        assert not sender.done()
        await asyncio.sleep(0.3)
        assert answered() == first
        assert 0 < first < 400_000
        await asyncio.wait_for(running.close(), 3)
        assert running.connection_count == 0
    finally:
        sender.cancel()
        sock.close()


# --- UDP ----------------------------------------------------------------------------------


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answers: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.answers.put_nowait(data)


async def test_udp_round_trip_echoes_header(hsm: RunningHsm) -> None:
    assert hsm.udp_port is not None
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        UdpClient, remote_addr=("127.0.0.1", hsm.udp_port)
    )
    try:
        transport.sendto(b"U001NC")
        assert_nc_answer(await asyncio.wait_for(client.answers.get(), 2), b"U001")
        transport.sendto(b"U0")  # shorter than the header: dropped, nothing answered
        transport.sendto(b"U002XX")
        assert await asyncio.wait_for(client.answers.get(), 2) == b"U002XY67"
        assert client.answers.empty()
    finally:
        transport.close()


async def test_udp_oversized_datagram_is_dropped() -> None:
    running = await serve_hsm(HsmServerConfig(port=0, udp_port=0, max_frame=64))
    assert running.udp_port is not None
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        UdpClient, remote_addr=("127.0.0.1", running.udp_port)
    )
    try:
        transport.sendto(b"U001NC" + b"\x19" + b"x" * 100)
        transport.sendto(b"U002NC")
        assert_nc_answer(await asyncio.wait_for(client.answers.get(), 2), b"U002")
    finally:
        transport.close()
        await running.close()


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="header length"):
        HsmServerConfig(header_length=-1)
    with pytest.raises(ValueError, match="port"):
        HsmServerConfig(port=70000)
    with pytest.raises(ValueError, match="max_frame"):
        HsmServerConfig(max_frame=3)
