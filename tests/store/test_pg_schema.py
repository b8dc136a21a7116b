"""The PostgreSQL store's schema versions: installed on an empty database, never migrated
silently on opening, upgraded by `upgrade` (once, even from two processes at once)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from switch.pg_schema import MIGRATIONS, Migration, NewerSchema, SchemaBehind
from switch.pg_store import PgStore
from switch.store import StoreError
from tests.store.contract import CARD, T1, txn

CURRENT = MIGRATIONS[-1].version  # the schema this switchsim writes
# What a newer switchsim would add: a column on a table that has rows, and a table.
_LATER = Migration(
    CURRENT + 1,
    "cards get a nickname; a table of notes",
    "ALTER TABLE cards ADD COLUMN nickname text NOT NULL DEFAULT '';"
    "CREATE TABLE notes (id bigint PRIMARY KEY, body text NOT NULL);",
)


class NewerPgStore(PgStore):
    """The store as a switchsim one schema version ahead would open it."""

    migrations = (*MIGRATIONS, _LATER)


async def _tables(url: str) -> set[str]:
    con = await asyncpg.connect(url)
    try:
        rows = await con.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    finally:
        await con.close()
    return {str(r[0]) for r in rows}


async def test_empty_database_gets_the_current_schema(pg_url: str) -> None:
    assert await _tables(pg_url) == set()
    store = await PgStore.open(pg_url)
    try:
        assert await store.schema_version() == (CURRENT, CURRENT)
        assert await store.upgrade() == (CURRENT, CURRENT)  # nothing to do
    finally:
        await store.close()
    assert await _tables(pg_url) == {
        "schema_version",
        "terminals",
        "operators",
        "operator_failures",
        "sessions",
        "key_history",
        "audit",
        "journal",
        "cards",
        "ic_downloads",
        "transactions",
    }


async def test_two_first_opens_at_once_install_once(pg_url: str) -> None:
    stores = await asyncio.gather(PgStore.open(pg_url), PgStore.open(pg_url))
    try:
        assert [await s.schema_version() for s in stores] == [(CURRENT, CURRENT)] * 2
    finally:
        for s in stores:
            await s.close()
    con = await asyncpg.connect(pg_url)
    try:
        assert await con.fetchval("SELECT COUNT(*) FROM schema_version") == CURRENT
    finally:
        await con.close()


async def test_without_create_an_empty_database_is_refused(pg_url: str) -> None:
    with pytest.raises(StoreError, match="no switchsim store"):
        await PgStore.open(pg_url, create=False)
    assert await _tables(pg_url) == set()  # nothing made


async def test_a_schema_behind_is_refused_then_upgraded(pg_url: str) -> None:
    old = await PgStore.open(pg_url)
    await old.put_card(CARD)  # a store in use: the upgrade keeps what it holds
    await old.close()
    behind = rf"schema version {CURRENT} is behind this switchsim's \({CURRENT + 1}\).*switchsim db upgrade"
    with pytest.raises(SchemaBehind, match=behind):
        await NewerPgStore.open(pg_url)
    assert "notes" not in await _tables(pg_url)  # refusing did not migrate
    store = await NewerPgStore.open(pg_url, allow_behind=True)
    try:
        assert await store.schema_version() == (CURRENT, CURRENT + 1)
        assert await store.upgrade() == (CURRENT, CURRENT + 1)
        assert await store.schema_version() == (CURRENT + 1, CURRENT + 1)
    finally:
        await store.close()
    assert "notes" in await _tables(pg_url)
    reopened = await NewerPgStore.open(pg_url)  # no longer behind
    try:
        assert await reopened.get_card(CARD.pan_ref) == CARD
    finally:
        await reopened.close()
    con = await asyncpg.connect(pg_url)
    try:
        assert await con.fetchval("SELECT nickname FROM cards") == ""
    finally:
        await con.close()


async def test_two_upgrades_at_once_take_turns(pg_url: str) -> None:
    await (await PgStore.open(pg_url)).close()
    stores = [await NewerPgStore.open(pg_url, allow_behind=True) for _ in range(2)]
    try:
        # ALTER TABLE ADD COLUMN run twice would fail: the second must find the work done
        results = await asyncio.gather(*(s.upgrade() for s in stores))
    finally:
        for s in stores:
            await s.close()
    assert sorted(results) == [(CURRENT, CURRENT + 1), (CURRENT + 1, CURRENT + 1)]


async def test_a_newer_schema_is_refused(pg_url: str) -> None:
    await (await NewerPgStore.open(pg_url)).close()  # a newer switchsim installed its version
    newer = rf"schema version {CURRENT + 1} is newer than this switchsim's \({CURRENT}\)"
    with pytest.raises(NewerSchema, match=newer):
        await PgStore.open(pg_url)
    with pytest.raises(NewerSchema):
        await PgStore.open(pg_url, allow_behind=True)


def test_migrations_are_numbered_in_order() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


async def test_a_gap_in_the_migrations_is_a_bug(pg_url: str) -> None:
    class Gapped(PgStore):
        migrations = (*MIGRATIONS, Migration(CURRENT + 2, f"skips {CURRENT + 1}", "SELECT 1"))

    with pytest.raises(ValueError, match=f"migration {CURRENT + 2}"):
        await Gapped.open(pg_url)


class FirstPgStore(PgStore):
    """The store as the switchsim of schema 1 made it."""

    migrations = MIGRATIONS[:1]


async def _plan(con: asyncpg.Connection, sql: str) -> str:
    return "\n".join(str(r[0]) for r in await con.fetch("EXPLAIN " + sql))


async def test_a_stan_lookup_on_a_table_without_statistics_uses_the_unique_key(pg_url: str) -> None:
    store = await PgStore.open(pg_url)
    try:
        await store.put_card(CARD)
        for n in range(1, 301):  # one terminal's rows, never analyzed
            await store.commit_financial(txn(f"{n:06d}"), balance=(CARD.pan_ref, -1))
    finally:
        await store.close()
    con = await asyncpg.connect(pg_url)
    try:
        t = f"merchant='{T1.merchant}' AND terminal='{T1.terminal}'"
        assert await con.fetchval("SELECT last_analyze IS NULL AND last_autoanalyze IS NULL FROM pg_stat_user_tables "
                                  "WHERE relname = 'transactions'")  # fmt: skip
        stan = await _plan(con, f"SELECT id FROM transactions WHERE {t} AND batch='000001' AND stan='000999' LIMIT 1")
        assert "txn_stan" in stan and "txn_terminal" not in stan
        newest = await _plan(con, f"SELECT id FROM transactions WHERE {t} AND id > 0 ORDER BY id DESC LIMIT 1")
        assert "txn_terminal" in newest, newest
        preauth = await _plan(con, f"SELECT id FROM transactions WHERE {t} AND auth_code='654321' AND kind='preauth'")
        assert "txn_auth" in preauth, preauth
    finally:
        await con.close()


async def test_a_schema_1_store_is_upgraded_keeping_its_rows(pg_url: str) -> None:
    first = await FirstPgStore.open(pg_url)
    try:
        await first.put_card(CARD)
        await first.commit_financial(txn("000001"), balance=(CARD.pan_ref, -2500))
    finally:
        await first.close()
    with pytest.raises(SchemaBehind, match=rf"schema version 1 is behind this switchsim's \({CURRENT}\)"):
        await PgStore.open(pg_url)
    store = await PgStore.open(pg_url, allow_behind=True)
    try:
        assert await store.upgrade() == (1, CURRENT)
        last = await store.last_transaction(T1)
        assert last is not None and last.stan == "000001"
        card = await store.get_card(CARD.pan_ref)
        assert card is not None and card.balance == 10_000 - 2500
    finally:
        await store.close()
    con = await asyncpg.connect(pg_url)
    try:
        rows = await con.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'transactions'")
        found = {str(r[0]): str(r[1]) for r in rows}
        assert sorted(found) == ["transactions_pkey", "txn_auth", "txn_stan", "txn_terminal"]
        assert found["txn_terminal"].endswith("WHERE (id > 0)")
        assert found["txn_auth"].endswith("WHERE (kind = 'preauth'::text)")
    finally:
        await con.close()
