"""The SQLite store's writer thread: group commit, a failing write alone, the journal's bounds.

Commits are counted from SQLite's own statement trace on the writer's connection, and "written"
is what another connection to the file sees: neither comes from the counters under test.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from specs.observer import NullObserver
from switch.app import build_services, register_terminal
from switch.config import SwitchConfig
from switch.engine import SwitchEngine
from switch.records import Card, JournalEntry, Transaction, TxnKind, TxnStatus
from switch.sqlite_store import SqliteStore
from switch.sqlite_writer import JournalStatements
from switch.store import DuplicateTransaction, StoreError
from tests.switch.pos import MERCHANT, TERMINAL, TMK, Pos

REF = "f" * 32


def purchase(stan: str, amount: int = 100) -> Transaction:
    return Transaction(
        MERCHANT, TERMINAL, "000001", stan, TxnKind.PURCHASE, "0200", "000000", amount, REF,
        "622202*********0123", "00", TxnStatus.APPROVED, "", "", "0101", 0.0, remaining=amount,
    )


def entry(stan: str) -> JournalEntry:
    return JournalEntry(1.0, "in", MERCHANT, TERMINAL, "test", "0200", stan, "", "{}", "")


def committed_stans(path: Path) -> list[str]:
    """What another connection sees: only committed rows."""
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT stan FROM transactions ORDER BY id")]


def journal_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM journal").fetchone()[0])


async def store_with_card(path: Path, **kw: int | float) -> SqliteStore:
    store = SqliteStore(path, **kw)  # type: ignore[arg-type]
    await store.put_card(Card(REF, "622202*********0123", "3012", "201", "A", "B", 10_000, 0))
    return store


def count_commits(store: SqliteStore) -> list[str]:
    """Every COMMIT the writer's connection runs, from SQLite's statement trace."""
    seen: list[str] = []
    store._writer._db.set_trace_callback(lambda sql: seen.append(sql) if sql == "COMMIT" else None)
    return seen


class Blocker:
    """Another connection holding the file's write lock, as another process would."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.db.execute("ROLLBACK")
        self.db.close()


