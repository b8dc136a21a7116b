"""The client connection over real sockets (127.0.0.1, port 0): each exchange gets its own
timeout, though the connection keeps one timer across exchanges."""

from __future__ import annotations

import asyncio
import time

import pytest

from specs.framing import FrameDecoder, FrameFormat
from terminals_sim.connection import ExchangeFailed, open_connection
from terminals_sim.outcome import Failure

FMT = FrameFormat()  # 2-byte binary length, no TPDU or header
# A 4-byte body "PING" behind its length; the host answers frame n after DELAYS[n] seconds, or
# never when it is None.
PING = b"\x00\x04PING"


async def serve(delays: list[float | None]) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder(FMT)
        index = 0
        while data := await reader.read(4096):
            decoder.feed(data)
            for _ in decoder.events():
                delay = delays[index] if index < len(delays) else None
                index += 1
                if delay is None:
                    continue
                await asyncio.sleep(delay)
                writer.write(b"\x00\x04PONG")
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_answers_that_together_take_longer_than_the_timeout_are_all_taken() -> None:
    # 20 answers of 0.05 s each: 1 s in all, each well within its own 0.5 s.
    server, port = await serve([0.05] * 20)
    conn = await open_connection("127.0.0.1", port, FMT, 5.0)
    for _ in range(20):
        frame = await conn.exchange(PING, 0.5)
        assert frame.body == b"PONG"
    conn.close()
    server.close()


async def test_an_unanswered_exchange_after_answered_ones_times_out_after_its_own_timeout() -> None:
    server, port = await serve([0.0, 0.0])
    conn = await open_connection("127.0.0.1", port, FMT, 5.0)
    for _ in range(2):
        await conn.exchange(PING, 0.3)
    started = time.monotonic()
    with pytest.raises(ExchangeFailed) as failed:
        await conn.exchange(PING, 0.3)
    elapsed = time.monotonic() - started
    assert failed.value.failure is Failure.TIMEOUT and "0.3 s" in failed.value.detail
    assert 0.3 <= elapsed < 10.0
    assert not conn.usable
    conn.close()
    server.close()


async def test_a_shorter_timeout_after_a_longer_one_is_not_held_to_the_longer() -> None:
    server, port = await serve([0.0])
    conn = await open_connection("127.0.0.1", port, FMT, 5.0)
    await conn.exchange(PING, 60.0)
    started = time.monotonic()
    with pytest.raises(ExchangeFailed) as failed:
        await conn.exchange(PING, 0.2)
    assert failed.value.failure is Failure.TIMEOUT
    assert 0.2 <= time.monotonic() - started < 30.0
    conn.close()
    server.close()
