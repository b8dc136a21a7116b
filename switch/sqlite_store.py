"""SQLite store (WAL), the embedded default; run so that it never blocks the event loop.

Writes go to one writer thread (switch/sqlite_writer.py) that commits every write queued while
its previous transaction ran in one transaction (group commit), each write in a savepoint of
its own; an awaited write returns once its transaction committed. The journal is queued and
written by the same thread in batches, at most `journal_delay` (0.1 s) behind, so
`switchsim trace --follow` sees an exchange within 200 ms; a full queue drops entries with a
counted warning (`journal_dropped`), never an answer.

Reads run on the event loop against a second connection opened read-only (query_only). In WAL
mode a reader reads the last committed snapshot and never waits for the writer, a checkpoint or
another process (docs/store.md has the timing that chose this over reads in a thread); it sees
every write that was awaited before it, since each statement reads the newest commit.

":memory:" is a store in a temporary file removed on close: the writer and the readers need
two connections to one database, and a memory database is private to its connection.
The schema and its migrations are switch/sqlite_schema.py.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from specs.logs import get_logger
from specs.observer import NULL_OBSERVER, Observer
from switch import sqlite_schema
from switch.records import (
    AuditEvent,
    AuditRecord,
    Card,
    IssuedKeys,
    JournalEntry,
    Operator,
    OperatorChange,
    OperatorFailures,
    SessionKeys,
    Terminal,
    TerminalId,
    Transaction,
    TxnStatus,
)
from switch.sqlite_checkpoint import INTERVAL as CHECKPOINT_INTERVAL
from switch.sqlite_checkpoint import WAL_AUTOCHECKPOINT, Checkpointer
from switch.sqlite_schema import SCHEMA_VERSION
from switch.sqlite_writer import GroupWriter, JournalStatements
from switch.store import DuplicateTransaction, StoreError
from switch.storerows import (
    CARD_COLUMNS,
    OPERATOR_COLUMNS,
    TXN_COLUMNS,
    card_from_row,
    operator_change_columns,
    operator_from_row,
    terminal_from_row,
    txn_args,
    txn_from_row,
)

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

_log = get_logger("store")
_KEPT_KEY_SETS = 2  # the current working keys of a terminal and the ones before
JOURNAL_DELAY = 0.1  # seconds the oldest queued journal entry may wait for its batch
JOURNAL_BATCH = 4096  # entries that make a batch at once: above what JOURNAL_DELAY gathers at load
JOURNAL_QUEUE = 20_000  # entries queued at most; more are dropped (counted)

_JOURNAL_INSERT = JournalStatements(
    "journal",
    (
        "time", "direction", "merchant", "terminal", "remote", "mti", "stan", "response_code", "masked_json",
        "error", "reason", "warnings", "wire", "raw",
    ),
)


def _connect(path: str, create: bool, shown: str) -> sqlite3.Connection:
    where = Path(path)
    if where.is_dir():
        raise StoreError(f"{shown}: is a directory, not a store file")
    if not where.parent.is_dir():
        raise StoreError(f"{shown}: folder {where.parent} does not exist")
    if not create and not where.exists():
        raise StoreError(f"{shown}: no store here (this command reads a store and does not create one)")
    try:
        if create:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        else:
            # mode=rw: an existing file only, so a store deleted since the check is not re-created
            uri = f"{where.resolve().as_uri()}?mode=rw"
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout=5000")
        return db
    except sqlite3.Error as exc:
        raise StoreError(f"{shown}: cannot open the store ({exc})") from None


class SqliteStore:
    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        create: bool = True,
        shared: bool = False,
        migrate: bool = True,
        journal_batch: int = JOURNAL_BATCH,
        journal_queue: int = JOURNAL_QUEUE,
        journal_delay: float = JOURNAL_DELAY,
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
    ) -> None:
        """Open (and with `create`, make) the store at `path`; a path that cannot hold a store
        (a directory, a missing folder, a file that is not SQLite) is a `StoreError` naming it.
        Without `create` a missing store is an error: read-only commands never make one.
        `shared`: other processes serve the same file (`serve --workers`): callers cache
        nothing the store holds. Without `migrate` an older store is left as it is, for
        `upgrade` (`switchsim db upgrade`) to report what it does."""
        shown = str(path)
        self._tmp: str | None = None
        if shown == ":memory:":
            self._tmp = tempfile.mkdtemp(prefix="switchsim-store-")
            path, create = Path(self._tmp) / "store.db", True
        self.path = str(path)
        self._shared = shared
        self.observer: Observer = NULL_OBSERVER  # hears every financial commit (timed) and journal drops
        self._refused = 0  # entries the full journal queue refused, since opening
        self._lost_told = 0  # of the writer's lost rows, how many the observer has heard of
        self._burst = 0  # entries dropped since the queue last took one
        writer_db = _connect(self.path, create, shown)
        try:
            writer_db.execute("PRAGMA journal_mode=WAL")
            writer_db.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints are the checkpointer's (switch/sqlite_checkpoint.py), not a commit's.
            writer_db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
            if migrate:
                sqlite_schema.migrate(writer_db, shown)
            else:
                sqlite_schema.check_not_newer(sqlite_schema.version_of(writer_db), shown)
            self._db = _connect(self.path, False, shown)
            self._db.execute("PRAGMA query_only=1")
            checkpoint_db = _connect(self.path, False, shown)  # the checkpointer's own
        except sqlite3.DatabaseError as exc:
            writer_db.close()
            self._remove_tmp()
            raise StoreError(f"{shown}: not a switchsim store ({exc})") from None
        except StoreError:
            writer_db.close()
            self._remove_tmp()
            raise
        self._writer = GroupWriter(
            writer_db,
            _JOURNAL_INSERT,
            journal_queue=journal_queue,
            journal_batch=journal_batch,
            journal_delay=journal_delay,
            on_exit=self._remove_tmp if self._tmp else None,
        )
        self._checkpointer = Checkpointer(checkpoint_db, interval=checkpoint_interval)
        # A store nobody closed (a test) still ends its threads, writing what was queued.
        weakref.finalize(self, self._writer.stop)
        weakref.finalize(self, self._checkpointer.stop)

    def _remove_tmp(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    @property
    def shared(self) -> bool:
        return self._shared

    @property
    def commits(self) -> int:
        """Write transactions committed since opening (fewer than writes: group commit)."""
        return self._writer.commits

    async def close(self) -> None:
        self._end_drop_burst()
        await self._checkpointer.close()
        await self._writer.close()
        self._db.close()

    async def flush(self) -> None:
        """Raises `StoreError` when the write it waited for failed (its rows are counted lost)."""
        self._end_drop_burst()
        try:
            await self._writer.submit(None)
        finally:
            if self._writer.journal_lost != self._lost_told:
                self._tell_lost()

    async def schema_version(self) -> tuple[int, int]:
        """(the store's schema version, the version this switchsim writes)."""
        return sqlite_schema.version_of(self._db), SCHEMA_VERSION

    async def upgrade(self) -> tuple[int, int]:
        """Run the migrations the store is behind by; (version before, version after)."""
        moved: tuple[int, int] = await self._writer.submit(
            lambda db: sqlite_schema.migrate_in_transaction(db, self.path)
        )
        return moved

    async def _write(self, sql: str, args: Sequence[object] = ()) -> int:
        """One statement in the next group commit; the rows it changed."""
        changed: int = await self._writer.submit(lambda db: db.execute(sql, args).rowcount)
        return changed

    def _rows(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        return self._db.execute(sql, args).fetchall()

    def _row(self, sql: str, args: Sequence[object] = ()) -> Any:
        rows = self._db.execute(sql, args).fetchall()
        return rows[0] if rows else None

    # -- terminals ---------------------------------------------------------------------------

    async def put_terminal(self, terminal: Terminal) -> None:
        t = terminal
        await self._write(
            "INSERT OR REPLACE INTO terminals VALUES (?,?,?,?,?,?,?)",
            (t.id.merchant, t.id.terminal, t.tmk_lmk, t.tmk_kcv, int(t.enabled), t.batch, t.key_generation),
        )

    async def get_terminal(self, tid: TerminalId) -> Terminal | None:
        row = self._row(
            "SELECT merchant, terminal, tmk_lmk, tmk_kcv, enabled, batch, key_generation FROM terminals "
            "WHERE merchant=? AND terminal=?",
            (tid.merchant, tid.terminal),
        )
        return terminal_from_row(row) if row else None

    async def merchant_exists(self, merchant: str) -> bool:
        return self._row("SELECT 1 FROM terminals WHERE merchant=? LIMIT 1", (merchant,)) is not None

    async def list_terminals(self) -> Sequence[Terminal]:
        rows = self._rows(
            "SELECT merchant, terminal, tmk_lmk, tmk_kcv, enabled, batch, key_generation FROM terminals "
            "ORDER BY merchant, terminal"
        )
        return [terminal_from_row(r) for r in rows]

    async def set_terminal_enabled(self, tid: TerminalId, enabled: bool) -> None:
        changed = await self._write(
            "UPDATE terminals SET enabled=? WHERE merchant=? AND terminal=?",
            (int(enabled), tid.merchant, tid.terminal),
        )
        if changed == 0:
            raise StoreError(f"no terminal {tid}")

    async def set_terminal_batch(self, tid: TerminalId, batch: str) -> None:
        await self._write(
            "UPDATE terminals SET batch=? WHERE merchant=? AND terminal=?", (batch, tid.merchant, tid.terminal)
        )

    # -- cards and the ledger ----------------------------------------------------------------

    async def put_card(self, card: Card) -> None:
        c = card
        await self._write(
            f"INSERT OR REPLACE INTO cards ({CARD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                c.pan_ref,
                c.pan_masked,
                c.expiry,
                c.service_code,
                c.pin_lmk,
                c.pin_lmk_nopan,
                c.balance,
                c.limit,
                c.status.value,
                c.pin_failures,
                c.imk_ac_lmk,
                c.psn,
                c.atc,
            ),
        )

    async def get_card(self, pan_ref: str) -> Card | None:
        row = self._row(f"SELECT {CARD_COLUMNS} FROM cards WHERE pan_ref=?", (pan_ref,))
        return card_from_row(row) if row else None

    async def list_cards(self) -> Sequence[Card]:
        return [card_from_row(r) for r in self._rows(f"SELECT {CARD_COLUMNS} FROM cards ORDER BY pan_masked")]

    async def set_card_pin_failures(self, pan_ref: str, failures: int) -> None:
        await self._write("UPDATE cards SET pin_failures=? WHERE pan_ref=?", (failures, pan_ref))

    async def add_card_pin_failure(self, pan_ref: str) -> int:
        """One more wrong PIN, counted in the store (several processes count together)."""

        def job(db: sqlite3.Connection) -> int:
            rows = db.execute(
                "UPDATE cards SET pin_failures = pin_failures + 1 WHERE pan_ref=? RETURNING pin_failures", (pan_ref,)
            ).fetchall()
            if not rows:
                raise StoreError("no such card")
            return int(rows[0][0])

        failures: int = await self._writer.submit(job)
        return failures

    async def set_card_atc(self, pan_ref: str, atc: int) -> None:
        """The highest ATC accepted for a chip card (it only goes up)."""
        await self._write("UPDATE cards SET atc=MAX(atc, ?) WHERE pan_ref=?", (atc, pan_ref))

    # -- IC downloads ------------------------------------------------------------------------

    async def get_ic_version(self, tid: TerminalId, what: str) -> str | None:
        row = self._row(
            "SELECT version FROM ic_downloads WHERE merchant=? AND terminal=? AND what=?",
            (tid.merchant, tid.terminal, what),
        )
        return str(row[0]) if row else None

    async def set_ic_version(self, tid: TerminalId, what: str, version: str) -> None:
        await self._write(
            "INSERT OR REPLACE INTO ic_downloads VALUES (?,?,?,?)", (tid.merchant, tid.terminal, what, version)
        )

    async def commit_financial(
        self,
        new: Transaction | None,
        balance: tuple[str, int] | None = None,
        updates: Sequence[tuple[int, TxnStatus, int]] = (),
    ) -> int | None:
        """Record a transaction, move a card balance and update originals in ONE commit, so an
        approval the terminal sees is never lost and never half applied. A transaction whose
        (merchant, terminal, batch, STAN) is already recorded raises `DuplicateTransaction`
        and applies nothing."""
        started = time.perf_counter()
        row = txn_args(new) if new is not None else None

        def job(db: sqlite3.Connection) -> int | None:
            new_id = None
            if row is not None:
                try:
                    cur = db.execute(
                        f"INSERT INTO transactions ({TXN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row
                    )
                except sqlite3.IntegrityError:
                    merchant, terminal, batch, stan = row[:4]
                    raise DuplicateTransaction(
                        f"STAN {stan} already recorded in batch {batch} of {merchant}/{terminal}"
                    ) from None
                new_id = cur.lastrowid
            if balance is not None:
                db.execute("UPDATE cards SET balance = balance + ? WHERE pan_ref=?", (balance[1], balance[0]))
            for txn_id, status, remaining in updates:
                db.execute(
                    "UPDATE transactions SET status=?, remaining=? WHERE id=?", (status.value, remaining, txn_id)
                )
            return new_id

        new_id: int | None = await self._writer.submit(job)
        self.observer.store_commit(time.perf_counter() - started)
        return new_id

    def _one_txn(self, where: str, args: tuple[object, ...], newest: bool = False) -> Transaction | None:
        order = "DESC" if newest else "ASC"
        row = self._row(f"SELECT id, {TXN_COLUMNS} FROM transactions WHERE {where} ORDER BY id {order} LIMIT 1", args)
        return txn_from_row(row) if row else None

    async def get_transaction(self, txn_id: int) -> Transaction | None:
        return self._one_txn("id=?", (txn_id,))

    async def find_transaction(self, tid: TerminalId, batch: str, stan: str) -> Transaction | None:
        """The first request with this STAN in the batch (reversals are not transactions): the
        row the unique index holds with stan_repeat 0 (a later repeat kept from before schema 6
        is numbered 1, 2, ...). Looked up by the whole index: ordered by id, SQLite would walk
        every transaction of the terminal instead."""
        return self._one_txn(
            "merchant=? AND terminal=? AND batch=? AND stan=? AND stan_repeat=0",
            (tid.merchant, tid.terminal, batch, stan),
        )

    async def last_transaction(self, tid: TerminalId) -> Transaction | None:
        """The terminal's most recent transaction, in any batch (a STAN that went backwards)."""
        return self._one_txn("merchant=? AND terminal=?", (tid.merchant, tid.terminal), newest=True)

    async def find_preauth(self, tid: TerminalId, auth_code: str) -> Transaction | None:
        where = "merchant=? AND terminal=? AND auth_code=? AND kind='preauth'"
        return self._one_txn(where, (tid.merchant, tid.terminal, auth_code), newest=True)

    async def last_rrn_sequence(self, day: str, worker: int) -> int:
        """The newest by id, not the highest: after a wrap past 999999 the newest is where the
        sequence goes on. Read once, when a switch starts: no index, a scan from the end."""
        row = self._row(
            "SELECT substr(rrn, 6, 6) FROM transactions WHERE rrn GLOB ? ORDER BY id DESC LIMIT 1",
            (f"{day}{'[0-9]' * 6}{worker}",),
        )
        return int(row[0]) if row else 0

    async def batch_totals(self, tid: TerminalId, batch: str) -> tuple[int, int, int, int]:
        """(debit amount, debit count, credit amount, credit count) of the open batch."""
        rows = self._rows(
            "SELECT kind, COUNT(*), COALESCE(SUM(amount), 0) FROM transactions WHERE merchant=? AND terminal=? "
            "AND batch=? AND status='approved' AND kind IN ('purchase','completion','refund') GROUP BY kind",
            (tid.merchant, tid.terminal, batch),
        )
        debit_amount = debit_count = credit_amount = credit_count = 0
        for kind, count, amount in rows:
            if kind == "refund":
                credit_amount, credit_count = credit_amount + amount, credit_count + count
            else:
                debit_amount, debit_count = debit_amount + amount, debit_count + count
        return debit_amount, debit_count, credit_amount, credit_count

    # -- operators ---------------------------------------------------------------------------

    async def put_operator(self, operator: Operator) -> None:
        o = operator
        await self._write(
            f"INSERT OR REPLACE INTO operators ({OPERATOR_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
            (
                o.terminal.merchant,
                o.terminal.terminal,
                o.operator_id,
                o.role.value,
                o.pin_lmk,
                int(o.enabled),
                int(o.locked),
                o.failures,
            ),
        )

    async def get_operator(self, tid: TerminalId, operator_id: str) -> Operator | None:
        row = self._row(
            f"SELECT {OPERATOR_COLUMNS} FROM operators WHERE merchant=? AND terminal=? AND operator=?",
            (tid.merchant, tid.terminal, operator_id),
        )
        return operator_from_row(row) if row else None

    async def list_operators(self, tid: TerminalId) -> Sequence[Operator]:
        rows = self._rows(
            f"SELECT {OPERATOR_COLUMNS} FROM operators WHERE merchant=? AND terminal=? ORDER BY operator",
            (tid.merchant, tid.terminal),
        )
        return [operator_from_row(r) for r in rows]

    async def update_operator(
        self, tid: TerminalId, operator_id: str, change: OperatorChange, *, unless_locked: bool = False
    ) -> Operator | None:
        columns = operator_change_columns(change)
        sets = ", ".join(f"{column}=?" for column, _ in columns) or "failures=failures"
        guard = " AND locked=0" if unless_locked else ""

        def job(db: sqlite3.Connection) -> Operator | None:
            rows = db.execute(
                f"UPDATE operators SET {sets} WHERE merchant=? AND terminal=? AND operator=?{guard} "
                f"RETURNING {OPERATOR_COLUMNS}",
                (*(value for _, value in columns), tid.merchant, tid.terminal, operator_id),
            ).fetchall()
            return operator_from_row(rows[0]) if rows else None

        after: Operator | None = await self._writer.submit(job)
        return after

    async def get_operator_failures(self, tid: TerminalId, operator_id: str) -> OperatorFailures | None:
        row = self._row(
            "SELECT failures, locked FROM operator_failures WHERE merchant=? AND terminal=? AND operator=?",
            (tid.merchant, tid.terminal, operator_id),
        )
        return OperatorFailures(tid, operator_id, int(row[0]), bool(row[1])) if row else None

    async def put_operator_failures(self, record: OperatorFailures) -> None:
        r = record
        await self._write(
            "INSERT OR REPLACE INTO operator_failures VALUES (?,?,?,?,?)",
            (r.terminal.merchant, r.terminal.terminal, r.operator_id, r.failures, int(r.locked)),
        )

    async def add_operator_failure(self, tid: TerminalId, operator_id: str, lock_at: int) -> Operator | None:
        """One more refused sign-in of a real operator, counted in the store, locked once the
        count reaches ``lock_at``; the operator after it (None: no such operator)."""

        def job(db: sqlite3.Connection) -> Operator | None:
            rows = db.execute(
                "UPDATE operators SET failures = failures + 1, "
                "locked = CASE WHEN failures + 1 >= ? THEN 1 ELSE locked END "
                f"WHERE merchant=? AND terminal=? AND operator=? RETURNING {OPERATOR_COLUMNS}",
                (lock_at, tid.merchant, tid.terminal, operator_id),
            ).fetchall()
            return operator_from_row(rows[0]) if rows else None

        after: Operator | None = await self._writer.submit(job)
        return after

    async def add_stranger_failure(self, tid: TerminalId, operator_id: str, lock_at: int) -> OperatorFailures:
        """The same for an operator id the terminal does not have (see OperatorFailures)."""

        def job(db: sqlite3.Connection) -> OperatorFailures:
            failures, locked = db.execute(
                "INSERT INTO operator_failures VALUES (?,?,?,1,?) "
                "ON CONFLICT (merchant, terminal, operator) DO UPDATE SET failures = failures + 1, "
                "locked = CASE WHEN failures + 1 >= ? THEN 1 ELSE locked END RETURNING failures, locked",
                (tid.merchant, tid.terminal, operator_id, int(lock_at <= 1), lock_at),
            ).fetchone()
            return OperatorFailures(tid, operator_id, int(failures), bool(locked))

        after: OperatorFailures = await self._writer.submit(job)
        return after

    async def delete_operator_failures(self, tid: TerminalId, operator_id: str) -> bool:
        changed = await self._write(
            "DELETE FROM operator_failures WHERE merchant=? AND terminal=? AND operator=?",
            (tid.merchant, tid.terminal, operator_id),
        )
        return changed > 0

    # -- sessions ----------------------------------------------------------------------------

    async def put_session(self, session: SessionKeys) -> None:
        s = session

        def job(db: sqlite3.Connection) -> None:
            _note_keys(db, s)
            db.execute(
                "INSERT OR REPLACE INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    s.terminal.merchant,
                    s.terminal.terminal,
                    s.mode,
                    s.pik_lmk,
                    s.mak_lmk,
                    s.tdk_lmk,
                    s.signed_in_at,
                    s.expires_at,
                    s.key_generation,
                    s.operator_id,
                ),
            )

        await self._writer.submit(job)

    async def get_session(self, tid: TerminalId) -> SessionKeys | None:
        row = self._row(
            "SELECT mode, pik_lmk, mak_lmk, tdk_lmk, signed_in_at, expires_at, key_generation, operator "
            "FROM sessions WHERE merchant=? AND terminal=?",
            (tid.merchant, tid.terminal),
        )
        if row is None:
            return None
        return SessionKeys(tid, row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7])

    async def delete_session(self, tid: TerminalId) -> None:
        await self._write("DELETE FROM sessions WHERE merchant=? AND terminal=?", (tid.merchant, tid.terminal))

    async def count_sessions(self, now: float) -> int:
        row = self._row("SELECT count(*) FROM sessions WHERE expires_at > ?", (now,))
        return int(row[0]) if row is not None else 0

    async def key_history(self, tid: TerminalId) -> Sequence[IssuedKeys]:
        return _key_history(self._db, tid)

    # -- audit and journal -------------------------------------------------------------------

    async def add_audit(self, record: AuditRecord) -> None:
        r = record
        await self._write(
            "INSERT INTO audit (time, event, merchant, terminal, operator, remote, result, reason) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (r.time, r.event.value, r.merchant, r.terminal, r.operator, r.remote, r.result, r.reason),
        )

    async def list_audit(self, terminal: str | None = None, since: float | None = None) -> Sequence[AuditRecord]:
        sql = "SELECT time, event, merchant, terminal, operator, remote, result, reason FROM audit WHERE 1=1"
        args: list[object] = []
        if terminal is not None:
            sql += " AND terminal=?"
            args.append(terminal)
        if since is not None:
            sql += " AND time>=?"
            args.append(since)
        rows = self._rows(sql + " ORDER BY id", args)
        return [AuditRecord(r[0], AuditEvent(r[1]), *r[2:]) for r in rows]

    @property
    def journal_dropped(self) -> int:
        """Entries refused by the full queue, and rows of a journal write that failed (logged
        by the writer as `store_write_failed`), since opening."""
        return self._refused + self._writer.journal_lost

    def add_journal(self, entry: JournalEntry) -> None:
        """Queued for the writer; when the queue is full the entry is dropped and counted, and
        the burst of drops is logged once, with its count, when the queue takes entries again."""
        if self._writer.journal_lost != self._lost_told:
            self._tell_lost()
        # What the queue's bound counts: the texts that grow with the frame (the rest are short).
        size = len(entry.masked_json) + len(entry.wire) + len(entry.raw) + len(entry.error) + len(entry.reason)
        if self._writer.queue_journal(_journal_row(entry), size):
            if self._burst:
                self._end_drop_burst()
            return
        self._burst += 1
        self._refused += 1
        self.observer.journal_dropped(1)

    def _tell_lost(self) -> None:
        """The observer hears of rows the writer lost, on the loop (the writer only counts)."""
        lost = self._writer.journal_lost
        self.observer.journal_dropped(lost - self._lost_told)
        self._lost_told = lost

    def _end_drop_burst(self) -> None:
        if self._burst:
            _log.warning(
                "journal_entries_dropped",
                dropped=self._burst,
                dropped_total=self.journal_dropped,
                reason="the journal queue was full: trace entries lost, every answer was sent",
            )
            self._burst = 0

    async def list_journal(
        self,
        terminal: str | None = None,
        last: int = 20,
        *,
        merchant: str | None = None,
        after: int | None = None,
    ) -> Sequence[JournalEntry]:
        """The last ``last`` entries (of a terminal, of a merchant), oldest first; with
        ``after``, the first ``last`` entries whose id is above it (`trace --follow`). What this
        store queued is written first, so a reader in this process sees all of it."""
        if self._writer.queued_journal():
            await self.flush()
        sql = (
            "SELECT time, direction, merchant, terminal, remote, mti, stan, response_code, masked_json, "
            "error, reason, warnings, wire, raw, id FROM journal WHERE 1=1"
        )
        args: list[object] = []
        for column, value in (("terminal", terminal), ("merchant", merchant)):
            if value is not None:
                sql += f" AND {column}=?"
                args.append(value)
        if after is not None:
            rows = self._rows(sql + " AND id>? ORDER BY id LIMIT ?", (*args, after, last))
        else:
            rows = self._rows(sql + " ORDER BY id DESC LIMIT ?", (*args, last))[::-1]
        return [_journal(r) for r in rows]


