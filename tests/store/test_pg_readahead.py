"""The PostgreSQL store's read-ahead (PgStore.get_terminal): the session and the newest
transaction read with the terminal answer the same task's next calls without a round trip,
once each, and nothing else: another task, another call to the server in between, or a journal
entry (an exchange's start or end) asks the server again and sees what another process wrote."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager

import pytest

from switch.pg_driver import Connection
from switch.pg_store import PgStore
from tests.store.contract import CARD, T1, T2, TERMINAL, entry, session, txn


class Counting:
    """Counts the store's trips to its pool (every statement takes a connection)."""

    def __init__(self, store: PgStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.trips = 0
        inner = store._con

        def con() -> AbstractAsyncContextManager[Connection]:
            self.trips += 1
            return inner()

        monkeypatch.setattr(store, "_con", con)


async def _two(url: str) -> tuple[PgStore, PgStore]:
    a, b = await PgStore.open(url), await PgStore.open(url)
    await a.put_terminal(TERMINAL)
    await a.put_card(CARD)
    await a.put_session(session("A"))
    await a.commit_financial(txn("000005"), balance=(CARD.pan_ref, -2500))
    return a, b


async def test_the_session_and_newest_row_come_with_the_terminal(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = await _two(pg_url)
    try:
        count = Counting(a, monkeypatch)
        assert await a.get_terminal(T1) == TERMINAL
        assert await a.get_session(T1) == session("A")
        last = await a.last_transaction(T1)
        assert last is not None and last.stan == "000005"
        assert count.trips == 1  # three answers, one statement
        assert await a.get_session(T1) == session("A")  # once each: this one asks the server
        assert count.trips == 2
        assert await a.get_session(T2) is None  # another terminal is never answered from it
    finally:
        await a.close()
        await b.close()


async def test_a_terminal_with_no_session_and_no_rows(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await PgStore.open(pg_url)
    try:
        await store.put_terminal(TERMINAL)
        count = Counting(store, monkeypatch)
        assert await store.get_terminal(T1) == TERMINAL
        assert await store.get_session(T1) is None
        assert await store.last_transaction(T1) is None
        assert count.trips == 1
        assert await store.get_terminal(T2) is None  # unknown: nothing read ahead
        assert await store.get_session(T2) is None
        assert count.trips == 3
    finally:
        await store.close()


async def test_another_task_and_later_calls_see_another_process_s_sign_in(pg_url: str) -> None:
    a, b = await _two(pg_url)
    try:
        await a.get_terminal(T1)
        await b.put_session(session("B"))  # the terminal signs in through another process
        assert await asyncio.create_task(a.get_session(T1)) == session("B")  # another task asks the server
        assert await a.get_session(T1) == session("A")  # this task: as if it had asked first
        await a.get_terminal(T1)
        await b.put_session(session("C"))
        await a.get_card(CARD.pan_ref)  # another call in between: the read-ahead is dropped
        assert await a.get_session(T1) == session("C")
        await a.get_terminal(T1)
        await b.put_session(session("D"))
        a.add_journal(entry("000006"))  # the exchange ended
        assert await a.get_session(T1) == session("D")
        await a.get_terminal(T1)
        await b.commit_financial(txn("000007"), balance=(CARD.pan_ref, -2500))
        await a.commit_financial(txn("000008"), balance=(CARD.pan_ref, -2500))  # a write of its own
        last = await a.last_transaction(T1)
        assert last is not None and last.stan == "000008"
    finally:
        await a.close()
        await b.close()
