"""The SQLite store's checkpoints run in their own thread, never inside a commit.

What a checkpoint did is read off the files: pages move from the WAL into the database file
only when one runs, so the database file's size tells, without asking the code under test.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from structlog.testing import capture_logs

from switch.records import JournalEntry
from switch.sqlite_store import SqliteStore
from tests.switch.pos import MERCHANT, TERMINAL

MB = 2**20


async def write_journal(store: SqliteStore, megabytes: int) -> int:
    """About ``megabytes`` of journal rows (2 KB of wire each), flushed a few hundred at a time
    so that the queue's own bound drops none; the rows written."""
    rows = megabytes * MB // 2048
    for start in range(0, rows, 500):
        for n in range(start, min(rows, start + 500)):
            entry = JournalEntry(1.0, "in", MERCHANT, TERMINAL, "t", "0200", f"{n:06d}", "", "{}", "", wire="A" * 2048)
            store.add_journal(entry)
        await store.flush()
    return rows


def journal_count(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM journal").fetchone()[0])


async def test_commits_past_a_thousand_pages_of_wal_leave_the_database_file_as_it_was(tmp_path: Path) -> None:
    # SQLite's own checkpoint would run in the commit that takes the WAL past 1,000 pages (4 MB):
    # with the checkpointer held off, 8 MB of commits must all still be in the WAL.
    path = tmp_path / "s.db"
    store = SqliteStore(path, checkpoint_interval=3600)
    try:
        before = path.stat().st_size
        rows = await write_journal(store, 8)
        assert (tmp_path / "s.db-wal").stat().st_size > 8 * MB
        assert path.stat().st_size == before
        assert journal_count(path) == rows  # every commit is there for a reader, from the WAL
    finally:
        await store.close()


async def test_the_checkpointer_moves_the_wal_into_the_database_file_while_the_store_is_written(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path, checkpoint_interval=0.05)
    try:
        await write_journal(store, 8)
        deadline = time.monotonic() + 10
        while path.stat().st_size < 8 * MB and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert path.stat().st_size >= 8 * MB
    finally:
        await store.close()


async def test_the_wal_stays_bounded_under_a_long_write_load(tmp_path: Path) -> None:
    # Checkpointed while written, the WAL is reused from its start instead of growing with the
    # store: 24 MB of journal in a WAL that ends far smaller.
    path = tmp_path / "s.db"
    store = SqliteStore(path, checkpoint_interval=0.05)
    try:
        for _ in range(6):
            await write_journal(store, 4)
            await asyncio.sleep(0.2)  # a round of the checkpointer between bursts
        assert path.stat().st_size >= 20 * MB
        assert (tmp_path / "s.db-wal").stat().st_size < 12 * MB
    finally:
        await store.close()


async def test_two_stores_on_one_file_checkpoint_side_by_side_without_a_failure(tmp_path: Path) -> None:
    # A switch and its journal process (docs/store.md), or two workers: each store runs a
    # checkpointer on the same file. A PASSIVE checkpoint that meets the other's reports it in
    # its result row, so neither logs a failure, and together they keep the WAL bounded.
    path = tmp_path / "s.db"
    first = SqliteStore(path, checkpoint_interval=0.05)
    second = SqliteStore(path, create=False, checkpoint_interval=0.05)
    try:
        with capture_logs() as logs:
            for _ in range(6):
                written = await asyncio.gather(write_journal(first, 2), write_journal(second, 2))
                await asyncio.sleep(0.2)
        assert not [e for e in logs if e["event"] == "store_checkpoint_failed"]
        assert journal_count(path) == 6 * sum(written)
        assert path.stat().st_size >= 20 * MB
        assert (tmp_path / "s.db-wal").stat().st_size < 12 * MB
    finally:
        await second.close()
        await first.close()
