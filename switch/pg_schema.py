"""The PostgreSQL store's schema, as an ordered list of migrations, and how a database moves
from one version to the next.

`schema_version` holds one row per migration applied; the database's version is the highest.
A migration's statements and its row are written in one transaction (PostgreSQL's DDL is
transactional), so a database is always at exactly one version. Every upgrade, including the
first install, runs under one advisory lock: two processes upgrading at once take turns, and
the second finds nothing left to do.

Column types keep what the records (switch/records.py) hold exactly as the SQLite store
does: `double precision` for timestamps (a Python float, bit for bit), `bigint` for amounts,
counters and ids (SQLite's 64-bit INTEGER), `text` for texts, `boolean` for flags.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from switch.pg_driver import Connection
from switch.store import StoreError

# pg_advisory_xact_lock key for schema changes: "swsim" + 1, any constant no other user takes
MIGRATION_LOCK = 0x7377_7369_6D00_0001


@dataclass(frozen=True, slots=True)
class Migration:
    version: int  # 1, 2, ...: each one more than the one before
    what: str  # one line, kept in schema_version
    sql: str  # statements run in the upgrade's transaction


# Version 1 is the SQLite store's schema 5 (cards with chip data, key history, operator
# failures), plus: one transaction per (merchant, terminal, batch, STAN). Every financial
# request the switch records (approved, declined, a void or refund under its own STAN) is a
# row, and a reversal only updates its original, so every row's STAN is unique in its batch;
# the constraint lets two processes sharing the store refuse the second (94) atomically.
_V1 = """
CREATE TABLE terminals (
    merchant text NOT NULL, terminal text NOT NULL, tmk_lmk text NOT NULL, tmk_kcv text NOT NULL,
    enabled boolean NOT NULL, batch text NOT NULL, key_generation bigint NOT NULL,
    PRIMARY KEY (merchant, terminal));
CREATE TABLE operators (
    merchant text NOT NULL, terminal text NOT NULL, operator text NOT NULL, role text NOT NULL,
    pin_lmk text NOT NULL, enabled boolean NOT NULL, locked boolean NOT NULL, failures bigint NOT NULL,
    PRIMARY KEY (merchant, terminal, operator));
CREATE TABLE operator_failures (
    merchant text NOT NULL, terminal text NOT NULL, operator text NOT NULL,
    failures bigint NOT NULL, locked boolean NOT NULL, PRIMARY KEY (merchant, terminal, operator));
CREATE TABLE sessions (
    merchant text NOT NULL, terminal text NOT NULL, mode text NOT NULL, pik_lmk text NOT NULL,
    mak_lmk text NOT NULL, tdk_lmk text, signed_in_at double precision NOT NULL,
    expires_at double precision NOT NULL, key_generation bigint NOT NULL, operator text,
    PRIMARY KEY (merchant, terminal));
CREATE TABLE key_history (
    merchant text NOT NULL, terminal text NOT NULL, generation bigint NOT NULL, mode text NOT NULL,
    pik_lmk text NOT NULL, mak_lmk text NOT NULL, tdk_lmk text, issued_at double precision NOT NULL,
    PRIMARY KEY (merchant, terminal, generation));
CREATE TABLE audit (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, time double precision NOT NULL,
    event text NOT NULL, merchant text NOT NULL, terminal text NOT NULL, operator text NOT NULL,
    remote text NOT NULL, result text NOT NULL, reason text NOT NULL);
CREATE INDEX audit_terminal ON audit (terminal, time);
CREATE TABLE journal (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, time double precision NOT NULL,
    direction text NOT NULL, merchant text NOT NULL, terminal text NOT NULL, remote text NOT NULL,
    mti text NOT NULL, stan text NOT NULL, response_code text NOT NULL, masked_json text NOT NULL,
    error text NOT NULL, reason text NOT NULL, warnings text[] NOT NULL, wire text NOT NULL,
    raw text NOT NULL);
CREATE INDEX journal_terminal ON journal (terminal, id);
CREATE INDEX journal_merchant ON journal (merchant, id);
CREATE TABLE cards (
    pan_ref text PRIMARY KEY, pan_masked text NOT NULL, expiry text NOT NULL,
    service_code text NOT NULL, pin_lmk text NOT NULL, pin_lmk_nopan text NOT NULL,
    balance bigint NOT NULL, card_limit bigint NOT NULL, status text NOT NULL,
    pin_failures bigint NOT NULL, imk_ac_lmk text NOT NULL, psn text NOT NULL, atc bigint NOT NULL);
