"""The switch over real sockets (127.0.0.1, port 0): sessions across reconnects, pipelining,
malformed frames, and the neighbours of a bad connection."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from specs.codec import codec_for
from specs.framing import Frame, FrameDecoder, encode_frame
from switch.app import RunningSwitch, serve_switch
from switch.config import DeclaredTerminal, SwitchConfig
from switch.server import _Connection
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


# -- connections: pipelining, flow control, deadlines, what a connection leaves behind ----------


@contextlib.asynccontextmanager
async def serving(**settings: Any) -> AsyncIterator[RunningSwitch]:
    """A switch with its own limits (the fixture's are for the quick tests above)."""
    config = SwitchConfig(host="127.0.0.1", port=0, db=":memory:", **settings)
    running = await serve_switch(config, SqliteStore(":memory:"), InProcTransport(Dispatcher(reraise_bugs=True)))
    try:
        yield running
    finally:
        await running.close()


def logged(err: str, event: str) -> list[dict[str, Any]]:
    """The JSON log lines of one event in captured stderr."""
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll for a state no event announces (a kernel buffer filling up)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


ISO87 = codec_for("iso87-binary")


def iso87_echo(stan: int, padded: tuple[int, ...], size: int) -> bytes:
    """An iso87-binary 0800 echo test whose fields `padded` carry `size` characters each."""
    fields = {7: "1122123456", 11: f"{stan:06d}", 70: "301", **{n: "X" * size for n in padded}}
    return encode_frame(ISO87.dialect.framing, ISO87.encode(ISO87.message("0800", fields)))


async def iso87_stans(recv: Callable[[], Awaitable[bytes]], count: int, timeout: float) -> list[str]:
    """Read `count` iso87-binary answers; their field 11 in arrival order."""
    decoder = FrameDecoder(ISO87.dialect.framing)
    stans: list[str] = []
    async with asyncio.timeout(timeout):
        while len(stans) < count:
            data = await recv()
            assert data, f"switch closed the connection after {len(stans)} answers"
            decoder.feed(data)
            for event in decoder.events():
                assert isinstance(event, Frame)
                answer = ISO87.decode(event.body)
                assert answer.mti == "0810" and answer[39] == "00"
                stans.append(answer[11])
    return stans


async def test_thousand_frames_in_one_write_all_answered_in_order(switch: RunningSwitch) -> None:
    pos = Pos()
    requests = [pos.message("0820", "301") for _ in range(1000)]
    answers = await exchange(switch.port, [pos.wire(r) for r in requests])
    assert [pos.read(a)[11] for a in answers] == [f"{n:06d}" for n in range(1, 1001)]


async def test_frames_before_a_framing_error_are_answered_then_closed(switch: RunningSwitch) -> None:
    pos = Pos()
    requests = [pos.message("0820", "301") for _ in range(3)]
    reader, writer = await asyncio.open_connection("127.0.0.1", switch.port)
    writer.write(b"".join(pos.wire(r) for r in requests) + b"\xff\xff")  # declares 65535 > 8 KiB
    data = await asyncio.wait_for(reader.read(), 5)  # to EOF
    decoder = FrameDecoder(CODEC.dialect.framing)
    decoder.feed(data)
    stans = [CODEC.decode(e.body)[11] for e in decoder.events() if isinstance(e, Frame)]
    assert stans == ["000001", "000002", "000003"] and decoder.buffered == 0
    writer.close()


async def test_half_closed_client_gets_every_answer(switch: RunningSwitch) -> None:
    pos = Pos()
    reader, writer = await asyncio.open_connection("127.0.0.1", switch.port)
    writer.write(b"".join(pos.wire(pos.message("0820", "301")) for _ in range(100)))
    writer.write_eof()  # sent all it will: the switch answers, then closes
    data = await asyncio.wait_for(reader.read(), 10)
    decoder = FrameDecoder(CODEC.dialect.framing)
    decoder.feed(data)
    stans = [CODEC.decode(e.body)[11] for e in decoder.events() if isinstance(e, Frame)]
    assert stans == [f"{n:06d}" for n in range(1, 101)]
    writer.close()


async def test_write_backpressure_stops_reading_and_bounds_the_write_buffer() -> None:
    # Each answer echoes 60 and 61: about 2 KB out per 2 KB in, to a client that reads nothing
    # at all (a bare socket: no stream reader buffering answers on the client's side).
    count = 400
    loop = asyncio.get_running_loop()
    async with serving(dialect="iso87-binary") as running:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow reader's small window
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", running.port))
        await until(lambda: len(running.server.connections) == 1, "the switch to accept")
        [conn] = running.server.connections
        transport = conn._transport
        # Small kernel buffers on the switch's side too, so its own buffer is what fills up.
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        stream = b"".join(iso87_echo(n, (60, 61), 999) for n in range(1, count + 1))
        sending = asyncio.create_task(loop.sock_sendall(sock, stream))
        await until(lambda: conn._flow.paused, "the switch to pause writing")
        _low, high = transport.get_write_buffer_limits()
        held = transport.get_write_buffer_size()
        assert held <= high + 2 + 8192  # the high-water mark and at most one more answer
        assert not conn._reading
        await asyncio.sleep(0.5)  # a paused switch neither answers nor reads more
        assert transport.get_write_buffer_size() == held and not conn._reading
        stans = await iso87_stans(lambda: loop.sock_recv(sock, 65536), count, 30)
        assert stans == [f"{n:06d}" for n in range(1, count + 1)]
        await sending
        sock.close()


async def test_client_that_reads_nothing_is_dropped_when_idle(capsys: pytest.CaptureFixture[str]) -> None:
    # Answers the peer never reads cannot be delivered; a graceful close would wait for ever.
    loop = asyncio.get_running_loop()
    async with serving(dialect="iso87-binary", idle_timeout=1.0) as running:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", running.port))
        await until(lambda: len(running.server.connections) == 1, "the switch to accept")
        [conn] = running.server.connections
        conn._transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        stream = b"".join(iso87_echo(n, (60, 61), 999) for n in range(1, 401))
        sending = asyncio.create_task(loop.sock_sendall(sock, stream))
        await until(lambda: conn._flow.paused, "the switch to pause writing")
        await until(lambda: not running.server.connections, "the switch to drop the connection", timeout=15)
        with contextlib.suppress(ConnectionError):
            await sending
        sock.close()
    [line] = logged(capsys.readouterr().err, "idle_timeout")
    assert line["writes_blocked"] is True


_RSS_SERVER = """
import asyncio, sys
from switch.app import serve_switch
from switch.config import SwitchConfig
from switchsim import logs

async def main():
    logs.configure("info")
    running = await serve_switch(SwitchConfig(host="127.0.0.1", port=0, db=sys.argv[1], dialect="iso87-binary"))
    print(running.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes
    await running.close()

asyncio.run(main())
"""


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
async def test_client_writing_10_mb_without_reading_costs_the_switch_under_20_mb(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", _RSS_SERVER, str(tmp_path / "switch.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert server.stdout is not None
        port = int(await asyncio.to_thread(server.stdout.readline))
        padded = (46, 47, 48, 56, 57, 58, 59, 60, 61)  # ~8 KB a frame; 60 and 61 come back
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(iso87_echo(999999, padded, 880))  # warm the switch's code paths first
        assert await iso87_stans(lambda: reader.read(65536), 1, 30) == ["999999"]
        before = rss_mb(server.pid)
        count = 1300
        stream = b"".join(iso87_echo(n, padded, 880) for n in range(1, count + 1))
        assert len(stream) >= 10_000_000
        writer.write(stream)
        await asyncio.sleep(5)  # the scenario: nothing read for 5 s
        grown = rss_mb(server.pid) - before
        assert grown < 20, f"RSS grew {grown:.1f} MB"
        stans = await iso87_stans(lambda: reader.read(65536), count, 120)
        assert stans == [f"{n:06d}" for n in range(1, count + 1)]
        writer.close()
    finally:
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def test_unfinished_frame_is_closed_at_its_deadline_whatever_trickles_in(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The real default (10 s): a byte every 2 s into a declared 8,000-byte frame.
    async with serving() as running:
        assert running.server.frame_timeout == 10
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        started = time.monotonic()
        writer.write(b"\x1f\x40\x60")  # length 8000, then the first byte of the TPDU

        async def trickle() -> None:
            while True:
                await asyncio.sleep(2)
                writer.write(b"\x00")

        dripping = asyncio.create_task(trickle())
        try:
            assert await asyncio.wait_for(reader.read(100), 15) == b""
        finally:
            dripping.cancel()
        elapsed = time.monotonic() - started
        assert 9 <= elapsed <= 11, f"closed after {elapsed:.1f} s"
        writer.close()
    [line] = logged(capsys.readouterr().err, "frame_timeout")
    assert line["level"] == "warning"


async def test_slow_frames_that_each_finish_in_time_are_answered() -> None:
    # Six frames dribbled in 12 pieces 0.3 s apart: 3.3 s in all, more than the 2 s limit, but
    # no frame takes more than 0.6 s from its first byte to its last.
    async with serving(frame_timeout=2.0) as running:
        pos = Pos()
        requests = [pos.message("0820", "301") for _ in range(6)]
        stream = b"".join(pos.wire(r) for r in requests)
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        size = -(-len(stream) // 12)
        for start in range(0, len(stream), size):
            writer.write(stream[start : start + size])
            await asyncio.sleep(0.3)
        answers = await exchange_more(reader, len(requests))
        assert [pos.read(a)[11] for a in answers] == [r[11] for r in requests]
        writer.close()


async def test_idle_time_is_not_reset_by_bytes_of_an_unfinished_frame(capsys: pytest.CaptureFixture[str]) -> None:
    async with serving(idle_timeout=2.0, frame_timeout=60.0) as running:
        pos = Pos()
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(pos.wire(pos.message("0820", "301")))
        await exchange_more(reader, 1)
        answered = time.monotonic()
        writer.write(b"\x1f\x40")

        async def trickle() -> None:
            while True:
                await asyncio.sleep(0.4)
                writer.write(b"\x00")

        dripping = asyncio.create_task(trickle())
        try:
            assert await asyncio.wait_for(reader.read(100), 10) == b""
        finally:
            dripping.cancel()
        elapsed = time.monotonic() - answered
        assert 1.5 <= elapsed <= 4, f"closed {elapsed:.1f} s after the last answer"
        writer.close()
    err = capsys.readouterr().err
    assert logged(err, "idle_timeout") and not logged(err, "frame_timeout")


async def test_frame_deadline_stands_still_while_the_switch_is_not_reading() -> None:
    # 40 echoes, each answered 1.5 s late (side by side), fill the backlog (32), so reading pauses
    # with the 41st frame half in; its deadline (0.5 s) must not run while the switch itself is
    # not reading.
    slow = {"name": "slow echo", "match": {"mti": "0820"}, "action": {"delay_ms": 1500}}
    async with serving(frame_timeout=0.5, rules=(slow,)) as running:
        pos = Pos()
        requests = [pos.message("0820", "301") for _ in range(41)]
        stream = b"".join(pos.wire(r) for r in requests)
        last = len(pos.wire(requests[-1]))
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(stream[: -last + 5])
        await asyncio.sleep(1.0)  # reading resumes with the answers, 1.5 s in
        writer.write(stream[-last + 5 :])
        answers = await exchange_more(reader, len(requests))
        assert [pos.read(a)[11] for a in answers] == [r[11] for r in requests]
        writer.close()


async def exchange_more(reader: asyncio.StreamReader, count: int, timeout: float = 15) -> list[bytes]:
    """Read `count` cup-pos answers from an open connection, as wire frames."""
    decoder = FrameDecoder(CODEC.dialect.framing)
    frames: list[bytes] = []
    async with asyncio.timeout(timeout):
        while len(frames) < count:
            data = await reader.read(65536)
            assert data, "switch closed the connection early"
            decoder.feed(data)
            for event in decoder.events():
                assert isinstance(event, Frame) and event.tpdu is not None and event.header is not None
                frames.append(encode_frame(CODEC.dialect.framing, event.body, event.tpdu, event.header))
    return frames


async def test_short_connections_leave_no_connection_objects_behind() -> None:
    pos = Pos()
    echo = pos.wire(pos.message("0820", "301"))

    async def one(kind: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        if kind == 1:  # one exchange
            writer.write(echo)
            await exchange_more(reader, 1)
        elif kind == 2:  # gone in the middle of a frame
            writer.write(echo[:7])
        elif kind == 3:  # a pipeline, then a reset without reading anything
            writer.write(echo * 50)
            writer.transport.abort()
            return
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    async with serving() as running:
        baseline = len(asyncio.all_tasks())
        for start in range(0, 2000, 100):
            await asyncio.gather(*(one(n % 4) for n in range(start, start + 100)))
        await until(lambda: not running.server.connections, "every connection to be closed")
        await until(lambda: len(asyncio.all_tasks()) <= baseline, "every worker to end")
        gc.collect()
        assert sum(isinstance(o, _Connection) for o in gc.get_objects()) == 0


@pytest.mark.parametrize(
    ("setting", "value"),
    [("max_pipeline", 0), ("max_connections", 0), ("idle_timeout", 0.0), ("frame_timeout", -1.0)],
)
async def test_limits_that_would_stall_every_connection_are_refused(setting: str, value: float) -> None:
    with pytest.raises(ValueError, match=setting):
        async with serving(**{setting: value}):
            pass
