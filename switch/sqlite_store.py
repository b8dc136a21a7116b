"""SQLite store (WAL), the embedded default. Schema versioned with PRAGMA user_version.

Journal lines are buffered and written in one transaction per flush: the journal is a trace,
not the ledger, and one commit per message would dominate a sign-in's cost. A flush happens
when 256 lines wait or, inside a running event loop, 0.1 s after the first of them was added,
whichever comes first: `switchsim trace --follow` sees an exchange within 200 ms.

An older store is brought up to date when it is opened: `_ADDED_COLUMNS` holds, for each schema
version, the columns it added to tables of the version before (new tables come from `_SCHEMA`).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from specs.observer import NULL_OBSERVER, Observer
from switch.records import (
    AuditEvent,
    AuditRecord,
    Card,
    CardStatus,
    IssuedKeys,
    JournalEntry,
    Operator,
    OperatorFailures,
    Role,
    SessionKeys,
    Terminal,
    TerminalId,
    Transaction,
    TxnKind,
    TxnStatus,
)
from switch.store import StoreError

SCHEMA_VERSION = 5  # 3: operator_failures; 4: journal reason, warnings and wire; key_history; 5: chip cards

#: Columns each schema version added to a table of the version before: (table, column, type).
_ADDED_COLUMNS: dict[int, tuple[tuple[str, str, str], ...]] = {
    4: (
        ("journal", "reason", "TEXT NOT NULL DEFAULT ''"),
        ("journal", "warnings", "TEXT NOT NULL DEFAULT ''"),
        ("journal", "wire", "TEXT NOT NULL DEFAULT ''"),
        ("journal", "raw", "TEXT NOT NULL DEFAULT ''"),
    ),
    5: (
        ("cards", "imk_ac_lmk", "TEXT NOT NULL DEFAULT ''"),
        ("cards", "psn", "TEXT NOT NULL DEFAULT ''"),
        ("cards", "atc", "INTEGER NOT NULL DEFAULT -1"),
    ),
}
_JOURNAL_FLUSH_DELAY = 0.1  # seconds a journal line may wait for its batch
_KEPT_KEY_SETS = 2  # the current working keys of a terminal and the ones before

_SCHEMA = """
CREATE TABLE IF NOT EXISTS terminals (
    merchant TEXT NOT NULL, terminal TEXT NOT NULL, tmk_lmk TEXT NOT NULL, tmk_kcv TEXT NOT NULL,
    enabled INTEGER NOT NULL, batch TEXT NOT NULL, key_generation INTEGER NOT NULL,
    PRIMARY KEY (merchant, terminal));
CREATE TABLE IF NOT EXISTS operators (
    merchant TEXT NOT NULL, terminal TEXT NOT NULL, operator TEXT NOT NULL, role TEXT NOT NULL,
    pin_lmk TEXT NOT NULL, enabled INTEGER NOT NULL, locked INTEGER NOT NULL,
    failures INTEGER NOT NULL, PRIMARY KEY (merchant, terminal, operator));
CREATE TABLE IF NOT EXISTS operator_failures (
    merchant TEXT NOT NULL, terminal TEXT NOT NULL, operator TEXT NOT NULL,
    failures INTEGER NOT NULL, locked INTEGER NOT NULL, PRIMARY KEY (merchant, terminal, operator));
CREATE TABLE IF NOT EXISTS sessions (
    merchant TEXT NOT NULL, terminal TEXT NOT NULL, mode TEXT NOT NULL, pik_lmk TEXT NOT NULL,
    mak_lmk TEXT NOT NULL, tdk_lmk TEXT, signed_in_at REAL NOT NULL, expires_at REAL NOT NULL,
    key_generation INTEGER NOT NULL, operator TEXT, PRIMARY KEY (merchant, terminal));
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY, time REAL NOT NULL, event TEXT NOT NULL, merchant TEXT NOT NULL,
    terminal TEXT NOT NULL, operator TEXT NOT NULL, remote TEXT NOT NULL, result TEXT NOT NULL,
    reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_terminal ON audit (terminal, time);
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY, time REAL NOT NULL, direction TEXT NOT NULL, merchant TEXT NOT NULL,
    terminal TEXT NOT NULL, remote TEXT NOT NULL, mti TEXT NOT NULL, stan TEXT NOT NULL,
    response_code TEXT NOT NULL, masked_json TEXT NOT NULL, error TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '', warnings TEXT NOT NULL DEFAULT '', wire TEXT NOT NULL DEFAULT '',
    raw TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS journal_terminal ON journal (terminal, id);