async def test_writes_queued_while_a_transaction_runs_commit_together_and_return_after_it(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await store_with_card(path)
    commits = count_commits(store)
    seen_after_return: list[bool] = []

    async def buy(stan: str) -> None:
        await store.commit_financial(purchase(stan), balance=(REF, -100))
        seen_after_return.append(stan in committed_stans(path))  # committed before the caller resumed

    blocker = Blocker(path)
    tasks = [asyncio.ensure_future(buy(f"{n:06d}")) for n in range(1, 41)]
    await asyncio.sleep(0.3)  # every call is queued; the writer waits for the lock
    assert not any(t.done() for t in tasks) and committed_stans(path) == []
    blocker.release()
    await asyncio.gather(*tasks)
    assert seen_after_return == [True] * 40
    # 40 writes: the one the writer took first waited for the lock, and the 39 queued behind it
    # went in the next transaction (at most two, never 40)
    assert 1 <= len(commits) <= 2
    card = await store.get_card(REF)
    assert card is not None and card.balance == 10_000 - 40 * 100
    await store.close()


async def test_a_repeated_stan_in_a_group_fails_alone_and_applies_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await store_with_card(path)
    commits = count_commits(store)
    blocker = Blocker(path)
    stans = ["000001", "000002", "000003", "000004", "000005", "000003", "000006"]
    amounts = [100, 100, 100, 100, 100, 700, 100]
    calls = [
        asyncio.ensure_future(store.commit_financial(purchase(s, a), balance=(REF, -a)))
        for s, a in zip(stans, amounts, strict=True)
    ]
    await asyncio.sleep(0.3)
    blocker.release()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    failed = [i for i, o in enumerate(outcomes) if isinstance(o, BaseException)]
    assert failed == [5] and isinstance(outcomes[5], DuplicateTransaction)
    assert "STAN 000003" in str(outcomes[5])
    assert committed_stans(path) == ["000001", "000002", "000003", "000004", "000005", "000006"]
    card = await store.get_card(REF)
    assert card is not None and card.balance == 10_000 - 6 * 100  # the 700 of the refused one never left
    assert len(commits) <= 2
    await store.close()


async def test_a_read_does_not_wait_for_another_connections_open_write(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await store_with_card(path)
    blocker = Blocker(path)
    blocker.db.execute("UPDATE cards SET balance = 1")  # written, not committed
    started = time.perf_counter()
    card = await store.get_card(REF)
    took = time.perf_counter() - started
    blocker.release()
    # the last committed balance, at once: a reader that waited would wait busy_timeout (5 s)
    assert card is not None and card.balance == 10_000 and took < 1.0
    await store.close()


async def test_the_journal_is_written_within_200_ms_without_a_flush(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    added = time.monotonic()
    store.add_journal(entry("000001"))
    while journal_rows(path) == 0 and time.monotonic() - added < 5:
        await asyncio.sleep(0.005)
    behind = time.monotonic() - added
    assert journal_rows(path) == 1 and behind <= 0.2, behind
    await store.close()


async def test_a_full_batch_of_journal_entries_is_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path, journal_batch=5, journal_delay=60)  # the time bound out of the way
    for n in range(4):
        store.add_journal(entry(f"{n:06d}"))
    await asyncio.sleep(0.3)
    assert journal_rows(path) == 0  # 4 < 5 and far from 60 s: still queued
    store.add_journal(entry("000004"))
    deadline = time.monotonic() + 5
    while journal_rows(path) < 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    assert journal_rows(path) == 5
    await store.close()


async def test_flush_writes_every_queued_entry_and_close_flushes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path, journal_delay=60)
    store.add_journal(entry("000001"))
    store.add_journal(entry("000002"))
    await store.flush()
    assert journal_rows(path) == 2
    store.add_journal(entry("000003"))
    await store.close()
    assert journal_rows(path) == 3


class DropCounter(NullObserver):
    def __init__(self) -> None:
        self.dropped = 0

    def journal_dropped(self, count: int) -> None:
        self.dropped += count


async def test_a_full_journal_queue_drops_entries_with_one_counted_warning(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path, journal_queue=3, journal_delay=60)
    observer = store.observer = DropCounter()
    with capture_logs() as logs:
        for n in range(10):
            store.add_journal(entry(f"{n:06d}"))  # returns at once, full queue or not
        await store.flush()
    assert observer.dropped == 7 and store.journal_dropped == 7
    warnings = [e for e in logs if e["event"] == "journal_entries_dropped"]
    assert len(warnings) == 1 and warnings[0]["dropped"] == 7 and warnings[0]["log_level"] == "warning"
    kept = await store.list_journal(TERMINAL, 20)
    assert [e.stan for e in kept] == ["000000", "000001", "000002"]  # the first three, queued in time


async def test_the_journal_queue_is_bounded_by_the_text_it_holds_too(tmp_path: Path) -> None:
    # 4 MiB of queued text at most (switch/sqlite_writer.py, JOURNAL_BYTES): entries of 1.5 MiB
    # of frame hex each, so the third does not fit while the first two wait; once written, the
    # queue takes entries again.
    store = SqliteStore(tmp_path / "s.db", journal_delay=60)
    big = "A" * (3 * 2**19)
    with capture_logs():
        for n in range(5):
            store.add_journal(entry(f"{n:06d}")._replace(wire=big))
        assert store.journal_dropped == 3
        await store.flush()
        store.add_journal(entry("000009")._replace(wire=big))
        await store.flush()
    kept = await store.list_journal(TERMINAL, 20)
    assert [e.stan for e in kept] == ["000000", "000001", "000009"]
    assert all(len(e.wire) == len(big) for e in kept)
    await store.close()
    await store.close()


@pytest.mark.parametrize("batch", [1, 256])
async def test_list_journal_sees_what_this_store_queued(tmp_path: Path, batch: int) -> None:
    store = SqliteStore(tmp_path / "s.db", journal_batch=batch, journal_delay=60)
    store.add_journal(entry("000009"))
    assert [e.stan for e in await store.list_journal(TERMINAL)] == ["000009"]
    await store.close()


async def test_answers_all_leave_while_the_full_journal_queue_drops_their_entries(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", journal_queue=3, journal_delay=60)
    services = build_services(SwitchConfig(db=str(tmp_path / "s.db")), store, InProcTransport(Dispatcher()))
    await register_terminal(services, MERCHANT, TERMINAL, TMK)
    engine, pos = SwitchEngine(services), Pos()
    codes = []
    for _ in range(10):
        answer = await engine.handle(pos.frame(pos.signin()), "test")
        assert answer.wire is not None
        codes.append(pos.read(answer.wire)[39])
    assert codes == ["00"] * 10
    # 10 exchanges journal 20 entries (in and out); the queue took 3 and nothing wrote it
    assert store.journal_dropped == 17
    assert [(e.direction, e.stan) for e in await store.list_journal(TERMINAL, 20)] == [
        ("in", "000001"), ("out", "000001"), ("in", "000002")
    ]
    await store.close()


@pytest.mark.parametrize("nul", [False, True])
async def test_a_journal_batch_keeps_every_value_exactly(tmp_path: Path, nul: bool) -> None:
    # A batch is written as INSERTs of many rows of parameters (switch/sqlite_writer.py,
    # JournalStatements); these values must come back unchanged: quotes, backslashes,
    # non-ASCII, a time with all its digits, warnings, and a NUL.
    odd = 'q"uote \\ back é' + ("\x00nul" if nul else "")
    store = SqliteStore(tmp_path / "s.db", journal_delay=60)
    written = [
        JournalEntry(1764633600.123456, "in", MERCHANT, TERMINAL, "127.0.0.1:5", "0200", "000001", "", '{"a": 1}', ""),
        JournalEntry(
            1764633600.9876543, "out", MERCHANT, TERMINAL, "127.0.0.1:5", "0210", "000001", "55", "{}", odd,
            reason="bad PIN", warnings=("w1", "w2"), wire="0012AB**", raw="",
        ),
    ]
    for e in written:
        store.add_journal(e)
    await store.flush()
    kept = sorted(await store.list_journal(TERMINAL, 5), key=lambda e: e.time)
    assert [e._replace(id=None) for e in kept] == written
    await store.close()


@pytest.mark.parametrize("count", [1, 7, 300, 2500])
async def test_a_batch_of_any_size_is_written_whole_and_in_order(tmp_path: Path, count: int) -> None:
    # 7 rows go as chunks of 4, 2 and 1; 300 as 256, 32, 8 and 4; 2500 as 2048, 256, 128, 64
    # and 4: every row once, in order.
    store = SqliteStore(tmp_path / "s.db", journal_delay=60, journal_batch=5000)
    for n in range(count):
        store.add_journal(JournalEntry(1000.0 + n, "in", MERCHANT, TERMINAL, "r", "0800", f"{n:06d}", "", "{}", ""))
    await store.flush()
    kept = await store.list_journal(TERMINAL, count + 5)
    assert sorted(e.stan for e in kept) == [f"{n:06d}" for n in range(count)]
    assert [e.stan for e in sorted(kept, key=lambda e: e.id or 0)] == [f"{n:06d}" for n in range(count)]
    await store.close()


def test_a_chunk_fits_the_parameters_this_sqlite_allows() -> None:
    # 14 columns a row: the default limit (32766 since SQLite 3.32) takes 2340 rows, so the
    # 2048 of a whole chunk; an older build's 999 takes 71 rows, so 64.
    db = sqlite3.connect(":memory:")
    statements = JournalStatements("journal", tuple(f"c{i}" for i in range(14)))
    db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32766)
    assert statements.chunk(db) == 2048
    db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    assert statements.chunk(db) == 64
    assert statements.values(2).count("?") == 28


async def test_journal_rows_of_a_failed_write_are_counted_as_dropped(tmp_path: Path) -> None:
    # A write SQLite itself refuses (here a trigger that aborts every journal insert, as a full
    # disk or a broken file would): the rows are lost, logged once by the writer, and counted
    # where the queue's drops are, for `journal_dropped` and the metric.
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    observer = store.observer = DropCounter()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON journal BEGIN SELECT RAISE(ABORT, 'refused'); END")
    with capture_logs() as logs:
        for n in range(5):
            store.add_journal(entry(f"{n:06d}"))
        with pytest.raises(StoreError, match="refused"):  # what it waited for was not written
            await store.flush()
    assert store.journal_dropped == 5 and observer.dropped == 5
    assert [e["journal_rows"] for e in logs if e["event"] == "store_write_failed"] == [5]
    with sqlite3.connect(path) as db:
        db.execute("DROP TRIGGER refuse")
    store.add_journal(entry("000009"))
    await store.close()
    assert journal_rows(path) == 1 and store.journal_dropped == 5
