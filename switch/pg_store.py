"""PostgreSQL store: what several switch processes and hosts share (a `postgresql://` URL).

The same rows and behaviours as the SQLite store (switch/sqlite_store.py), over an asyncpg
connection pool. Every awaited write is committed when it returns. What two processes may
race on is decided by the server, never by a read in the caller:
- `commit_financial` inserts the new row, moves the balance and updates the originals in one
  transaction; the unique (merchant, terminal, batch, STAN) key refuses a second row with the
  same STAN, whoever wrote the first (`DuplicateTransaction`, nothing applied);
- failure counters move by `UPDATE ... SET n = n + 1 ... RETURNING`;
- a sign-in numbers its keys under a per-terminal advisory lock.

The journal goes through a `JournalQueue` (switch/journalqueue.py) written with COPY.
The schema and its migrations are switch/pg_schema.py; `open` installs it in an empty
database and refuses one whose schema is behind (`SchemaBehind`): `upgrade` moves it on.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import ClassVar

from specs.observer import NULL_OBSERVER, Observer
from switch import pg_schema
from switch.journalqueue import JournalQueue
from switch.pg_driver import Connection, Pool, Record, connection, create_pool, is_data_error, safe_url
from switch.pg_ledger import LedgerGroups
from switch.pg_schema import MIGRATIONS, Migration, SchemaBehind
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
from switch.store import DuplicateTransaction, StoreError
from switch.storerows import (
    CARD_COLUMNS,
    OPERATOR_COLUMNS,
    TERMINAL_COLUMNS,
    TXN_COLUMNS,
    card_from_row,
    operator_change_columns,
    operator_from_row,
    terminal_from_row,
    txn_args,
    txn_from_row,
)

_KEPT_KEY_SETS = 2  # the current working keys of a terminal and the ones before
# pg_advisory_xact_lock(class, key) class for numbering a terminal's keys; the key is a hash
# of the terminal, so two sign-ins of one terminal take turns and other terminals do not wait
_KEYS_LOCK = 0x7377_0002

_JOURNAL_COLUMNS = (
    "time",
    "direction",
    "merchant",
    "terminal",
    "remote",
    "mti",
    "stan",
    "response_code",
    "masked_json",
    "error",
    "reason",
    "warnings",
    "wire",
    "raw",
)
# A ledger commit is one statement, so one round trip and PostgreSQL's own transaction: the row
# (unless its STAN is taken: ON CONFLICT waits for a concurrent insert of the same key to end,
# then does nothing), then the balance and the originals, only when the row went in. The new
# row is not among the originals (their ids exist before it).
_APPLY = (
    "bal AS (UPDATE cards SET balance = balance + $2 WHERE pan_ref = $1{when}), "
    "upd AS (UPDATE transactions AS t SET status = u.status, remaining = u.remaining "
    "FROM unnest($3::bigint[], $4::text[], $5::bigint[]) AS u(id, status, remaining) WHERE t.id = u.id{when}) "
)
_COMMIT_NEW = (
    "WITH ins AS ("
    f"INSERT INTO transactions ({TXN_COLUMNS}) "
    "VALUES ($6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23) "
    "ON CONFLICT ON CONSTRAINT txn_stan DO NOTHING RETURNING id), "
    + _APPLY.format(when=" AND EXISTS (SELECT 1 FROM ins)")
    + "SELECT id FROM ins"
)
_COMMIT_UPDATES = "WITH " + _APPLY.format(when="") + "SELECT NULL"


class PgStore:
    #: The schema this code writes; a subclass with more (a test's "newer switchsim") upgrades to it.
    migrations: ClassVar[Sequence[Migration]] = MIGRATIONS

    def __init__(self, pool: Pool, where: str, journal_capacity: int, group_commit: bool = True) -> None:
        """Use `PgStore.open`; this only wires an open pool."""
        self._pool = pool
        self._where = where  # the URL with its password masked: what errors name
        self.observer: Observer = NULL_OBSERVER  # hears every financial commit, timed
        self._journal: JournalQueue[JournalEntry] = JournalQueue(self._write_journal, capacity=journal_capacity)
        # New ledger rows, grouped (switch/pg_ledger.py); None: each commit its own statement
        self.ledger = LedgerGroups(self._con, _commit_new, where) if group_commit else None
        self._closed = False
        # What `get_terminal` read ahead for the calls that follow it in the same task (see there)
        self._ahead: weakref.WeakKeyDictionary[asyncio.Task[object], _ReadAhead] = weakref.WeakKeyDictionary()

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        create: bool = True,
        allow_behind: bool = False,
        pool_size: int = 10,
        journal_capacity: int = 20_000,
        group_commit: bool = True,
    ) -> PgStore:
        """Connect to the database at ``url`` (``postgresql://user[:password]@host[:port]/db``).

        An empty database gets the current schema when ``create``; without it, a database
        with no store is a `StoreError` (read-only commands never make one). A database whose
        schema is behind is a `SchemaBehind` naming `switchsim db upgrade`, unless
        ``allow_behind`` (that command: it opens, then calls `upgrade`); one made by a newer
        switchsim is a `NewerSchema`. An unreachable server or refused login is a `StoreError`.
        Without ``group_commit`` every ledger commit is a statement of its own (the benchmark's
        baseline: bench/store.py).
        """
        pg_schema.check_order(cls.migrations)
        where = safe_url(url)
        pool = await create_pool(url, min_size=1, max_size=pool_size)
        try:
            async with connection(pool, where) as con:
                found = await pg_schema.version(con)
                latest = pg_schema.latest(cls.migrations)
                if found == 0 and not create:
                    raise StoreError(f"{where}: no switchsim store in this database (this command does not create one)")
                if found == 0:
                    await pg_schema.upgrade(con, cls.migrations, where)
                elif found > latest:
                    raise pg_schema.NewerSchema(where, found, latest)
                elif found < latest and not allow_behind:
                    raise SchemaBehind(where, found, latest)
        except BaseException:
            pool.terminate()
            raise
        return cls(pool, where, journal_capacity, group_commit)

    @property
    def shared(self) -> bool:
        return True  # other processes and hosts write the same database

    async def schema_version(self) -> tuple[int, int]:
        """(the store's schema version, the version this switchsim writes)."""
        async with self._con() as con:
            return await pg_schema.version(con), pg_schema.latest(self.migrations)

    async def upgrade(self) -> tuple[int, int]:
        """Bring the schema up to this switchsim's; (version before, version after). Safe to
        run from two processes at once: the second waits for the first and finds it done."""
        async with self._con() as con:
            return await pg_schema.upgrade(con, self.migrations, self._where)

    async def flush(self) -> None:
        await self._journal.flush()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.ledger is not None:
            await self.ledger.close()
        await self._journal.close()
        await self._pool.close()

    @property
    def journal_dropped(self) -> int:
        """Journal entries refused because the queue was full, or lost because the server refused them."""
        return self._journal.dropped + self._journal.lost

    def _con(self) -> AbstractAsyncContextManager[Connection]:
        self._drop_ahead()  # any other call to the server ends what was read ahead
        return connection(self._pool, self._where)

    def _drop_ahead(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._ahead.pop(task, None)

    def _take_ahead(self, tid: TerminalId) -> _ReadAhead | None:
        task = asyncio.current_task()
        ahead = self._ahead.get(task) if task is not None else None
        return ahead if ahead is not None and ahead.tid == tid else None

    # -- terminals ---------------------------------------------------------------------------

    async def put_terminal(self, terminal: Terminal) -> None:
        t = terminal
        async with self._con() as con:
            await con.execute(
                f"INSERT INTO terminals ({TERMINAL_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7) "
                "ON CONFLICT (merchant, terminal) DO UPDATE SET tmk_lmk=EXCLUDED.tmk_lmk, "
                "tmk_kcv=EXCLUDED.tmk_kcv, enabled=EXCLUDED.enabled, batch=EXCLUDED.batch, "
                "key_generation=EXCLUDED.key_generation",
                t.id.merchant,
                t.id.terminal,
                t.tmk_lmk,
                t.tmk_kcv,
                t.enabled,
                t.batch,
                t.key_generation,
            )

    async def get_terminal(self, tid: TerminalId) -> Terminal | None:
        """The terminal, read with its session and its newest transaction in one statement.

        Those two are what a request asks next (the session table, then the STAN check,
        switch/engine.py and switch/fieldchecks.py): `get_session` and `last_transaction` for
        this terminal, called next by the same task, take them from this read, one each and
        once, instead of asking the server again. Any other call of that task to the server,
        or a journal entry (an exchange begins or ends), drops them. So they answer only calls
        that would have been the next statements of the same request: what they give is what
        the server held a moment before, as if those statements had run first; another task
        or process never sees them."""
        async with self._con() as con:
            row = await con.fetchrow(_TERMINAL_AHEAD, tid.merchant, tid.terminal)
        if row is None:
            return None
        task = asyncio.current_task()
        if task is not None:
            values = tuple(row[i] for i in range(len(row)))
            session = _session_from(tid, values[7:15]) if values[7] is not None else None
            last = txn_from_row(values[15:]) if values[15] is not None else None
            self._ahead[task] = _ReadAhead(tid, session, last)
        return terminal_from_row(row)

    async def merchant_exists(self, merchant: str) -> bool:
        async with self._con() as con:
            return bool(await con.fetchval("SELECT EXISTS (SELECT 1 FROM terminals WHERE merchant=$1)", merchant))

    async def list_terminals(self) -> Sequence[Terminal]:
        async with self._con() as con:
            # COLLATE "C": byte order, as SQLite sorts, whatever the database's locale
            rows = await con.fetch(
                f'SELECT {TERMINAL_COLUMNS} FROM terminals ORDER BY merchant COLLATE "C", terminal COLLATE "C"'
            )
        return [terminal_from_row(r) for r in rows]

    async def set_terminal_enabled(self, tid: TerminalId, enabled: bool) -> None:
        async with self._con() as con:
            status = await con.execute(
                "UPDATE terminals SET enabled=$1 WHERE merchant=$2 AND terminal=$3", enabled, tid.merchant, tid.terminal
            )
        if _count(status) == 0:
            raise StoreError(f"no terminal {tid}")

    async def set_terminal_batch(self, tid: TerminalId, batch: str) -> None:
        async with self._con() as con:
            await con.execute(
                "UPDATE terminals SET batch=$1 WHERE merchant=$2 AND terminal=$3", batch, tid.merchant, tid.terminal
            )

    # -- cards and the ledger ----------------------------------------------------------------

    async def put_card(self, card: Card) -> None:
        c = card
        async with self._con() as con:
            await con.execute(
                f"INSERT INTO cards ({CARD_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) "
                "ON CONFLICT (pan_ref) DO UPDATE SET pan_masked=EXCLUDED.pan_masked, expiry=EXCLUDED.expiry, "
                "service_code=EXCLUDED.service_code, pin_lmk=EXCLUDED.pin_lmk, pin_lmk_nopan=EXCLUDED.pin_lmk_nopan, "
                "balance=EXCLUDED.balance, card_limit=EXCLUDED.card_limit, status=EXCLUDED.status, "
                "pin_failures=EXCLUDED.pin_failures, imk_ac_lmk=EXCLUDED.imk_ac_lmk, psn=EXCLUDED.psn, "
                "atc=EXCLUDED.atc",
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
            )

    async def get_card(self, pan_ref: str) -> Card | None:
        async with self._con() as con:
            row = await con.fetchrow(f"SELECT {CARD_COLUMNS} FROM cards WHERE pan_ref=$1", pan_ref)
        return card_from_row(row) if row else None

    async def list_cards(self) -> Sequence[Card]:
        async with self._con() as con:
            rows = await con.fetch(f'SELECT {CARD_COLUMNS} FROM cards ORDER BY pan_masked COLLATE "C"')
        return [card_from_row(r) for r in rows]

    async def set_card_pin_failures(self, pan_ref: str, failures: int) -> None:
        async with self._con() as con:
            await con.execute("UPDATE cards SET pin_failures=$1 WHERE pan_ref=$2", failures, pan_ref)

    async def add_card_pin_failure(self, pan_ref: str) -> int:
        async with self._con() as con:
            count = await con.fetchval(
                "UPDATE cards SET pin_failures = pin_failures + 1 WHERE pan_ref=$1 RETURNING pin_failures", pan_ref
            )
        if count is None:
            raise StoreError("no such card")  # the reference is a PAN fingerprint: not shown
        return int(count)

    async def set_card_atc(self, pan_ref: str, atc: int) -> None:
        """The highest ATC accepted for a chip card (it only goes up)."""
        async with self._con() as con:
            await con.execute("UPDATE cards SET atc=GREATEST(atc, $1) WHERE pan_ref=$2", atc, pan_ref)

    async def commit_financial(
        self,
        new: Transaction | None,
        balance: tuple[str, int] | None = None,
        updates: Sequence[tuple[int, TxnStatus, int]] = (),
    ) -> int | None:
        """Record a transaction, move a card balance and update originals in ONE transaction
        (one statement), so an approval the terminal sees is never lost and never half applied.
        A row with the same (merchant, terminal, batch, STAN) already there is
        `DuplicateTransaction`, and nothing of this commit is applied."""
        started = time.perf_counter()
        self._drop_ahead()  # a grouped commit reaches the server from the group's task
        latest = {txn_id: (status.value, remaining) for txn_id, status, remaining in updates}  # the last per row
        ref, delta = balance if balance is not None else (None, 0)
        args = (ref, delta, list(latest), [v[0] for v in latest.values()], [v[1] for v in latest.values()])
        if new is not None and not latest and self.ledger is not None:
            if self._closed:
                raise StoreError(f"{self._where}: the store is closed")
            new_id = await self.ledger.commit(new, ref, delta)
        else:
            async with self._con() as con:
                if new is None:
                    await con.execute(_COMMIT_UPDATES, *args)
                    new_id = None
                else:
                    new_id = await con.fetchval(_COMMIT_NEW, *args, *txn_args(new))
        if new is not None and new_id is None:
            raise DuplicateTransaction(
                f"{new.merchant}/{new.terminal}: STAN {new.stan} already recorded in batch {new.batch}"
            )
        self.observer.store_commit(time.perf_counter() - started)
        return None if new_id is None else int(new_id)

    async def _one_txn(self, where: str, *args: object, newest: bool | None = False) -> Transaction | None:
        """The first (the newest) row that matches; ``newest=None``: ``where`` names a unique
        key, so no order is asked for."""
        order = "" if newest is None else f" ORDER BY id {'DESC' if newest else 'ASC'}"
        async with self._con() as con:
            row = await con.fetchrow(f"SELECT id, {TXN_COLUMNS} FROM transactions WHERE {where}{order} LIMIT 1", *args)
        return txn_from_row(row) if row else None

    async def get_transaction(self, txn_id: int) -> Transaction | None:
        return await self._one_txn("id=$1", txn_id, newest=None)

    async def find_transaction(self, tid: TerminalId, batch: str, stan: str) -> Transaction | None:
        """The request with this STAN in the batch (reversals are not transactions). The key is
        unique (txn_stan): no order asked, none that another index could offer."""
        where = "merchant=$1 AND terminal=$2 AND batch=$3 AND stan=$4"
        return await self._one_txn(where, tid.merchant, tid.terminal, batch, stan, newest=None)

    async def last_transaction(self, tid: TerminalId) -> Transaction | None:
        """The terminal's most recent transaction, in any batch (a STAN that went backwards)."""
        ahead = self._take_ahead(tid)
        if ahead is not None and ahead.last is not _TAKEN:
            found, ahead.last = ahead.last, _TAKEN
            self._drop_ahead()  # the last thing read ahead
            return found if isinstance(found, Transaction) else None
        # id > 0 (every id): the predicate of txn_terminal (switch/pg_schema.py, _V2), so it is used
        return await self._one_txn("merchant=$1 AND terminal=$2 AND id > 0", tid.merchant, tid.terminal, newest=True)

    async def find_preauth(self, tid: TerminalId, auth_code: str) -> Transaction | None:
        where = "merchant=$1 AND terminal=$2 AND auth_code=$3 AND kind='preauth'"  # kind: txn_auth's predicate
        return await self._one_txn(where, tid.merchant, tid.terminal, auth_code, newest=True)

    async def last_rrn_sequence(self, day: str, worker: int) -> int:
        """As the SQLite store's: the newest by id, read once when a switch starts."""
        async with self._con() as con:
            found = await con.fetchval(
                "SELECT substr(rrn, 6, 6) FROM transactions WHERE rrn ~ $1 ORDER BY id DESC LIMIT 1",
                f"^{day}[0-9]{{6}}{worker}$",
            )
        return int(found) if found is not None else 0

    async def batch_totals(self, tid: TerminalId, batch: str) -> tuple[int, int, int, int]:
        """(debit amount, debit count, credit amount, credit count) of the open batch."""
        async with self._con() as con:
            rows = await con.fetch(
                "SELECT kind, COUNT(*), COALESCE(SUM(amount), 0)::bigint FROM transactions "
                "WHERE merchant=$1 AND terminal=$2 AND batch=$3 AND status='approved' "
                "AND kind IN ('purchase','completion','refund') GROUP BY kind",
                tid.merchant,
                tid.terminal,
                batch,
            )
        debit_amount = debit_count = credit_amount = credit_count = 0
        for kind, count, amount in ((str(r[0]), int(r[1]), int(r[2])) for r in rows):
            if kind == "refund":
                credit_amount, credit_count = credit_amount + amount, credit_count + count
            else:
                debit_amount, debit_count = debit_amount + amount, debit_count + count
        return debit_amount, debit_count, credit_amount, credit_count

    # -- IC downloads ------------------------------------------------------------------------

    async def get_ic_version(self, tid: TerminalId, what: str) -> str | None:
        async with self._con() as con:
            value = await con.fetchval(
                "SELECT version FROM ic_downloads WHERE merchant=$1 AND terminal=$2 AND what=$3",
                tid.merchant,
                tid.terminal,
                what,
            )
        return None if value is None else str(value)

    async def set_ic_version(self, tid: TerminalId, what: str, version: str) -> None:
        async with self._con() as con:
            await con.execute(
                "INSERT INTO ic_downloads (merchant, terminal, what, version) VALUES ($1,$2,$3,$4) "
                "ON CONFLICT (merchant, terminal, what) DO UPDATE SET version=EXCLUDED.version",
                tid.merchant,
                tid.terminal,
                what,
                version,
            )

    # -- operators ---------------------------------------------------------------------------

    async def put_operator(self, operator: Operator) -> None:
        o = operator
        async with self._con() as con:
            await con.execute(
                f"INSERT INTO operators ({OPERATOR_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) "
                "ON CONFLICT (merchant, terminal, operator) DO UPDATE SET role=EXCLUDED.role, "
                "pin_lmk=EXCLUDED.pin_lmk, enabled=EXCLUDED.enabled, locked=EXCLUDED.locked, "
                "failures=EXCLUDED.failures",
                o.terminal.merchant,
                o.terminal.terminal,
                o.operator_id,
                o.role.value,
                o.pin_lmk,
                o.enabled,
                o.locked,
                o.failures,
            )

    async def get_operator(self, tid: TerminalId, operator_id: str) -> Operator | None:
        async with self._con() as con:
            row = await con.fetchrow(
                f"SELECT {OPERATOR_COLUMNS} FROM operators WHERE merchant=$1 AND terminal=$2 AND operator=$3",
                tid.merchant,
                tid.terminal,
                operator_id,
            )
        return operator_from_row(row) if row else None

    async def list_operators(self, tid: TerminalId) -> Sequence[Operator]:
        async with self._con() as con:
            rows = await con.fetch(
                f"SELECT {OPERATOR_COLUMNS} FROM operators WHERE merchant=$1 AND terminal=$2 "
                'ORDER BY operator COLLATE "C"',
                tid.merchant,
                tid.terminal,
            )
        return [operator_from_row(r) for r in rows]

    async def update_operator(
        self, tid: TerminalId, operator_id: str, change: OperatorChange, *, unless_locked: bool = False
    ) -> Operator | None:
        columns = operator_change_columns(change)
        sets = ", ".join(f"{column}=${n}" for n, (column, _) in enumerate(columns, 4)) or "failures=failures"
        guard = " AND NOT locked" if unless_locked else ""
        async with self._con() as con:
            row = await con.fetchrow(
                f"UPDATE operators SET {sets} WHERE merchant=$1 AND terminal=$2 AND operator=$3{guard} "
                f"RETURNING {OPERATOR_COLUMNS}",
                tid.merchant,
                tid.terminal,
                operator_id,
                *(value for _, value in columns),
            )
        return operator_from_row(row) if row else None

    async def add_operator_failure(self, tid: TerminalId, operator_id: str, lock_at: int) -> Operator | None:
        """One more refused sign-in of a real operator, locking when the count reaches
        ``lock_at``; the operator after it, or None when the terminal has no such operator."""
        async with self._con() as con:
            row = await con.fetchrow(
                "UPDATE operators SET failures = failures + 1, locked = locked OR failures + 1 >= $4 "
                f"WHERE merchant=$1 AND terminal=$2 AND operator=$3 RETURNING {OPERATOR_COLUMNS}",
                tid.merchant,
                tid.terminal,
                operator_id,
                lock_at,
            )
        return operator_from_row(row) if row else None

    async def get_operator_failures(self, tid: TerminalId, operator_id: str) -> OperatorFailures | None:
        async with self._con() as con:
            row = await con.fetchrow(
                "SELECT failures, locked FROM operator_failures WHERE merchant=$1 AND terminal=$2 AND operator=$3",
                tid.merchant,
                tid.terminal,
                operator_id,
            )
        return OperatorFailures(tid, operator_id, int(row[0]), bool(row[1])) if row else None

    async def put_operator_failures(self, record: OperatorFailures) -> None:
        r = record
        async with self._con() as con:
            await con.execute(
                "INSERT INTO operator_failures (merchant, terminal, operator, failures, locked) "
                "VALUES ($1,$2,$3,$4,$5) ON CONFLICT (merchant, terminal, operator) "
                "DO UPDATE SET failures=EXCLUDED.failures, locked=EXCLUDED.locked",
                r.terminal.merchant,
                r.terminal.terminal,
                r.operator_id,
                r.failures,
                r.locked,
            )

    async def add_stranger_failure(self, tid: TerminalId, operator_id: str, lock_at: int) -> OperatorFailures:
        """One more refused sign-in of an id the terminal does not have, counted (from 1 when
        it is the first) and locked at ``lock_at`` as a real operator's; the record after it."""
        async with self._con() as con:
            row = await con.fetchrow(
                "INSERT INTO operator_failures AS f (merchant, terminal, operator, failures, locked) "
                "VALUES ($1, $2, $3, 1, 1 >= $4) ON CONFLICT (merchant, terminal, operator) "
                "DO UPDATE SET failures = f.failures + 1, locked = f.locked OR f.failures + 1 >= $4 "
                "RETURNING failures, locked",
                tid.merchant,
                tid.terminal,
                operator_id,
                lock_at,
            )
        assert row is not None  # an upsert always returns its row
        return OperatorFailures(tid, operator_id, int(row[0]), bool(row[1]))

    async def delete_operator_failures(self, tid: TerminalId, operator_id: str) -> bool:
        async with self._con() as con:
            status = await con.execute(
                "DELETE FROM operator_failures WHERE merchant=$1 AND terminal=$2 AND operator=$3",
                tid.merchant,
                tid.terminal,
                operator_id,
            )
        return _count(status) > 0

    # -- sessions ----------------------------------------------------------------------------

    async def put_session(self, session: SessionKeys) -> None:
        s = session
        where = (s.terminal.merchant, s.terminal.terminal)
        async with self._con() as con, con.transaction():
            await con.execute("SELECT pg_advisory_xact_lock($1, hashtext($2 || '/' || $3))", _KEYS_LOCK, *where)
            await self._note_keys(con, s)
            await con.execute(
                "INSERT INTO sessions (merchant, terminal, mode, pik_lmk, mak_lmk, tdk_lmk, signed_in_at, "
                "expires_at, key_generation, operator) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) "
                "ON CONFLICT (merchant, terminal) DO UPDATE SET mode=EXCLUDED.mode, pik_lmk=EXCLUDED.pik_lmk, "
                "mak_lmk=EXCLUDED.mak_lmk, tdk_lmk=EXCLUDED.tdk_lmk, signed_in_at=EXCLUDED.signed_in_at, "
                "expires_at=EXCLUDED.expires_at, key_generation=EXCLUDED.key_generation, operator=EXCLUDED.operator",
                *where,
                s.mode,
                s.pik_lmk,
                s.mak_lmk,
                s.tdk_lmk,
                s.signed_in_at,
                s.expires_at,
                s.key_generation,
                s.operator_id,
            )

    @staticmethod
    async def _note_keys(con: Connection, s: SessionKeys) -> None:
        """Number a session's working keys when they are new (a sign-in), keeping the set before."""
        where = (s.terminal.merchant, s.terminal.terminal)
        newest = await con.fetchrow(
            "SELECT generation, mak_lmk, pik_lmk FROM key_history WHERE merchant=$1 AND terminal=$2 "
            "ORDER BY generation DESC LIMIT 1",
            *where,
        )
        if newest is not None and (newest[1], newest[2]) == (s.mak_lmk, s.pik_lmk):
            return  # the same keys (an operator signed in or out)
        generation = int(newest[0]) + 1 if newest is not None else 1
        await con.execute(
            "INSERT INTO key_history (merchant, terminal, generation, mode, pik_lmk, mak_lmk, tdk_lmk, issued_at) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
            *where,
            generation,
            s.mode,
            s.pik_lmk,
            s.mak_lmk,
            s.tdk_lmk,
            s.signed_in_at,
        )
        await con.execute(
            "DELETE FROM key_history WHERE merchant=$1 AND terminal=$2 AND generation<=$3",
            *where,
            generation - _KEPT_KEY_SETS,
        )

    async def get_session(self, tid: TerminalId) -> SessionKeys | None:
        ahead = self._take_ahead(tid)
        if ahead is not None and ahead.session is not _TAKEN:
            found, ahead.session = ahead.session, _TAKEN
            return found if isinstance(found, SessionKeys) else None
        async with self._con() as con:
            row = await con.fetchrow(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE merchant=$1 AND terminal=$2", tid.merchant, tid.terminal
            )
        return None if row is None else _session_from(tid, tuple(row[i] for i in range(len(row))))

    async def delete_session(self, tid: TerminalId) -> None:
        async with self._con() as con:
            await con.execute("DELETE FROM sessions WHERE merchant=$1 AND terminal=$2", tid.merchant, tid.terminal)

    async def count_sessions(self, now: float) -> int:
        async with self._con() as con:
            return int(await con.fetchval("SELECT count(*) FROM sessions WHERE expires_at > $1", now))

    async def key_history(self, tid: TerminalId) -> Sequence[IssuedKeys]:
        async with self._con() as con:
            rows = await con.fetch(
                "SELECT generation, mode, pik_lmk, mak_lmk, tdk_lmk, issued_at FROM key_history "
                "WHERE merchant=$1 AND terminal=$2 ORDER BY generation DESC LIMIT $3",
                tid.merchant,
                tid.terminal,
                _KEPT_KEY_SETS,
            )
        return [
            IssuedKeys(tid, int(r[0]), str(r[1]), str(r[2]), str(r[3]), _text_or_none(r[4]), float(r[5])) for r in rows
        ]

    # -- audit and journal -------------------------------------------------------------------

    async def add_audit(self, record: AuditRecord) -> None:
        r = record
        async with self._con() as con:
            await con.execute(
                "INSERT INTO audit (time, event, merchant, terminal, operator, remote, result, reason) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                r.time,
                r.event.value,
                r.merchant,
                r.terminal,
                r.operator,
                r.remote,
                r.result,
                r.reason,
            )

    async def list_audit(self, terminal: str | None = None, since: float | None = None) -> Sequence[AuditRecord]:
        sql = "SELECT time, event, merchant, terminal, operator, remote, result, reason FROM audit WHERE true"
        args: list[object] = []
        if terminal is not None:
            args.append(terminal)
            sql += f" AND terminal=${len(args)}"
        if since is not None:
            args.append(since)
            sql += f" AND time>=${len(args)}"
        async with self._con() as con:
            rows = await con.fetch(sql + " ORDER BY id", *args)
        return [
            AuditRecord(float(r[0]), AuditEvent(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), str(r[6]), str(r[7]))
            for r in rows
        ]

    def add_journal(self, entry: JournalEntry) -> None:
        self._drop_ahead()  # an exchange begins or ends: nothing read ahead outlives it
        self._journal.put(entry)

    async def _write_journal(self, entries: Sequence[JournalEntry]) -> int:
        """Write a batch with one COPY; when the server refuses a value (a NUL byte in a text),
        write the entries one by one and count the ones it refuses. Returns that count."""
        rows = [_journal_row(e) for e in entries]
        async with self._con() as con:
            try:
                await con.copy_records_to_table("journal", records=rows, columns=_JOURNAL_COLUMNS)
                return 0
            except Exception as exc:
                if not is_data_error(exc):
                    raise
            refused = 0
            for row in rows:
                try:
                    await con.copy_records_to_table("journal", records=[row], columns=_JOURNAL_COLUMNS)
                except Exception as exc:
                    if not is_data_error(exc):
                        raise
                    refused += 1
            return refused

    async def list_journal(
        self,
        terminal: str | None = None,
        last: int = 20,
        *,
        merchant: str | None = None,
        after: int | None = None,
    ) -> Sequence[JournalEntry]:
        """The last ``last`` entries (of a terminal, of a merchant), oldest first; with
        ``after``, the first ``last`` entries whose id is above it (`trace --follow`)."""
        await self.flush()
        sql = f"SELECT {', '.join(_JOURNAL_COLUMNS)}, id FROM journal WHERE true"
        args: list[object] = []
        for column, value in (("terminal", terminal), ("merchant", merchant)):
            if value is not None:
                args.append(value)
                sql += f" AND {column}=${len(args)}"
        async with self._con() as con:
            if after is not None:
                rows = await con.fetch(
                    sql + f" AND id>${len(args) + 1} ORDER BY id LIMIT ${len(args) + 2}", *args, after, last
                )
            else:
                rows = (await con.fetch(sql + f" ORDER BY id DESC LIMIT ${len(args) + 1}", *args, last))[::-1]
        return [_journal(r) for r in rows]


_SESSION_COLUMNS = "mode, pik_lmk, mak_lmk, tdk_lmk, signed_in_at, expires_at, key_generation, operator"
# The terminal (7 columns), its session (8, NULL when there is none) and its newest transaction
# (19, NULL when none): see `get_terminal`. `id > 0`: txn_terminal's predicate (pg_schema._V2).
_TERMINAL_AHEAD = (
    f"SELECT {', '.join('t.' + c for c in TERMINAL_COLUMNS.split(', '))}, "
    f"{', '.join('s.' + c for c in _SESSION_COLUMNS.split(', '))}, x.* FROM terminals AS t "
    "LEFT JOIN sessions AS s ON s.merchant = t.merchant AND s.terminal = t.terminal "
    f"LEFT JOIN LATERAL (SELECT id, {TXN_COLUMNS} FROM transactions AS x WHERE x.merchant = t.merchant "
    "AND x.terminal = t.terminal AND x.id > 0 ORDER BY x.id DESC LIMIT 1) AS x ON true "
    "WHERE t.merchant=$1 AND t.terminal=$2"
)


class _Taken:
    """What was read ahead and already handed out."""


_TAKEN = _Taken()


@dataclass(slots=True)
class _ReadAhead:
    tid: TerminalId
    session: SessionKeys | _Taken | None
    last: Transaction | _Taken | None


def _session_from(tid: TerminalId, r: tuple[object, ...]) -> SessionKeys:
    return SessionKeys(
        tid,
        str(r[0]),
        str(r[1]),
        str(r[2]),
        _text_or_none(r[3]),
        float(str(r[4])),
        float(str(r[5])),
        int(str(r[6])),
        _text_or_none(r[7]),
    )


async def _commit_new(con: Connection, new: Transaction, ref: str | None, delta: int) -> int | None:
    """One new row and its balance change, alone: its id, or None when its STAN is taken."""
    new_id = await con.fetchval(_COMMIT_NEW, ref, delta, [], [], [], *txn_args(new))
    return None if new_id is None else int(new_id)


def _count(status: str) -> int:
    """Rows a command touched, from its status ("UPDATE 1", "DELETE 0")."""
    return int(status.rsplit(" ", 1)[-1])


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _journal_row(e: JournalEntry) -> tuple[object, ...]:
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
        list(e.warnings),
        e.wire,
        e.raw,
    )


def _journal(r: Record) -> JournalEntry:
    return JournalEntry(
        time=float(r[0]),
        direction=str(r[1]),
        merchant=str(r[2]),
        terminal=str(r[3]),
        remote=str(r[4]),
        mti=str(r[5]),
        stan=str(r[6]),
        response_code=str(r[7]),
        masked_json=str(r[8]),
        error=str(r[9]),
        reason=str(r[10]),
        warnings=tuple(str(w) for w in r[11]),
        wire=str(r[12]),
        raw=str(r[13]),
        id=int(r[14]),
    )
