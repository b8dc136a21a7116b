"""Pipelined requests on one connection (real sockets, 127.0.0.1, port 0): handled side by side,
answered in arrival order, nothing handled after an answer that closes the connection, and a
repeated STAN in one burst still answered 94 with the balance moved once."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from specs.framing import Frame, FrameDecoder, encode_frame
from switch.app import RunningSwitch, serve_switch
from switch.cards import pan_ref
from switch.config import DeclaredCard, DeclaredTerminal, SwitchConfig
from switch.pg_store import PgStore
from switch.sqlite_store import SqliteStore
from switch.store import Store
from tests.switch.pos import CODEC, MERCHANT, TERMINAL, TMK, Pos
from tests.switch.test_server import logged

PAN, PIN, BALANCE = "6222021234567890123", "123456", 100_000


@asynccontextmanager
async def serving(store: Store | None = None, **settings: Any) -> AsyncIterator[RunningSwitch]:
    """A switch over ``store`` (an SQLite store in memory when None)."""
    config = SwitchConfig(
        host="127.0.0.1",
        port=0,
        db=":memory:",
        terminals=(DeclaredTerminal(MERCHANT, TERMINAL, TMK),),
        cards=(DeclaredCard(PAN, "3012", PIN, BALANCE),),
        **settings,
    )
    store = SqliteStore(":memory:") if store is None else store
    running = await serve_switch(config, store, InProcTransport(Dispatcher(reraise_bugs=True)))
    try:
        yield running
    finally:
        await running.close()


async def send(port: int, wires: list[bytes], answers: int) -> tuple[list[bytes], bool]:
    """Write ``wires`` in one write; (the first ``answers`` answers as wire frames, whether the
    switch then closed the connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(wires))
    decoder = FrameDecoder(CODEC.dialect.framing)
    frames: list[bytes] = []
    closed = False
    async with asyncio.timeout(10):
        while len(frames) < answers or not closed:
            data = await reader.read(65536)
            if not data:
                closed = True
                break
            decoder.feed(data)
            for event in decoder.events():
                assert isinstance(event, Frame) and event.tpdu is not None and event.header is not None
                frames.append(encode_frame(CODEC.dialect.framing, event.body, event.tpdu, event.header))
            if len(frames) >= answers and len(wires) == answers:
                break
    writer.close()
    return frames, closed


async def signed_in(port: int) -> Pos:
    pos = Pos()
    answers, _ = await send(port, [pos.wire(pos.signin())], 1)
    pos.take_keys(pos.read(answers[0]))
    return pos


async def test_pipelined_requests_are_handled_side_by_side_and_answered_in_arrival_order() -> None:
    # The first request is answered 0.5 s late, the three after it at once: one at a time the
    # four would take 0.5 s and keep the others waiting; side by side they are all handled at
    # once and still leave in the order they came. Four slow ones: 2 s one at a time.
    slow = {"name": "slow echo", "match": {"mti": "0820"}, "action": {"delay_ms": 500}}
    async with serving(rules=(slow,)) as running:
        pos = Pos()
        requests = [pos.message("0820", "301"), *(pos.message("0800", "003", f63="001") for _ in range(3))]
        loop = asyncio.get_running_loop()
        started = loop.time()
        answers, _ = await send(running.port, [pos.wire(r) for r in requests], len(requests))
        mixed = loop.time() - started
        assert [pos.read(a).mti for a in answers] == ["0830", "0810", "0810", "0810"]
        assert [pos.read(a)[11] for a in answers] == [r[11] for r in requests]

        echoes = [pos.message("0820", "301") for _ in range(4)]
        started = loop.time()
        answers, _ = await send(running.port, [pos.wire(r) for r in echoes], len(echoes))
        slow_four = loop.time() - started
        assert [pos.read(a)[11] for a in answers] == [r[11] for r in echoes]
    assert 0.5 <= mixed < 1.0
    assert 0.5 <= slow_four < 1.5, f"four delayed echoes took {slow_four:.2f} s: handled one at a time"


async def test_nothing_after_an_answer_that_closes_is_handled(capsys: pytest.CaptureFixture[str]) -> None:
    hang_up = {"name": "hang up", "match": {"mti": "0820"}, "action": {"close": True}}
    async with serving(rules=(hang_up,)) as running:
        pos = Pos()
        first, closing = pos.message("0800", "003", f63="001"), pos.message("0820", "301")
        after = [pos.message("0800", "003", f63="001") for _ in range(3)]
        answers, closed = await send(running.port, [pos.wire(m) for m in (first, closing, *after)], 1)
        assert closed
        assert [pos.read(a)[11] for a in answers] == [first[11]]
        entries = await running.services.store.list_journal(last=100)
    handled = {line["stan"] for line in logged(capsys.readouterr().err, "exchange")}
    assert handled == {first[11]}
    journaled = {e.stan for e in entries}
    assert closing[11] in journaled
    assert journaled.isdisjoint(m[11] for m in after)


async def burst_with_repeats(store: Store | None = None) -> None:
    async with serving(store) as running:
        pos = await signed_in(running.port)
        purchases = [pos.swiped_purchase(PAN, PIN, 1_000) for _ in range(4)]
        repeated = purchases[1]
        wires = [*purchases[:2], repeated, *purchases[2:], repeated]
        answers, _ = await send(running.port, wires, len(wires))
        codes = [pos.read(a)[39] for a in answers]
        card = await running.services.store.get_card(pan_ref(PAN))
    assert codes == ["00", "00", "94", "00", "00", "94"]
    assert card is not None and card.balance == BALANCE - 4 * 1_000


async def test_a_repeated_stan_in_one_burst_is_answered_94_and_moves_the_balance_once() -> None:
    await burst_with_repeats()


async def test_the_same_on_postgresql(pg_url: str) -> None:
    # Its group commit takes two rows of one key in one group apart (switch/pg_ledger.py).
    await burst_with_repeats(await PgStore.open(pg_url))


async def test_a_peer_gone_while_its_requests_wait_leaves_nothing_broken() -> None:
    # The peer resets the connection while its three requests wait (0.3 s each): their answers
    # have nobody to go to, no error reaches the loop, and the switch serves the next client.
    slow = {"name": "slow echo", "match": {"mti": "0820"}, "action": {"delay_ms": 300}}
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        async with serving(rules=(slow,)) as running:
            pos = Pos()
            _reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
            writer.write(b"".join(pos.wire(pos.message("0820", "301")) for _ in range(3)))
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.transport.abort()
            await asyncio.sleep(0.5)  # the requests have ended
            gc.collect()  # a task that died with an exception says so when it is collected
            assert not running.server.connections
            answers, _ = await send(running.port, [pos.wire(pos.message("0800", "003", f63="001"))], 1)
            assert pos.read(answers[0]).mti == "0810"
    finally:
        loop.set_exception_handler(None)
    assert errors == []
