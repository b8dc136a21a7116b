"""The SQLite store under write load: reads on the loop against reads in a thread, and group commit.

usage: python bench/groupcommit.py [--seconds 2] [--writers 64]

Reads: `writers` tasks keep committing purchases (commit_financial with a balance change) while
one task reads a card (the read every purchase makes), a) on the event loop against the store's
read connection (what switch/sqlite_store.py does), b) the same query in a thread
(asyncio.to_thread); and, as the baseline, on the loop with nobody writing. Printed:
microseconds per read (median, p99, max) and reads per second. A WAL reader does not wait for
the writer's transactions, so reads on the loop under load stay near the baseline; on a shared
machine the max of every line is the scheduler's, not SQLite's.

Group commit: `writers` concurrent callers each awaiting one commit at a time, for `seconds`:
commits per second and transactions per second (the writer thread's COMMITs); the ratio of
the two is how many callers one transaction served. Beside it, one caller alone (no grouping).
The figures move with the load of the machine; the ratios in one run are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from switch.records import Card, Transaction, TxnKind, TxnStatus
from switch.sqlite_store import SqliteStore

REF = "0" * 32


def purchase(stan: int) -> Transaction:
    return Transaction(
        "848100058126002", "00000764", "000001", f"{stan:06d}", TxnKind.PURCHASE, "0200", "000000", 100, REF,
        "622202*********0123", "00", TxnStatus.APPROVED, "", "", "0101", 0.0, remaining=100,
    )


async def open_store(folder: Path, name: str) -> SqliteStore:
    store = SqliteStore(folder / name)
    await store.put_card(Card(REF, "622202*********0123", "3012", "201", "A", "B", 10**15, 0))
    return store


async def _writers(store: SqliteStore, n: int, stop: asyncio.Event, start: int) -> int:
    done = 0

    async def one(lane: int) -> None:
        nonlocal done
        stan = start + lane * 10**6
        while not stop.is_set():
            stan += 1
            await store.commit_financial(purchase(stan), balance=(REF, -100))
            done += 1

    await asyncio.gather(*(one(i) for i in range(n)))
    return done


async def reads(store: SqliteStore, seconds: float, writers: int, in_thread: bool, start: int) -> list[float]:
    stop = asyncio.Event()
    load = asyncio.ensure_future(_writers(store, writers, stop, start))
    sql = "SELECT balance FROM cards WHERE pan_ref=?"
    took: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        if in_thread:
            await asyncio.to_thread(lambda: store._db.execute(sql, (REF,)).fetchall())
        else:
            await store.get_card(REF)
        took.append(time.perf_counter() - began)
        await asyncio.sleep(0)  # let the writers' callers run between two reads
    stop.set()
    await load
    return took


async def commits(store: SqliteStore, seconds: float, writers: int, start: int) -> tuple[float, float]:
    stop = asyncio.Event()
    before = store.commits
    began = time.perf_counter()
    task = asyncio.ensure_future(_writers(store, writers, stop, start))
    await asyncio.sleep(seconds)
    stop.set()
    done = await task
    elapsed = time.perf_counter() - began
    return done / elapsed, (store.commits - before) / elapsed


def _line(name: str, took: list[float], seconds: float) -> str:
    us = sorted(t * 1e6 for t in took)
    p99 = us[int(len(us) * 0.99)]
    return (
        f"{name:<24} {statistics.median(us):>8.1f} {p99:>8.1f} {us[-1]:>9.1f} {len(us) / seconds:>10.0f}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--writers", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(Path(tmp), "bench.db")
        try:
            print(f"a card read while {args.writers} callers commit purchases (microseconds)")
            print(f"{'':<24} {'median':>8} {'p99':>8} {'max':>9} {'reads/s':>10}")
            idle = await reads(store, args.seconds, 0, False, 0)
            on_loop = await reads(store, args.seconds, args.writers, False, 1)
            threaded = await reads(store, args.seconds, args.writers, True, 2 * 10**8)
            print(_line("on the loop, no writes", idle, args.seconds))
            print(_line("on the loop (chosen)", on_loop, args.seconds))
            print(_line("in a thread", threaded, args.seconds))
            print(f"median ratio thread / loop: {statistics.median(threaded) / statistics.median(on_loop):.1f}x")
            print()
            print("group commit: commit_financial calls and the transactions that carried them, per second")
            alone, alone_tx = await commits(store, args.seconds, 1, 4 * 10**8)
            grouped, grouped_tx = await commits(store, args.seconds, args.writers, 6 * 10**8)
            print(f"{'1 caller':<24} {alone:>10.0f} commits/s {alone_tx:>8.0f} transactions/s")
            print(f"{f'{args.writers} callers':<24} {grouped:>10.0f} commits/s {grouped_tx:>8.0f} transactions/s "
                  f"({grouped / grouped_tx:.1f} callers a transaction)")
            print(f"ratio {args.writers} callers / 1 caller: {grouped / alone:.1f}x")
        finally:
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
