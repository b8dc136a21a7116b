"""Group commit for the PostgreSQL store's new ledger rows: the rows of one turn of the loop in
one statement, one transaction, one WAL flush.

A purchase holds its card's row lock from its balance update to its commit, and its commit
waits for the WAL flush (synchronous_commit on): commits of one card go one flush at a time
however many connections the pool has. Grouped, the rows that are waiting when a statement
starts go together: one insert of all of them (each refused alone by the unique STAN key, ON
CONFLICT DO NOTHING), one update per card of the sum of the rows that went in, one flush.

Each caller's future is settled only after the statement returned, so an answer that waits for
its row leaves with it durable. A row whose STAN is taken is that caller's `DuplicateTransaction`
only; two rows of one key in one group cannot be told apart by the insert, so the second waits
until the group holding the first has ended (and is refused then: the first come wins). When
the server refuses the statement (a value it cannot take, a deadlock with another process's
group), nothing of it was applied, and the group is committed again one row at a time, so
that the refusal is that row's alone. A lost connection is every caller's `StoreError`, as it
is for a commit of one (whether the server committed is not known: trying
again could turn an applied row into a 94).

Only new rows with at most a balance change are grouped; a commit that also updates originals
(a void, a refund, a reversal) goes alone (switch/pg_store.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from switch.pg_driver import Connection, describe, is_refusal
from switch.records import Transaction
from switch.store import StoreError
from switch.storerows import TXN_COLUMNS, txn_args

# The types of TXN_COLUMNS, in order, then the card to move, its delta and the caller's number.
_TYPES = (
    "text", "text", "text", "text", "text", "text", "text", "bigint", "text", "text",
    "text", "text", "text", "text", "text", "float8", "bigint", "bigint",
    "text", "bigint", "int",
)  # fmt: skip
_ARRAYS = ", ".join(f"${i}::{t}[]" for i, t in enumerate(_TYPES, start=1))
_KEY = "merchant, terminal, batch, stan"
# The insert goes in key order, so that two groups (two processes) wait for each other's keys in
# one order, not in a cycle. `ins` is complete before the balances are moved and the answer read.
GROUP_COMMIT = (
    f"WITH r AS (SELECT * FROM unnest({_ARRAYS}) AS r({TXN_COLUMNS}, bal_ref, delta, n)), "
    f"ins AS (INSERT INTO transactions ({TXN_COLUMNS}) SELECT {TXN_COLUMNS} FROM r ORDER BY {_KEY} "
    f"ON CONFLICT ON CONSTRAINT txn_stan DO NOTHING RETURNING {_KEY}, id), "
    "went AS (SELECT r.n, r.bal_ref, r.delta, ins.id FROM r JOIN ins USING "
    f"({_KEY})), "
    "bal AS (UPDATE cards AS c SET balance = c.balance + d.delta FROM "
    "(SELECT bal_ref, SUM(delta)::bigint AS delta FROM went WHERE bal_ref IS NOT NULL GROUP BY bal_ref) AS d "
    "WHERE c.pan_ref = d.bal_ref) "
    "SELECT n, id FROM went"
)

#: One commit of a new row alone: (the row, the card to move or None, the delta) -> its id, or
#: None when its STAN is taken.
CommitOne = Callable[[Connection, Transaction, str | None, int], Awaitable[int | None]]


@dataclass(slots=True)
class _Waiting:
    new: Transaction
    bal_ref: str | None
    delta: int
    future: asyncio.Future[int | None]

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.new.merchant, self.new.terminal, self.new.batch, self.new.stan


class LedgerGroups:
    """The grouped commits of one store: at most ``in_flight`` statements at once; what arrives
    meanwhile waits for the next, up to ``largest`` rows a statement."""

    def __init__(
        self,
        con: Callable[[], AbstractAsyncContextManager[Connection]],
        commit_one: CommitOne,
        where: str,
        *,
        in_flight: int = 2,
        largest: int = 200,
    ) -> None:
        self._con, self._commit_one, self._where = con, commit_one, where
        self._limit, self._largest = in_flight, largest
        self._waiting: list[_Waiting] = []
        self._running: dict[asyncio.Task[None], list[_Waiting]] = {}
        self._keys: set[tuple[str, str, str, str]] = set()  # the keys of the groups being made and run
        self._scheduled = False
        self.statements = 0  # statements run (grouped or alone): how well commits were grouped

    async def commit(self, new: Transaction, bal_ref: str | None, delta: int) -> int | None:
        """The new row's id once it is committed with its balance change; None when a row with
        its (merchant, terminal, batch, STAN) is already there (nothing applied)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int | None] = loop.create_future()
        self._waiting.append(_Waiting(new, bal_ref, delta, future))
        if not self._scheduled and len(self._running) < self._limit:
            self._scheduled = True
            loop.call_soon(self._start)  # at the end of this turn: the turn's other commits join
        return await future

    async def close(self) -> None:
        """Wait until every commit handed over is settled."""
        while self._waiting or self._running or self._scheduled:
            if self._running:
                await asyncio.wait(set(self._running))
            else:
                await asyncio.sleep(0)

    def _start(self) -> None:
        self._scheduled = False
        while self._waiting and len(self._running) < self._limit:
            group: list[_Waiting] = []
            later: list[_Waiting] = []
            for w in self._waiting:
                # a key already in a group (this one, or one running) waits for it to end
                if len(group) < self._largest and w.key not in self._keys:
                    self._keys.add(w.key)
                    group.append(w)
                else:
                    later.append(w)
            self._waiting = later
            if not group:
                return
            task = asyncio.get_running_loop().create_task(self._run(group), name="ledger-group")
            self._running[task] = group
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        for w in self._running.pop(task):
            self._keys.discard(w.key)
        if self._waiting and not self._scheduled:
            self._start()

    async def _run(self, group: list[_Waiting]) -> None:
        try:
            outcomes = await self._commit(group)
        except Exception as exc:  # every caller hears it (a StoreError: the connection failed)
            for w in group:
                if not w.future.done():
                    w.future.set_exception(exc)
            return
        except BaseException:  # cancelled (the loop is ending): nobody is left waiting
            for w in group:
                w.future.cancel()
            raise
        for w, outcome in zip(group, outcomes, strict=True):
            if w.future.done():  # the caller was cancelled
                continue
            if isinstance(outcome, BaseException):
                w.future.set_exception(outcome)
            else:
                w.future.set_result(outcome)

    async def _commit(self, group: list[_Waiting]) -> list[int | BaseException | None]:
        async with self._con() as con:
            if len(group) > 1:
                self.statements += 1
                try:
                    rows = await con.fetch(GROUP_COMMIT, *_columns(group))
                except Exception as exc:
                    if not is_refusal(exc):
                        raise
                else:
                    ids = {int(r[0]): int(r[1]) for r in rows}
                    return [ids.get(n) for n in range(len(group))]
            outcomes: list[int | BaseException | None] = []
            for w in group:  # alone, or the group refused: one at a time, each its own outcome
                self.statements += 1
                try:
                    outcomes.append(await self._commit_one(con, w.new, w.bal_ref, w.delta))
                except Exception as exc:
                    if not is_refusal(exc):
                        raise
                    outcomes.append(StoreError(f"{self._where}: {describe(exc)}"))
            return outcomes


def _columns(group: list[_Waiting]) -> list[list[object]]:
    """The group as one array per column (unnest turns them back into rows)."""
    rows = [(*txn_args(w.new), w.bal_ref, w.delta, n) for n, w in enumerate(group)]
    return [list(column) for column in zip(*rows, strict=True)]