CREATE TABLE ic_downloads (
    merchant text NOT NULL, terminal text NOT NULL, what text NOT NULL, version text NOT NULL,
    PRIMARY KEY (merchant, terminal, what));
CREATE TABLE transactions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, merchant text NOT NULL, terminal text NOT NULL,
    batch text NOT NULL, stan text NOT NULL, kind text NOT NULL, mti text NOT NULL,
    processing_code text NOT NULL, amount bigint NOT NULL, pan_ref text NOT NULL,
    pan_masked text NOT NULL, response_code text NOT NULL, status text NOT NULL, rrn text NOT NULL,
    auth_code text NOT NULL, date text NOT NULL, time double precision NOT NULL, original_id bigint,
    remaining bigint NOT NULL,
    CONSTRAINT txn_stan UNIQUE (merchant, terminal, batch, stan));
CREATE INDEX txn_rrn ON transactions (merchant, terminal, rrn);
CREATE INDEX txn_auth ON transactions (merchant, terminal, auth_code);
CREATE INDEX txn_terminal ON transactions (merchant, terminal, id);
"""

# A table without planner statistics (a new store, until autovacuum's first ANALYZE) gives every
# equality the default selectivity: a lookup by (merchant, terminal, batch, STAN) costs the same
# on any index that starts with (merchant, terminal) as on the unique txn_stan, is planned on a
# smaller one, and reads every row of the terminal for a STAN that is not there (every new
# request). So each other index is partial, on a predicate only the query it is for states:
# txn_terminal (a terminal's newest row) on id > 0, true of every row (ids start at 1); txn_auth
# on the pre-authorisations `find_preauth` looks for. txn_rrn is read by no query: dropped.
_V2 = """
DROP INDEX txn_terminal;
DROP INDEX txn_auth;
DROP INDEX txn_rrn;
CREATE INDEX txn_terminal ON transactions (merchant, terminal, id) WHERE id > 0;
CREATE INDEX txn_auth ON transactions (merchant, terminal, auth_code) WHERE kind = 'preauth';
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "tables of the SQLite store's schema 5, one transaction per (merchant, terminal, batch, STAN)", _V1),
    Migration(2, "txn_terminal and txn_auth partial, txn_rrn dropped: a STAN lookup is planned on txn_stan", _V2),
)

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version integer PRIMARY KEY, what text NOT NULL, applied_at double precision NOT NULL)
"""


def latest(migrations: Sequence[Migration]) -> int:
    return migrations[-1].version if migrations else 0


async def version(con: Connection) -> int:
    """The database's schema version: 0 for a database without a switchsim store."""
    if await con.fetchval("SELECT to_regclass('schema_version')") is None:
        return 0
    return int(await con.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


async def upgrade(con: Connection, migrations: Sequence[Migration], where: str) -> tuple[int, int]:
    """Apply every migration above the database's version, in order, in one transaction
    under the migration lock; (version before, version after). A database at a version this
    code does not know (a newer switchsim's) is left alone: `NewerSchema`."""
    async with con.transaction():
        await con.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        # Created under the lock: two first installs at once would both try otherwise
        await con.execute(_VERSION_TABLE)
        found = await version(con)
        if found > latest(migrations):
            raise NewerSchema(where, found, latest(migrations))
        for step in migrations:
            if step.version > found:
                await con.execute(step.sql)
                await con.execute(
                    "INSERT INTO schema_version (version, what, applied_at) VALUES ($1, $2, $3)",
                    step.version,
                    step.what,
                    time.time(),
                )
        return found, max(found, latest(migrations))


class NewerSchema(StoreError):
    """The database was made or upgraded by a newer switchsim than this one: left alone."""

    def __init__(self, where: str, found: int, known: int) -> None:
        super().__init__(f"{where}: schema version {found} is newer than this switchsim's ({known})")
        self.found = found
        self.known = known


class SchemaBehind(StoreError):
    """The database's schema is older than this switchsim's: opening does not migrate it
    behind the operator's back; `switchsim db upgrade` does (PgStore.upgrade)."""

    def __init__(self, where: str, found: int, known: int) -> None:
        super().__init__(
            f"{where}: schema version {found} is behind this switchsim's ({known}); "
            "run `switchsim db upgrade` on this store first"
        )
        self.found = found
        self.known = known


def check_order(migrations: Sequence[Migration]) -> None:
    """Migrations are numbered 1, 2, 3 ... in order: a gap or a repeat is a bug in the list."""
    for number, step in enumerate(migrations, start=1):
        if step.version != number:
            raise ValueError(f"migration {step.version} ({step.what}) stands where {number} should")
