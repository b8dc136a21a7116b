"""The PostgreSQL store's schema versions: installed on an empty database, never migrated
silently on opening, upgraded by `upgrade` (once, even from two processes at once)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from switch.pg_schema import MIGRATIONS, Migration, NewerSchema, SchemaBehind
from switch.pg_store import PgStore
from switch.store import StoreError
from tests.store.contract import CARD

# What a newer switchsim would add: a column on a table that has rows, and a table.
_LATER = Migration(
    2,
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
        assert await store.schema_version() == (1, 1)  # one migration so far
        assert await store.upgrade() == (1, 1)  # nothing to do
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
        assert [await s.schema_version() for s in stores] == [(1, 1), (1, 1)]
    finally:
        for s in stores:
            await s.close()
    con = await asyncpg.connect(pg_url)
    try:
        assert await con.fetchval("SELECT COUNT(*) FROM schema_version") == 1
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
    with pytest.raises(SchemaBehind, match=r"schema version 1 is behind this switchsim's \(2\).*switchsim db upgrade"):
        await NewerPgStore.open(pg_url)
    assert "notes" not in await _tables(pg_url)  # refusing did not migrate
    store = await NewerPgStore.open(pg_url, allow_behind=True)
    try:
        assert await store.schema_version() == (1, 2)
        assert await store.upgrade() == (1, 2)
        assert await store.schema_version() == (2, 2)
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
    assert sorted(results) == [(1, 2), (2, 2)]


async def test_a_newer_schema_is_refused(pg_url: str) -> None:
    await (await NewerPgStore.open(pg_url)).close()  # a newer switchsim installed version 2
    with pytest.raises(NewerSchema, match=r"schema version 2 is newer than this switchsim's \(1\)"):
        await PgStore.open(pg_url)
    with pytest.raises(NewerSchema):
        await PgStore.open(pg_url, allow_behind=True)


def test_migrations_are_numbered_in_order() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


async def test_a_gap_in_the_migrations_is_a_bug(pg_url: str) -> None:
    class Gapped(PgStore):
        migrations = (*MIGRATIONS, Migration(3, "skips 2", "SELECT 1"))

    with pytest.raises(ValueError, match="migration 3"):
        await Gapped.open(pg_url)
