"""SQLite store (WAL), the embedded default. Schema versioned with PRAGMA user_version.

Journal lines are buffered and written in one transaction per flush: the journal is a trace,
not the ledger, and one commit per message would dominate a sign-in's cost.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from switch.records import (
    AuditEvent,
    AuditRecord,
    JournalEntry,
    Operator,
    Role,
    SessionKeys,
    Terminal,
    TerminalId,
)
from switch.store import StoreError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS terminals (
    merchant TEXT NOT NULL, terminal TEXT NOT NULL, tmk_lmk TEXT NOT NULL, tmk_kcv TEXT NOT NULL,
    enabled INTEGER NOT NULL, batch TEXT NOT NULL, key_generation INTEGER NOT NULL,
    PRIMARY KEY (merchant, terminal));
CREATE TABLE IF NOT EXISTS operators (
    merchant TEXT NOT NULL, terminal TEXT NOT NULL, operator TEXT NOT NULL, role TEXT NOT NULL,
    pin_lmk TEXT NOT NULL, enabled INTEGER NOT NULL, locked INTEGER NOT NULL,
    failures INTEGER NOT NULL, PRIMARY KEY (merchant, terminal, operator));
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
    response_code TEXT NOT NULL, masked_json TEXT NOT NULL, error TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS journal_terminal ON journal (terminal, id);
"""


class SqliteStore:
    def __init__(self, path: str | Path = ":memory:", *, journal_batch: int = 256) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path}: schema version {version} is newer than this switchsim ({SCHEMA_VERSION})"
            )
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._pending: list[tuple[object, ...]] = []
        self._journal_batch = journal_batch

    def close(self) -> None:
        self.flush()
        self._db.close()

    def flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO journal (time, direction, merchant, terminal, remote, mti, stan, "
                "response_code, masked_json, error) VALUES (?,?,?,?,?,?,?,?,?,?)",
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

    # -- sessions ----------------------------------------------------------------------------

    def put_session(self, session: SessionKeys) -> None:
        s = session
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
            )
        )
        if len(self._pending) >= self._journal_batch:
            self.flush()

    def list_journal(self, terminal: str, last: int) -> Sequence[JournalEntry]:
        self.flush()
        rows = self._db.execute(
            "SELECT time, direction, merchant, terminal, remote, mti, stan, response_code, masked_json, "
            "error "
            "FROM journal WHERE terminal=? ORDER BY id DESC LIMIT ?",
            (terminal, last),
        ).fetchall()
        return [JournalEntry(*r) for r in reversed(rows)]


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