def _key_history(db: sqlite3.Connection, tid: TerminalId) -> list[IssuedKeys]:
    rows = db.execute(
        "SELECT generation, mode, pik_lmk, mak_lmk, tdk_lmk, issued_at FROM key_history "
        "WHERE merchant=? AND terminal=? ORDER BY generation DESC LIMIT ?",
        (tid.merchant, tid.terminal, _KEPT_KEY_SETS),
    ).fetchall()
    return [IssuedKeys(tid, int(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4], float(r[5])) for r in rows]


def _note_keys(db: sqlite3.Connection, s: SessionKeys) -> None:
    """Number a session's working keys when they are new (a sign-in), keeping the set before;
    run by the writer, in the session's own transaction."""
    newest = _key_history(db, s.terminal)
    if newest and (newest[0].mak_lmk, newest[0].pik_lmk) == (s.mak_lmk, s.pik_lmk):
        return  # the same keys (an operator signed in or out)
    generation = newest[0].generation + 1 if newest else 1
    where = (s.terminal.merchant, s.terminal.terminal)
    db.execute(
        "INSERT OR REPLACE INTO key_history VALUES (?,?,?,?,?,?,?,?)",
        (*where, generation, s.mode, s.pik_lmk, s.mak_lmk, s.tdk_lmk, s.signed_in_at),
    )
    db.execute(
        "DELETE FROM key_history WHERE merchant=? AND terminal=? AND generation<=?",
        (*where, generation - _KEPT_KEY_SETS),
    )


def _journal_row(e: JournalEntry) -> tuple[object, ...]:
    if not e.warnings:  # the entry is the row, up to its warnings ("" for none) and less its id
        return (*e[:11], "", e.wire, e.raw)
    return (
        e.time,
        e.direction,
        e.merchant,
        e.terminal,
        e.remote,
        e.mti,
        e.stan,
        e.response_code,
        e.masked_json,
        e.error,
        e.reason,
        json.dumps(list(e.warnings)) if e.warnings else "",
        e.wire,
        e.raw,
    )


def _journal(row: tuple[Any, ...]) -> JournalEntry:
    when, direction, merchant, terminal, remote, mti, stan, code, masked, error = row[:10]
    reason, warnings, wire, raw, row_id = row[10:]
    listed = tuple(str(w) for w in json.loads(warnings)) if warnings else ()
    return JournalEntry(
        when, direction, merchant, terminal, remote, mti, stan, code, masked, error, reason, listed, wire, raw, row_id
    )
