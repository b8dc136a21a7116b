"""The SQLite store's one writer thread: group commit for awaited writes, batches for the journal.

Every write of the store is a job, a function of the write connection, queued here by an
awaiting caller; the event loop never runs a commit nor waits for a lock. The jobs of one turn
of the loop are handed over together at its end (one wake-up of the thread for all the
approvals that turn decided), and the thread takes every job handed over while its previous
transaction ran and commits them together (BEGIN IMMEDIATE ...
COMMIT), each inside a SAVEPOINT: a job that fails (a repeated STAN) is rolled back alone and
fails only its caller; the others commit. A caller's future is resolved, on its own loop, only
after the COMMIT: an answer that waits for its write leaves with it on disk.

The journal is a bounded queue of rows, written by the same thread in the next transaction once
its oldest row has waited `journal_delay` seconds or `journal_batch` rows wait, whichever comes
first, or when a flush asks for it. A full queue refuses the row (the store counts it): the
journal is a trace, and a request's answer never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from itertools import chain
from typing import Any

from specs.logs import get_logger
from switch.store import StoreError

Job = Callable[[sqlite3.Connection], Any]
_log = get_logger("store")
# The text the journal queue holds at most (masked frames and their fields, as hex and JSON),
# besides its count of rows: big frames (8 KB each) from a client that writes fast must not turn
# the queue into tens of megabytes while the thread writes; beyond it rows are dropped (counted).
JOURNAL_BYTES = 4 * 2**20
# Journal rows one INSERT takes at most (JournalStatements). Large: each statement lets go of the
# GIL once and must then win it back from a busy loop, and while this thread waits for it every
# release by the loop (each of its socket calls) wakes this thread in vain; under the iso87 load
# 256-row chunks woke it about 2,500 times a second and the loop ~380 times, 2048-row chunks
# (with the batch bound by time, sqlite_store.JOURNAL_BATCH) about 990 and ~80.
JOURNAL_CHUNK = 2048


@dataclass(frozen=True, slots=True)
class JournalStatements:
    """How the thread writes journal rows: ``INSERT INTO <table> (<columns>) VALUES`` with many
    rows of parameters, in chunks of a power of two rows (so a few statements are prepared,
    then cached). Each chunk is bound in C and stepped once: the thread lets go of the GIL once
    a chunk, where ``executemany`` lets go for every row and each time waits for a busy loop's
    switch interval to take it back; and the values go as parameters, not as one JSON text,
    whose parsing by SQLite cost three times the insert (bench/journalwire.py)."""

    table: str
    columns: tuple[str, ...]

    def values(self, rows: int) -> str:
        """The statement that inserts ``rows`` rows."""
        return _values_sql(self.table, self.columns, rows)

    def chunk(self, db: sqlite3.Connection) -> int:
        """The most rows one statement takes: JOURNAL_CHUNK, or fewer where this SQLite allows
        fewer parameters (999 before 3.32), a power of two either way."""
        fits = max(1, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(self.columns))
        rows = 1
        while rows * 2 <= min(JOURNAL_CHUNK, fits):
            rows *= 2
        return rows


@cache
def _values_sql(table: str, columns: tuple[str, ...], rows: int) -> str:
    row = f"({', '.join('?' * len(columns))})"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * rows)}"


@dataclass(slots=True)
class _Pending:
    job: Job | None  # None: a flush (the journal rows queued before it are written)
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class GroupWriter:
    """The thread that owns the write connection ``db`` (opened, migrated, handed over)."""

    def __init__(
        self,
        db: sqlite3.Connection,
        journal_sql: JournalStatements,
        *,
        journal_queue: int,
        journal_batch: int,
        journal_delay: float,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._journal_sql = journal_sql
        self._chunk = journal_sql.chunk(db)
        self._limit, self._batch, self._delay = journal_queue, journal_batch, journal_delay
        self._on_exit = on_exit
        self._lock = threading.Lock()  # taken bare where only the queue is touched (queue_journal)
        self._cond = threading.Condition(self._lock)
        self._jobs: list[_Pending] = []
        self._staged: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}  # this turn's, by loop
        self._rows: list[tuple[object, ...]] = []
        self._row_bytes = 0  # the text the queued rows hold (see JOURNAL_BYTES)
        self._oldest = 0.0  # time.monotonic() of the oldest queued row
        self._stopping = False
        self._closed = False  # the thread took its last jobs: nothing more is run
        self.commits = 0  # transactions committed: how well writes were grouped
        # journal rows of a group whose write failed, lost (counted by this thread alone)
        self.journal_lost = 0
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._thread.start()

    # -- the loop's side ------------------------------------------------------------------------

    async def submit(self, job: Job | None) -> Any:
        """Run ``job`` in the next transaction; its value once that transaction committed, or
        the exception it raised (nothing of it applied). The jobs submitted in one turn of the
        loop are handed to the thread together, at the end of the turn."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._stopping:
            raise StoreError("the store is closed")
        staged = self._staged.get(loop)
        if staged is None:
            staged = self._staged[loop] = []
            loop.call_soon(self._hand_over, loop)
        staged.append(_Pending(job, future, loop))
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        staged = self._staged.pop(loop, None)
        if not staged:
            return
        with self._cond:
            if not self._closed:
                self._jobs += staged
                self._cond.notify()
                return
        _resolve(staged, [(False, StoreError("the store is closed"))] * len(staged))

    def queue_journal(self, row: tuple[object, ...], size: int) -> bool:
        """Queue one journal row of ``size`` characters of text; False when the queue is full
        (or the store closed)."""
        with self._lock:  # the condition's lock, without its Python-level __enter__
            waiting = len(self._rows)
            full = waiting >= self._limit or (waiting and self._row_bytes + size > JOURNAL_BYTES)
            if full or self._stopping:
                return False
            self._rows.append(row)
            self._row_bytes += size
            if waiting == 0:
                self._oldest = time.monotonic()
                self._cond.notify()  # the thread starts the row's clock
            elif waiting + 1 >= self._batch:
                self._cond.notify()
        return True

    def queued_journal(self) -> int:
        with self._cond:
            return len(self._rows)

    async def close(self) -> None:
        """Write everything queued, stop the thread and close the connection."""
        self._hand_over(asyncio.get_running_loop())  # this turn's writes go first
        self.stop()
        await asyncio.to_thread(self._thread.join)

    def stop(self) -> None:
        """Ask the thread to write what is queued and end (it does not wait)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                jobs, rows, last = self._next()
                if jobs and rows and all(p.job is not None for p in jobs):
                    # The writes commit and their callers answer first: an approval does not
                    # wait for a batch of journal rows (a flush does: it waits for them).
                    _resolve(jobs, self._transaction(jobs, []))
                    jobs = []
                outcomes = self._transaction(jobs, rows) if jobs or rows else []
                _resolve(jobs, outcomes)
                if last:
                    return
        finally:
            self._db.close()
            if self._on_exit is not None:
                self._on_exit()

    def _next(self) -> tuple[list[_Pending], list[tuple[object, ...]], bool]:
        """Wait for work: the jobs queued, the journal rows due, and whether to stop after them."""
        with self._cond:
            while not (self._jobs or self._stopping or self._journal_due()):
                self._cond.wait(self._oldest + self._delay - time.monotonic() if self._rows else None)
            jobs, self._jobs = self._jobs, []
            flush = self._stopping or any(p.job is None for p in jobs) or self._journal_due()
            rows: list[tuple[object, ...]] = []
            if flush:
                rows, self._rows, self._row_bytes = self._rows, [], 0
            self._closed = self._stopping
            return jobs, rows, self._stopping

    def _journal_due(self) -> bool:
        return bool(self._rows) and (
            len(self._rows) >= self._batch or time.monotonic() - self._oldest >= self._delay
        )

    def _transaction(self, jobs: list[_Pending], rows: list[tuple[object, ...]]) -> list[tuple[bool, Any]]:
        """Commit the group. First without savepoints: every statement costs the GIL twice, and
        a busy loop hands it back only at its switch interval, so the usual group (where nothing
        fails) runs as few as it can; when a job fails, the group is rolled back and run again
        with a savepoint per job, so that the failure is that job's alone."""
        try:
            outcomes = self._attempt(jobs, rows, isolated=False)
            if outcomes is None:
                outcomes = self._attempt(jobs, rows, isolated=True)
        except sqlite3.Error as exc:
            _log.error("store_write_failed", writes=len(jobs), journal_rows=len(rows), error=str(exc))
            self.journal_lost += len(rows)
            return [(False, StoreError(f"store write failed: {exc}")) for _ in jobs]
        assert outcomes is not None
        self.commits += 1
        return outcomes

    def _attempt(
        self, jobs: list[_Pending], rows: list[tuple[object, ...]], *, isolated: bool
    ) -> list[tuple[bool, Any]] | None:
        """One transaction of the group, committed; None when a job failed (not ``isolated``:
        the transaction is rolled back whole)."""
        db = self._db
        outcomes: list[tuple[bool, Any]] = []
        db.execute("BEGIN IMMEDIATE")  # waits here (busy_timeout) for another process, not on the loop
        try:
            for pending in jobs:
                if isolated:
                    outcomes.append(_savepoint(db, pending.job))
                elif pending.job is not None:
                    try:
                        outcomes.append((True, pending.job(db)))
                    except Exception:
                        if db.in_transaction:
                            db.execute("ROLLBACK")
                        return None
                else:
                    outcomes.append((True, None))
            if rows:
                self._write_journal(rows)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return outcomes

    def _write_journal(self, rows: list[tuple[object, ...]]) -> None:
        at = 0
        while at < len(rows):
            size = self._chunk
            while size > len(rows) - at:
                size //= 2
            self._db.execute(self._journal_sql.values(size), list(chain.from_iterable(rows[at : at + size])))
            at += size


def _savepoint(db: sqlite3.Connection, job: Job | None) -> tuple[bool, Any]:
    if job is None:
        return True, None
    db.execute("SAVEPOINT job")
    try:
        value = job(db)
    except Exception as exc:
        db.execute("ROLLBACK TO job")  # only this job's changes; the transaction goes on
        db.execute("RELEASE job")
        return False, exc
    db.execute("RELEASE job")
    return True, value


def _resolve(jobs: list[_Pending], outcomes: list[tuple[bool, Any]]) -> None:
    """Each caller's outcome, on its loop: one wake-up per loop for the whole group."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for pending, (ok, value) in zip(jobs, outcomes, strict=True):
        by_loop.setdefault(pending.loop, []).append((pending.future, ok, value))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in settled:
        if future.done():  # the caller was cancelled
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