CREATE TABLE IF NOT EXISTS key_history (
    merchant TEXT NOT NULL, terminal TEXT NOT NULL, generation INTEGER NOT NULL, mode TEXT NOT NULL,
    pik_lmk TEXT NOT NULL, mak_lmk TEXT NOT NULL, tdk_lmk TEXT, issued_at REAL NOT NULL,
    PRIMARY KEY (merchant, terminal, generation));
CREATE TABLE IF NOT EXISTS cards (
    pan_ref TEXT PRIMARY KEY, pan_masked TEXT NOT NULL, expiry TEXT NOT NULL,
    service_code TEXT NOT NULL, pin_lmk TEXT NOT NULL, pin_lmk_nopan TEXT NOT NULL,
    balance INTEGER NOT NULL, card_limit INTEGER NOT NULL, status TEXT NOT NULL,
    pin_failures INTEGER NOT NULL, imk_ac_lmk TEXT NOT NULL DEFAULT '', psn TEXT NOT NULL DEFAULT '',
    atc INTEGER NOT NULL DEFAULT -1);
CREATE TABLE IF NOT EXISTS ic_downloads (
    merchant TEXT NOT NULL, terminal TEXT NOT NULL, what TEXT NOT NULL, version TEXT NOT NULL,
    PRIMARY KEY (merchant, terminal, what));
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY, merchant TEXT NOT NULL, terminal TEXT NOT NULL, batch TEXT NOT NULL,
    stan TEXT NOT NULL, kind TEXT NOT NULL, mti TEXT NOT NULL, processing_code TEXT NOT NULL,
    amount INTEGER NOT NULL, pan_ref TEXT NOT NULL, pan_masked TEXT NOT NULL,
    response_code TEXT NOT NULL, status TEXT NOT NULL, rrn TEXT NOT NULL, auth_code TEXT NOT NULL,
    date TEXT NOT NULL, time REAL NOT NULL, original_id INTEGER, remaining INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS txn_stan ON transactions (merchant, terminal, batch, stan);
