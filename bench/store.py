"""Ledger commits per second: the PostgreSQL store beside the SQLite store, same run, same rows.

usage: python bench/store.py [--url postgresql://...] [--commits 2000] [--callers 1,8,32] [--one-card]

Each commit is a purchase as the switch makes it (`commit_financial` with the new row and the
card's balance change, one transaction), every STAN distinct. With N callers, N tasks commit at
once (asyncio.gather), each on its own card; with --one-card all on one (the worst case: every
commit waits for the one before it to release the card's row).

Without --url a throwaway PostgreSQL is started as the tests start theirs (tests/pgserver.py):
fsync on, synchronous_commit on, so every commit waits for its WAL flush, as a store that
answers only after durability must. The SQLite store is WAL with synchronous=NORMAL (a commit
is not flushed to the disk until a checkpoint), so the ratio compares what each store promises
by default, not the same promise. The PostgreSQL store is measured twice on the same database:
with group commit (the default: the commits of one turn of the loop in one statement,
switch/pg_ledger.py) and without (`PgStore.open(group_commit=False)`, a statement each).
While the SQLite store is synchronous (it blocks the loop) its callers cannot overlap, and it
is measured as one caller at every N.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from harness import ROOT

sys.path.insert(0, str(ROOT))

from switch.pg_store import PgStore
from switch.records import Card, Transaction, TxnKind, TxnStatus
from switch.sqlite_store import SqliteStore
from tests.pgserver import PgServer, create_database, drop_database, find_bindir


def card(k: int) -> Card:
    return Card(f"{k:064x}", f"622202******{k:04d}", "2812", "201", "PIN", "PIN0", 10**15, 0)


def purchase(n: int, batch: str, on: Card) -> Transaction:
    return Transaction(
        "898310048990001", "00000764", batch, f"{n % 1_000_000:06d}", TxnKind.PURCHASE, "0200", "000000", 100,
        on.pan_ref, on.pan_masked, "00", TxnStatus.APPROVED, f"{n:012d}", "123456", "1202", time.time(),
        None, 100,
    )  # fmt: skip


Commit = Callable[[Transaction], Awaitable[Any]]


async def rate(commit: Commit, commits: int, callers: int, batch: str, one_card: bool) -> float:
    """Commits per second with ``callers`` tasks committing ``commits`` rows between them."""
    per = commits // callers

    async def caller(k: int) -> None:
        mine = card(0 if one_card else k)
        for i in range(per):
            await commit(purchase(k * per + i, batch, mine))

    start = time.perf_counter()
    await asyncio.gather(*(caller(k) for k in range(callers)))
    return per * callers / (time.perf_counter() - start)


async def measure(url: str, commits: int, callers: list[int], one_card: bool) -> None:
    cards = [card(k) for k in range(max(callers))]
    pg = await PgStore.open(url, pool_size=max(callers))
    alone = await PgStore.open(url, pool_size=max(callers), group_commit=False)
    for c in cards:
        await pg.put_card(c)
    path = Path(tempfile.mkdtemp(prefix="switchsim-bench-")) / "store.db"
    sqlite_async = inspect.iscoroutinefunction(SqliteStore.commit_financial)
    sqlite: Any
    if sqlite_async:  # built as `serve` builds it, from its path
        sqlite = await importlib.import_module("switch.storeurl").open_store(str(path))
        for c in cards:
            await sqlite.put_card(c)
    else:
        sqlite = SqliteStore(path)
        for c in cards:
            sqlite.put_card(c)

    async def sqlite_commit(t: Transaction) -> Any:
        result = sqlite.commit_financial(t, balance=(t.pan_ref, -100))
        return await result if sqlite_async else result

    async def pg_commit(t: Transaction) -> Any:
        return await pg.commit_financial(t, balance=(t.pan_ref, -100))

    async def pg_alone(t: Transaction) -> Any:
        return await alone.commit_financial(t, balance=(t.pan_ref, -100))

    label = "sqlite (async)" if sqlite_async else "sqlite (sync: one caller)"
    print(f"{'callers':>7} {'pg grouped /s':>14} {'pg alone /s':>12} {'grouped/alone':>14} {label + ' /s':>28} "
          f"{'grouped / sqlite':>17}")  # fmt: skip
    for run, n in enumerate(callers):
        batch, other = f"{run + 1:06d}", f"{run + 51:06d}"  # batches per run: every STAN of the run is new
        await rate(pg_commit, min(200, commits), n, f"9{batch[1:]}", one_card)  # warm the pool and caches
        await rate(pg_alone, min(200, commits), n, f"8{batch[1:]}", one_card)
        pg_rate = await rate(pg_commit, commits, n, batch, one_card)
        alone_rate = await rate(pg_alone, commits, n, other, one_card)
        sqlite_rate = await rate(sqlite_commit, commits, n if sqlite_async else 1, batch, one_card)
        print(f"{n:>7} {pg_rate:>14.0f} {alone_rate:>12.0f} {pg_rate / alone_rate:>14.2f} {sqlite_rate:>28.0f} "
              f"{pg_rate / sqlite_rate:>17.2f}")  # fmt: skip
    await pg.close()
    await alone.close()
    closed = sqlite.close()
    if inspect.isawaitable(closed):
        await closed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an empty PostgreSQL database (default: start a throwaway server)")
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--callers", default="1,8,32")
    parser.add_argument("--one-card", action="store_true", help="every commit on the same card")
    args = parser.parse_args()
    callers = [int(c) for c in args.callers.split(",")]
    if args.url:
        asyncio.run(measure(args.url, args.commits, callers, args.one_card))
        return
    bindir = find_bindir()
    if bindir is None:
        sys.exit("no PostgreSQL binaries here: give --url")
    server = PgServer(bindir, Path(tempfile.mkdtemp(prefix="switchsim-pg-")))
    server.start()
    try:

        async def run() -> None:
            url = await create_database(server)
            try:
                await measure(url, args.commits, callers, args.one_card)
            finally:
                await drop_database(server, url)

        asyncio.run(run())
    finally:
        server.stop()


if __name__ == "__main__":
    main()
