"""switch/turns.py without sockets: one holder per key, first come first, cancellation safe."""

from __future__ import annotations

import asyncio

from switch.turns import Turns


async def test_takers_of_one_key_go_in_the_order_they_asked_others_never_wait() -> None:
    turns: Turns[str] = Turns()
    order: list[str] = []

    async def request(name: str, key: str, hold: float) -> None:
        await turns.take(key)
        try:
            order.append(f"{name} in")
            await asyncio.sleep(hold)
            order.append(f"{name} out")
        finally:
            turns.give_back(key)

    await asyncio.gather(
        request("a", "k", 0.05), request("b", "k", 0.0), request("c", "other", 0.01), request("d", "k", 0.0)
    )
    assert order == ["a in", "c in", "c out", "a out", "b in", "b out", "d in", "d out"]
    assert not turns.held("k") and not turns.held("other")


async def test_a_cancelled_waiter_is_skipped() -> None:
    turns: Turns[str] = Turns()
    await turns.take("k")
    cancelled = asyncio.ensure_future(turns.take("k"))
    after = asyncio.ensure_future(turns.take("k"))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    turns.give_back("k")  # passes over the cancelled one
    await asyncio.wait_for(after, 1)
    assert cancelled.cancelled()
    turns.give_back("k")
    assert not turns.held("k")


async def test_a_turn_handed_over_as_its_taker_is_cancelled_is_passed_on() -> None:
    turns: Turns[str] = Turns()
    await turns.take("k")
    unlucky = asyncio.ensure_future(turns.take("k"))
    after = asyncio.ensure_future(turns.take("k"))
    await asyncio.sleep(0)
    turns.give_back("k")  # unlucky's turn comes ...
    unlucky.cancel()  # ... and it is cancelled before it runs again: it must not keep the key
    await asyncio.wait_for(after, 1)
    assert unlucky.cancelled()
    turns.give_back("k")
    assert not turns.held("k")