CREATE INDEX IF NOT EXISTS txn_rrn ON transactions (merchant, terminal, rrn);
CREATE INDEX IF NOT EXISTS txn_auth ON transactions (merchant, terminal, auth_code);
CREATE INDEX IF NOT EXISTS txn_terminal ON transactions (merchant, terminal, id);
"""

_TXN_COLUMNS = (
    "merchant, terminal, batch, stan, kind, mti, processing_code, amount, pan_ref, pan_masked, "
    "response_code, status, rrn, auth_code, date, time, original_id, remaining"
)
_CARD_COLUMNS = (
    "pan_ref, pan_masked, expiry, service_code, pin_lmk, pin_lmk_nopan, balance, card_limit, status, pin_failures, "
    "imk_ac_lmk, psn, atc"
)


def _connect(path: str, create: bool) -> sqlite3.Connection:
    where = Path(path)
    if path != ":memory:":
        if where.is_dir():
            raise StoreError(f"{path}: is a directory, not a store file")
        if not where.parent.is_dir():
            raise StoreError(f"{path}: folder {where.parent} does not exist")
        if not create and not where.exists():
            raise StoreError(f"{path}: no store here (this command reads a store and does not create one)")
    try:
        if create or path == ":memory:":
            return sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # mode=rw: an existing file only, so a store deleted since the check is not re-created
        uri = f"{where.resolve().as_uri()}?mode=rw"
        return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open the store ({exc})") from None


class SqliteStore:
    def __init__(self, path: str | Path = ":memory:", *, journal_batch: int = 256, create: bool = True) -> None:
        """Open (and with `create`, make) the store at `path`; a path that cannot hold a store
        (a directory, a missing folder, a file that is not SQLite) is a `StoreError` naming it.
        Without `create` a missing store is an error: read-only commands never make one."""
        self._db = _connect(str(path), create)
        self.observer: Observer = NULL_OBSERVER  # hears every financial commit, timed
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{path}: schema version {version} is newer than this switchsim ({SCHEMA_VERSION})")
            if version != SCHEMA_VERSION:  # an up-to-date store is not written to on opening
                self._migrate(version)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{path}: not a switchsim store ({exc})") from None
        except StoreError:
            self._db.close()
            raise
        self._pending: list[tuple[object, ...]] = []
        self._journal_batch = journal_batch
        self._flush_timer: asyncio.TimerHandle | None = None

    def _migrate(self, version: int) -> None:
        """Bring a store of schema ``version`` (0: a new file) up to SCHEMA_VERSION, in one
        transaction: the ALTERs of each later version, then the tables that are new."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for step in range(version + 1, SCHEMA_VERSION + 1) if version else ():
                for table, column, kind in _ADDED_COLUMNS.get(step, ()):
                    have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                    if have and column not in have:  # a table the old store has, without the column
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self.flush()
        self._db.close()

    def flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO journal (time, direction, merchant, terminal, remote, mti, stan, "
                "response_code, masked_json, error, reason, warnings, wire, raw) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )

    # -- terminals ---------------------------------------------------------------------------

    def put_terminal(self, terminal: Terminal) -> None:
        t = terminal
        self._db.execute(
            "INSERT OR REPLACE INTO terminals VALUES (?,?,?,?,?,?,?)",
            (t.id.merchant, t.id.terminal, t.tmk_lmk, t.tmk_kcv, int(t.enabled), t.batch, t.key_generation),
        )

    def get_terminal(self, tid: TerminalId) -> Terminal | None:
        row = self._db.execute(
            "SELECT merchant, terminal, tmk_lmk, tmk_kcv, enabled, batch, key_generation FROM terminals "
            "WHERE merchant=? AND terminal=?",
            (tid.merchant, tid.terminal),
        ).fetchone()
        return _terminal(row) if row else None

    def merchant_exists(self, merchant: str) -> bool:
        row = self._db.execute("SELECT 1 FROM terminals WHERE merchant=? LIMIT 1", (merchant,)).fetchone()
        return row is not None

    def list_terminals(self) -> Sequence[Terminal]:
        rows = self._db.execute(
            "SELECT merchant, terminal, tmk_lmk, tmk_kcv, enabled, batch, key_generation FROM terminals "
            "ORDER BY merchant, terminal"
        ).fetchall()
        return [_terminal(r) for r in rows]

    def set_terminal_enabled(self, tid: TerminalId, enabled: bool) -> None:
        cur = self._db.execute(
            "UPDATE terminals SET enabled=? WHERE merchant=? AND terminal=?",
            (int(enabled), tid.merchant, tid.terminal),
        )
        if cur.rowcount == 0:
            raise StoreError(f"no terminal {tid}")

    def set_terminal_batch(self, tid: TerminalId, batch: str) -> None:
        self._db.execute(
            "UPDATE terminals SET batch=? WHERE merchant=? AND terminal=?",
            (batch, tid.merchant, tid.terminal),
        )

    # -- cards and the ledger ----------------------------------------------------------------

    def put_card(self, card: Card) -> None:
        c = card
        self._db.execute(
            f"INSERT OR REPLACE INTO cards ({_CARD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
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

    def get_card(self, pan_ref: str) -> Card | None:
        row = self._db.execute(f"SELECT {_CARD_COLUMNS} FROM cards WHERE pan_ref=?", (pan_ref,)).fetchone()
        return _card(row) if row else None

    def list_cards(self) -> Sequence[Card]:
        return [_card(r) for r in self._db.execute(f"SELECT {_CARD_COLUMNS} FROM cards ORDER BY pan_masked")]

    def set_card_pin_failures(self, pan_ref: str, failures: int) -> None:
        self._db.execute("UPDATE cards SET pin_failures=? WHERE pan_ref=?", (failures, pan_ref))

    def set_card_atc(self, pan_ref: str, atc: int) -> None:
        """The highest ATC accepted for a chip card (it only goes up)."""
        self._db.execute("UPDATE cards SET atc=MAX(atc, ?) WHERE pan_ref=?", (atc, pan_ref))

    # -- IC downloads ------------------------------------------------------------------------

    def get_ic_version(self, tid: TerminalId, what: str) -> str | None:
        row = self._db.execute(
            "SELECT version FROM ic_downloads WHERE merchant=? AND terminal=? AND what=?",
            (tid.merchant, tid.terminal, what),
        ).fetchone()
        return str(row[0]) if row else None

    def set_ic_version(self, tid: TerminalId, what: str, version: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO ic_downloads VALUES (?,?,?,?)", (tid.merchant, tid.terminal, what, version)
        )

    def commit_financial(
        self,
        new: Transaction | None,
        balance: tuple[str, int] | None = None,
        updates: Sequence[tuple[int, TxnStatus, int]] = (),
    ) -> int | None:
        """Record a transaction, move a card balance and update originals in ONE commit, so an
        approval the terminal sees is never lost and never half applied."""
        started = time.perf_counter()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            new_id = None
            if new is not None:
                t = new
                cur = self._db.execute(
                    f"INSERT INTO transactions ({_TXN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        t.merchant,
                        t.terminal,
                        t.batch,
                        t.stan,
                        t.kind.value,
                        t.mti,
                        t.processing_code,
                        t.amount,
                        t.pan_ref,
                        t.pan_masked,
                        t.response_code,
                        t.status.value,
                        t.rrn,
                        t.auth_code,
                        t.date,
                        t.time,
                        t.original_id,
                        t.remaining,
                    ),
                )
                new_id = cur.lastrowid
            if balance is not None:
                self._db.execute("UPDATE cards SET balance = balance + ? WHERE pan_ref=?", (balance[1], balance[0]))
            for txn_id, status, remaining in updates:
                self._db.execute(
                    "UPDATE transactions SET status=?, remaining=? WHERE id=?",
                    (status.value, remaining, txn_id),
                )
        self.observer.store_commit(time.perf_counter() - started)
        return new_id

    def _one_txn(self, where: str, args: tuple[object, ...], newest: bool = False) -> Transaction | None:
        order = "DESC" if newest else "ASC"
        row = self._db.execute(
            f"SELECT id, {_TXN_COLUMNS} FROM transactions WHERE {where} ORDER BY id {order} LIMIT 1", args
        ).fetchone()
        return _txn(row) if row else None

    def get_transaction(self, txn_id: int) -> Transaction | None:
        return self._one_txn("id=?", (txn_id,))

    def find_transaction(self, tid: TerminalId, batch: str, stan: str) -> Transaction | None:
        """The first request with this STAN in the batch (reversals are not transactions)."""
        return self._one_txn(
            "merchant=? AND terminal=? AND batch=? AND stan=?", (tid.merchant, tid.terminal, batch, stan)
        )

    def last_transaction(self, tid: TerminalId) -> Transaction | None:
        """The terminal's most recent transaction, in any batch (a STAN that went backwards)."""
        return self._one_txn("merchant=? AND terminal=?", (tid.merchant, tid.terminal), newest=True)

    def find_preauth(self, tid: TerminalId, auth_code: str) -> Transaction | None:
        where = "merchant=? AND terminal=? AND auth_code=? AND kind='preauth'"
        return self._one_txn(where, (tid.merchant, tid.terminal, auth_code), newest=True)

    def batch_totals(self, tid: TerminalId, batch: str) -> tuple[int, int, int, int]:
        """(debit amount, debit count, credit amount, credit count) of the open batch."""
        rows = self._db.execute(
            "SELECT kind, COUNT(*), COALESCE(SUM(amount), 0) FROM transactions WHERE merchant=? AND terminal=? "
            "AND batch=? AND status='approved' AND kind IN ('purchase','completion','refund') GROUP BY kind",
            (tid.merchant, tid.terminal, batch),
        ).fetchall()
        debit_amount = debit_count = credit_amount = credit_count = 0
        for kind, count, amount in rows:
            if kind == "refund":
                credit_amount, credit_count = credit_amount + amount, credit_count + count
            else:
                debit_amount, debit_count = debit_amount + amount, debit_count + count
        return debit_amount, debit_count, credit_amount, credit_count

    # -- operators ---------------------------------------------------------------------------

    def put_operator(self, operator: Operator) -> None:
        o = operator
        self._db.execute(
            "INSERT OR REPLACE INTO operators VALUES (?,?,?,?,?,?,?,?)",
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

    def get_operator(self, tid: TerminalId, operator_id: str) -> Operator | None:
        row = self._db.execute(
            "SELECT merchant, terminal, operator, role, pin_lmk, enabled, locked, failures FROM operators "
            "WHERE merchant=? AND terminal=? AND operator=?",
            (tid.merchant, tid.terminal, operator_id),
        ).fetchone()
        return _operator(row) if row else None

    def list_operators(self, tid: TerminalId) -> Sequence[Operator]:
        rows = self._db.execute(
            "SELECT merchant, terminal, operator, role, pin_lmk, enabled, locked, failures FROM operators "
            "WHERE merchant=? AND terminal=? ORDER BY operator",
            (tid.merchant, tid.terminal),
        ).fetchall()
        return [_operator(r) for r in rows]

    def get_operator_failures(self, tid: TerminalId, operator_id: str) -> OperatorFailures | None:
        row = self._db.execute(
            "SELECT failures, locked FROM operator_failures WHERE merchant=? AND terminal=? AND operator=?",
            (tid.merchant, tid.terminal, operator_id),
        ).fetchone()
        return OperatorFailures(tid, operator_id, int(row[0]), bool(row[1])) if row else None

    def put_operator_failures(self, record: OperatorFailures) -> None:
        r = record
        self._db.execute(
            "INSERT OR REPLACE INTO operator_failures VALUES (?,?,?,?,?)",
            (r.terminal.merchant, r.terminal.terminal, r.operator_id, r.failures, int(r.locked)),
        )

    def delete_operator_failures(self, tid: TerminalId, operator_id: str) -> bool:
        cur = self._db.execute(
            "DELETE FROM operator_failures WHERE merchant=? AND terminal=? AND operator=?",
            (tid.merchant, tid.terminal, operator_id),
        )
        return cur.rowcount > 0

    # -- sessions ----------------------------------------------------------------------------

    def put_session(self, session: SessionKeys) -> None:
        s = session
        self._note_keys(s)
        self._db.execute(
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

    def get_session(self, tid: TerminalId) -> SessionKeys | None:
        row = self._db.execute(
            "SELECT mode, pik_lmk, mak_lmk, tdk_lmk, signed_in_at, expires_at, key_generation, operator "
            "FROM sessions WHERE merchant=? AND terminal=?",
            (tid.merchant, tid.terminal),
        ).fetchone()
        if row is None:
            return None
        return SessionKeys(tid, row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7])

    def delete_session(self, tid: TerminalId) -> None:
        self._db.execute("DELETE FROM sessions WHERE merchant=? AND terminal=?", (tid.merchant, tid.terminal))

    def _note_keys(self, s: SessionKeys) -> None:
        """Number a session's working keys when they are new (a sign-in), keeping the set before."""
        newest = self.key_history(s.terminal)
        if newest and (newest[0].mak_lmk, newest[0].pik_lmk) == (s.mak_lmk, s.pik_lmk):
            return  # the same keys (an operator signed in or out)
        generation = newest[0].generation + 1 if newest else 1
        where = (s.terminal.merchant, s.terminal.terminal)
        self._db.execute(
            "INSERT OR REPLACE INTO key_history VALUES (?,?,?,?,?,?,?,?)",
            (*where, generation, s.mode, s.pik_lmk, s.mak_lmk, s.tdk_lmk, s.signed_in_at),
        )
        self._db.execute(
            "DELETE FROM key_history WHERE merchant=? AND terminal=? AND generation<=?",
            (*where, generation - _KEPT_KEY_SETS),
        )

    def key_history(self, tid: TerminalId) -> Sequence[IssuedKeys]:
        rows = self._db.execute(
            "SELECT generation, mode, pik_lmk, mak_lmk, tdk_lmk, issued_at FROM key_history "
            "WHERE merchant=? AND terminal=? ORDER BY generation DESC LIMIT ?",
            (tid.merchant, tid.terminal, _KEPT_KEY_SETS),
        ).fetchall()
        return [IssuedKeys(tid, int(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4], float(r[5])) for r in rows]

    # -- audit and journal -------------------------------------------------------------------

    def add_audit(self, record: AuditRecord) -> None:
        r = record
        self._db.execute(
            "INSERT INTO audit (time, event, merchant, terminal, operator, remote, result, reason) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (r.time, r.event.value, r.merchant, r.terminal, r.operator, r.remote, r.result, r.reason),
        )

    def list_audit(self, terminal: str | None = None, since: float | None = None) -> Sequence[AuditRecord]:
        sql = "SELECT time, event, merchant, terminal, operator, remote, result, reason FROM audit WHERE 1=1"
        args: list[object] = []
        if terminal is not None:
            sql += " AND terminal=?"
            args.append(terminal)
        if since is not None:
            sql += " AND time>=?"
            args.append(since)
        rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [AuditRecord(r[0], AuditEvent(r[1]), *r[2:]) for r in rows]

    def add_journal(self, entry: JournalEntry) -> None:
        e = entry
        self._pending.append(
            (
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
        )
        if len(self._pending) >= self._journal_batch:
            self.flush()
        elif self._flush_timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (an admin command): flushed when read or closed
            self._flush_timer = loop.call_later(_JOURNAL_FLUSH_DELAY, self.flush)

    def list_journal(
        self,
        terminal: str | None = None,
        last: int = 20,
        *,
        merchant: str | None = None,
        after: int | None = None,
    ) -> Sequence[JournalEntry]:
        """The last ``last`` entries (of a terminal, of a merchant), oldest first; with
        ``after``, the first ``last`` entries whose id is above it (`trace --follow`)."""
        self.flush()
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
            rows = self._db.execute(sql + " AND id>? ORDER BY id LIMIT ?", (*args, after, last)).fetchall()
        else:
            rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, last)).fetchall()[::-1]
        return [_journal(r) for r in rows]


def _txn(row: tuple[Any, ...]) -> Transaction:
    (
        txn_id,
        merchant,
        terminal,
        batch,
        stan,
        kind,
        mti,
        pcode,
        amount,
        pan_ref,
        pan_masked,
        rc,
        status,
        rrn,
        auth,
        date,
        when,
        original,
        remaining,
    ) = row
    return Transaction(
        merchant,
        terminal,
        batch,
        stan,
        TxnKind(kind),
        mti,
        pcode,
        amount,
        pan_ref,
        pan_masked,
        rc,
        TxnStatus(status),
        rrn,
        auth,
        date,
        when,
        original,
        remaining,
        txn_id,
    )


def _journal(row: tuple[Any, ...]) -> JournalEntry:
    when, direction, merchant, terminal, remote, mti, stan, code, masked, error = row[:10]
    reason, warnings, wire, raw, row_id = row[10:]
    listed = tuple(str(w) for w in json.loads(warnings)) if warnings else ()
    return JournalEntry(
        when, direction, merchant, terminal, remote, mti, stan, code, masked, error, reason, listed, wire, raw, row_id
    )


def _card(row: tuple[Any, ...]) -> Card:
    pan_ref, masked, expiry, service, pin_lmk, pin_nopan, balance, limit, status, failures, imk, psn, atc = row
    status_ = CardStatus(status)
    return Card(pan_ref, masked, expiry, service, pin_lmk, pin_nopan, balance, limit, status_, failures, imk, psn, atc)


def _terminal(row: tuple[object, ...]) -> Terminal:
    merchant, terminal, tmk_lmk, tmk_kcv, enabled, batch, generation = row
    return Terminal(
        TerminalId(str(merchant), str(terminal)),
        str(tmk_lmk),
        str(tmk_kcv),
        bool(enabled),
        str(batch),
        int(str(generation)),
    )


def _operator(row: tuple[object, ...]) -> Operator:
    merchant, terminal, operator, role, pin_lmk, enabled, locked, failures = row
    return Operator(
        TerminalId(str(merchant), str(terminal)),
        str(operator),
        Role(str(role)),
        str(pin_lmk),
        bool(enabled),
        bool(locked),
        int(str(failures)),
    )
