"""The SQLite store's schema and its versioned migrations (PRAGMA user_version).

An older store is brought up to date in one transaction: `_ADDED_COLUMNS` holds, for each schema
version, the columns it added to tables of the version before, `_STEPS` what it then did to the
rows; new tables and indexes come from `SCHEMA`. Every step can run twice (two processes that
open one old file at once): the second finds the work done.

Version 6 makes a repeated STAN impossible at the store: every row of `transactions` is a
request the switch recorded with its STAN (approvals, declines, voids, refunds, pre-auths,
completions, balance enquiries; a reversal updates its original and adds no row), so
(merchant, terminal, batch, stan) is unique. A store of before version 6 may hold repeats
(two processes, or a chip request declined before the STAN was looked at): `stan_repeat`
numbers them 1, 2, ... after the first, which keeps 0, so the unique index over the five
columns admits the old rows and refuses any new repeat (new rows are 0).
"""

from __future__ import annotations

import sqlite3

from switch.store import StoreError

# 3: operator_failures; 4: journal reason, warnings, wire; key_history; 5: chip cards; 6: unique STAN;
# 7: sessions_live (the terminals signed in, counted once a second: switch/signedin.py)
SCHEMA_VERSION = 7

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
    6: (("transactions", "stan_repeat", "INTEGER NOT NULL DEFAULT 0"),),
}

_SAME_STAN_BEFORE = (
    "FROM transactions AS earlier WHERE earlier.merchant = transactions.merchant "
    "AND earlier.terminal = transactions.terminal AND earlier.batch = transactions.batch "
    "AND earlier.stan = transactions.stan AND earlier.id < transactions.id"
)
#: What each version did to the rows of a table, after its columns were added: (table, SQL).
_STEPS: dict[int, tuple[tuple[str, str], ...]] = {
    6: (
        (
            "transactions",
            f"UPDATE transactions SET stan_repeat = (SELECT COUNT(*) {_SAME_STAN_BEFORE}) "
            f"WHERE EXISTS (SELECT 1 {_SAME_STAN_BEFORE})",
        ),
    ),
}
#: Indexes a later version replaced.
_DROPPED_INDEXES = ("txn_stan",)  # 6: by the unique txn_unique_stan

SCHEMA = """
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
-- 7. The live sessions are counted on the loop once a second (switch/signedin.py): of 10,000,
-- in 0.82 ms by scanning the table, 0.18 ms by this index. (PostgreSQL counts them on its
-- server, off the switch's loop: its schema has no such index.)
CREATE INDEX IF NOT EXISTS sessions_live ON sessions (expires_at);
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
    date TEXT NOT NULL, time REAL NOT NULL, original_id INTEGER, remaining INTEGER NOT NULL,
    stan_repeat INTEGER NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX IF NOT EXISTS txn_unique_stan ON transactions (merchant, terminal, batch, stan, stan_repeat);
CREATE INDEX IF NOT EXISTS txn_rrn ON transactions (merchant, terminal, rrn);
CREATE INDEX IF NOT EXISTS txn_auth ON transactions (merchant, terminal, auth_code);
CREATE INDEX IF NOT EXISTS txn_terminal ON transactions (merchant, terminal, id);
"""


def version_of(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def check_not_newer(version: int, where: str) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(f"{where}: schema version {version} is newer than this switchsim ({SCHEMA_VERSION})")


def migrate_in_transaction(db: sqlite3.Connection, where: str) -> tuple[int, int]:
    """Bring the store up to SCHEMA_VERSION inside the caller's write transaction (BEGIN
    IMMEDIATE: the version read here cannot change under it); (version before, after)."""
    version = version_of(db)
    check_not_newer(version, where)
    if version == SCHEMA_VERSION:
        return version, version
    for step in range(version + 1, SCHEMA_VERSION + 1) if version else ():  # 0: a new file
        for table, column, kind in _ADDED_COLUMNS.get(step, ()):
            have = _columns(db, table)
            if have and column not in have:  # a table the old store has, without the column
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        for table, sql in _STEPS.get(step, ()):
            if _columns(db, table):
                db.execute(sql)
    for index in _DROPPED_INDEXES:
        db.execute(f"DROP INDEX IF EXISTS {index}")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    return version, SCHEMA_VERSION


def migrate(db: sqlite3.Connection, where: str) -> tuple[int, int]:
    """`migrate_in_transaction` in a transaction of its own (the store being opened); an
    up-to-date store is not written to."""
    version = version_of(db)
    check_not_newer(version, where)
    if version == SCHEMA_VERSION:
        return version, version
    db.execute("BEGIN IMMEDIATE")
    try:
        moved = migrate_in_transaction(db, where)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return moved


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})")}
