"""Group commit of the PostgreSQL store's new ledger rows (switch/pg_ledger.py): the commits
awaited together go in one statement, and what one of them gets wrong is its failure alone.
Balances are worked by hand from the cards' opening balances (CARD 10,000; OTHER 5,000)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg
import pytest

from switch.pg_store import PgStore
from switch.store import DuplicateTransaction, StoreError
from tests.store.contract import CARD, T1, txn

OTHER = replace(CARD, pan_ref="b" * 64, pan_masked="622202******0002", balance=5_000)


async def _outcomes(store: PgStore, commits: list[tuple[str, str, int]]) -> list[object]:
    """(STAN, card, delta) committed at once; each one's id or the exception it raised."""
    return await asyncio.gather(
        *(store.commit_financial(txn(stan, amount=-delta), balance=(ref, delta)) for stan, ref, delta in commits),
        return_exceptions=True,
    )


async def _stans(url: str) -> list[str]:
    con = await asyncpg.connect(url)
    try:
        return [r[0] for r in await con.fetch("SELECT stan FROM transactions ORDER BY stan")]
    finally:
        await con.close()


@pytest.mark.parametrize("grouped", [True, False])
async def test_one_duplicate_among_concurrent_commits_fails_alone(pg_url: str, grouped: bool) -> None:
    store = await PgStore.open(pg_url, group_commit=grouped)
    try:
        await store.put_card(CARD)
        await store.put_card(OTHER)
        await store.commit_financial(txn("000007", amount=1), balance=(CARD.pan_ref, -1))  # 10,000 - 1 = 9,999
        before = store.ledger.statements if store.ledger is not None else 0
        outcomes = await _outcomes(
            store,
            [
                ("000010", CARD.pan_ref, -100),
                ("000007", CARD.pan_ref, -999),  # its STAN is taken: refused, nothing applied
                ("000011", OTHER.pan_ref, -40),
                ("000012", CARD.pan_ref, -250),
            ],
        )
        assert isinstance(outcomes[1], DuplicateTransaction)
        assert all(isinstance(o, int) for i, o in enumerate(outcomes) if i != 1)
        assert len({o for o in outcomes if isinstance(o, int)}) == 3  # three new rows
        if store.ledger is not None:
            assert store.ledger.statements - before == 1  # the four in one statement
        card, other = await store.get_card(CARD.pan_ref), await store.get_card(OTHER.pan_ref)
        assert card is not None and card.balance == 9_999 - 100 - 250  # 9,649
        assert other is not None and other.balance == 5_000 - 40  # 4,960
        assert await _stans(pg_url) == ["000007", "000010", "000011", "000012"]
        found = await store.find_transaction(T1, "000001", "000007")
        assert found is not None and found.amount == 1  # the first row kept, not the refused one
    finally:
        await store.close()


async def test_two_rows_of_one_stan_in_one_turn_commit_once(pg_url: str) -> None:
    store = await PgStore.open(pg_url)
    try:
        await store.put_card(CARD)
        outcomes = await _outcomes(
            store, [("000020", CARD.pan_ref, -300), ("000020", CARD.pan_ref, -300), ("000021", CARD.pan_ref, -5)]
        )
        assert [type(o) for o in outcomes] == [int, DuplicateTransaction, int]
        card = await store.get_card(CARD.pan_ref)
        assert card is not None and card.balance == 10_000 - 300 - 5  # 9,695: the 300 moved once
        assert await _stans(pg_url) == ["000020", "000021"]
    finally:
        await store.close()


async def test_a_row_the_server_refuses_fails_alone_and_the_group_commits(pg_url: str) -> None:
    store = await PgStore.open(pg_url)
    try:
        await store.put_card(CARD)
        bad = replace(txn("000031", amount=700), pan_masked="622202\x00*****0001")  # NUL: refused by the server
        outcomes = await asyncio.gather(
            store.commit_financial(txn("000030", amount=100), balance=(CARD.pan_ref, -100)),
            store.commit_financial(bad, balance=(CARD.pan_ref, -700)),
            store.commit_financial(txn("000032", amount=60), balance=(CARD.pan_ref, -60)),
            return_exceptions=True,
        )
        assert isinstance(outcomes[0], int) and isinstance(outcomes[2], int)
        assert isinstance(outcomes[1], StoreError) and not isinstance(outcomes[1], DuplicateTransaction)
        card = await store.get_card(CARD.pan_ref)
        assert card is not None and card.balance == 10_000 - 100 - 60  # 9,840: the refused 700 not moved
        assert await _stans(pg_url) == ["000030", "000032"]
        assert store.ledger is not None and store.ledger.statements == 1 + 3  # the group, then one by one
    finally:
        await store.close()


async def test_close_waits_for_commits_handed_over(pg_url: str) -> None:
    store = await PgStore.open(pg_url)
    await store.put_card(CARD)
    commits = [
        asyncio.ensure_future(store.commit_financial(txn(f"00004{i}", amount=10), balance=(CARD.pan_ref, -10)))
        for i in range(5)
    ]
    await asyncio.sleep(0)  # handed over, not yet committed
    await store.close()
    assert all(isinstance(c.result(), int) for c in commits)
    assert await _stans(pg_url) == [f"00004{i}" for i in range(5)]
    with pytest.raises(StoreError, match="closed"):
        await store.commit_financial(txn("000050"), balance=(CARD.pan_ref, -1))
