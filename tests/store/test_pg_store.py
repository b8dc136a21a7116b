"""What only the PostgreSQL store does: two stores (two pools, as two processes have) sharing
one database, its journal queue's bound, and its errors at the driver's edge."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest

from switch.pg_store import PgStore
from switch.records import OperatorFailures
from switch.store import DuplicateTransaction, StoreError
from tests.pgserver import PgServer
from tests.store.contract import CARD, T1, TERMINAL, audit, entry, operator, session, txn


async def test_two_stores_see_each_other_and_count_together(pg_url: str) -> None:
    a, b = await PgStore.open(pg_url), await PgStore.open(pg_url)
    try:
        assert a.shared and b.shared
        await a.put_terminal(TERMINAL)
        assert await b.get_terminal(T1) == TERMINAL
        await b.put_session(session("A"))
        assert await a.get_session(T1) == session("A")
        await a.put_card(CARD)
        await a.put_operator(operator("01"))
        # ten refused sign-ins (and wrong PINs) on each "process", at once: twenty counted
        ops, strangers, pins = await asyncio.gather(
            asyncio.gather(*(store.add_operator_failure(T1, "01", 5) for store in (a, b) for _ in range(10))),
            asyncio.gather(*(store.add_stranger_failure(T1, "42", 5) for store in (a, b) for _ in range(10))),
            asyncio.gather(*(store.add_card_pin_failure(CARD.pan_ref) for store in (a, b) for _ in range(10))),
        )
        assert sorted(o.failures for o in ops if o is not None) == list(range(1, 21))
        assert sorted(r.failures for r in strangers) == list(range(1, 21))
        assert sorted(pins) == list(range(1, 21))
        op = await b.get_operator(T1, "01")
        assert op is not None and (op.failures, op.locked) == (20, True)
        assert await a.get_operator_failures(T1, "42") == OperatorFailures(T1, "42", 20, True)
        card = await b.get_card(CARD.pan_ref)
        assert card is not None and card.pin_failures == 20
    finally:
        await a.close()
        await b.close()


async def test_a_stan_used_on_one_store_is_a_duplicate_on_the_other(pg_url: str) -> None:
    a, b = await PgStore.open(pg_url), await PgStore.open(pg_url)
    try:
        await a.put_card(CARD)

        async def buy(store: PgStore) -> bool:
            try:
                await store.commit_financial(txn("000031"), balance=(CARD.pan_ref, -2500))
            except DuplicateTransaction:
                return False
            return True

        won = await asyncio.gather(*(buy(s) for s in (a, b, a, b)))
        assert sorted(won) == [False, False, False, True]
        card = await b.get_card(CARD.pan_ref)
        assert card is not None and card.balance == 7500
        # the journal of one is read by the other once written
        a.add_journal(entry("000031"))
        await a.flush()
        assert [e.stan for e in await b.list_journal()] == ["000031"]
    finally:
        await a.close()
        await b.close()


async def test_a_full_journal_queue_drops_and_counts(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = await PgStore.open(pg_url, journal_capacity=5)
    try:
        for n in range(1, 9):  # no await in between: the writer cannot take any yet
            store.add_journal(entry(f"{n:06d}"))
        assert store.journal_dropped == 3
        await store.flush()
        assert [e.stan for e in await store.list_journal()] == [f"{n:06d}" for n in range(1, 6)]
    finally:
        await store.close()
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "journal_entries_dropped" in line]
    assert logged and logged[0]["dropped"] == 1 and logged[0]["level"] == "warning"


async def test_a_journal_value_the_server_refuses_loses_only_its_entry(pg_url: str) -> None:
    store = await PgStore.open(pg_url)
    try:
        store.add_journal(entry("000001"))
        store.add_journal(entry("000002")._replace(error="garbage \x00 byte"))  # text cannot hold NUL
        store.add_journal(entry("000003"))
        await store.flush()
        assert [e.stan for e in await store.list_journal()] == ["000001", "000003"]
        assert store.journal_dropped == 1
    finally:
        await store.close()


async def test_a_value_refused_elsewhere_is_a_store_error(pg_url: str) -> None:
    store = await PgStore.open(pg_url)
    try:
        with pytest.raises(StoreError, match="CharacterNotInRepertoire"):
            await store.add_audit(replace(audit(1.5, T1), reason="bad \x00"))
        await store.add_audit(audit(2.5, T1))  # the pool is still fine
        assert [r.time for r in await store.list_audit()] == [2.5]
    finally:
        await store.close()


async def test_close_twice_and_use_after_close(pg_url: str) -> None:
    store = await PgStore.open(pg_url)
    await store.close()
    await store.close()
    with pytest.raises(StoreError):
        await store.get_terminal(T1)


async def test_an_unreachable_server_is_a_store_error_without_the_password(pg_server: PgServer) -> None:
    url = f"postgresql://someone:s3cret@127.0.0.1:{pg_server.port}/no_such_database"
    with pytest.raises(StoreError) as refused:
        await PgStore.open(url)
    assert "s3cret" not in str(refused.value) and "someone:***@" in str(refused.value)
    closed = "postgresql://someone:s3cret@127.0.0.1:1/x"  # nothing listens on port 1
    with pytest.raises(StoreError, match="cannot open the store") as unreachable:
        await PgStore.open(closed)
    assert "s3cret" not in str(unreachable.value)
