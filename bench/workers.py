"""`serve --workers 2` beside one worker, on the two loads of bench/iso87_peer.py and
bench/switch_tps.py, same client (../shared/bench/blast.py), same machine, same run.

usage: python bench/workers.py [--shared ../shared] [--count 20000] [--purchases 4000] [--rounds 3]
                               [--log-exchanges on|off] [--postgresql]

Loads, each at 10 connections x 8 in flight:
  * iso87-binary 0800 network management (70 = 301): decode, answer, journal;
  * cup-pos purchase with PIN: MAC verify, PIN verify, ledger commit, response MAC.
Each round starts a fresh switch (its own store) with 1 and then with 2 workers; for a purchase
run one terminal signs in first and its purchases spread over both workers through the shared
store. The median TPS of the rounds is printed, and the ratio of 2 workers to 1. The blast client
is a process too: on a 2-core machine it takes a share of the cores the workers would use.
`--log-exchanges off` runs the switches as a load run would (`serve --log-exchanges off`);
`--postgresql` adds the purchase load on a PostgreSQL store (a throwaway server, started as the
tests start theirs, tests/pgserver.py; a fresh database each run).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import iso87_peer
import switch_tps
from harness import ROOT, blast, free_port, start_switch, stop, wait_port

sys.path.insert(0, str(ROOT))

from tests.pgserver import PgServer, create_database, drop_database, find_bindir

CONNS, DEPTH = 10, 8
EXTRA: list[str] = []  # serve options of every switch started (--log-exchanges off)


def run_iso87(shared: Path, tmp: Path, workers: int, count: int) -> float:
    config = iso87_peer.write_config(tmp)
    load = iso87_peer.frames(tmp / "nm.frames", count)
    port = free_port()
    switch = start_switch(config, port, *EXTRA, workers=workers)
    try:
        wait_port(port)
        blast(shared, port, load, 4, min(count, 2000))  # warm-up
        return blast(shared, port, load, CONNS, count, DEPTH)["tps"]
    finally:
        stop(switch)


def run_purchases(shared: Path, tmp: Path, workers: int, count: int, store: str = "bench.db") -> float:
    config = switch_tps.write_config(tmp, store)
    port = free_port()
    switch = start_switch(config, port, *EXTRA, workers=workers)
    try:
        wait_port(port)
        pik, mak = switch_tps.sign_in(port)
        warm = switch_tps.purchases(tmp / "warm.frames", pik, mak, 2, 500)
        result = blast(shared, port, warm, 4, 500)
        assert result["received"] == 500, result
        frames = switch_tps.purchases(tmp / "load.frames", pik, mak, 502, count)
        result = blast(shared, port, frames, CONNS, count, DEPTH)
        assert result["received"] == count, result
        return result["tps"]
    finally:
        stop(switch)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--count", type=int, default=20000, help="0800s per run")
    parser.add_argument("--purchases", type=int, default=4000, help="purchases per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--log-exchanges", choices=("on", "off"), default="on")
    parser.add_argument("--postgresql", action="store_true", help="the purchase load on PostgreSQL too")
    args = parser.parse_args()
    shared = Path(args.shared)
    EXTRA.extend(["--log-exchanges", args.log_exchanges])
    loads: dict[str, tuple[Callable[[Path, Path, int, int], float], int]] = {
        "iso87-binary 0800/301": (run_iso87, args.count),
        "cup-pos purchase": (run_purchases, args.purchases),
    }
    with postgresql(args.postgresql) as on_pg:
        if on_pg is not None:
            loads["purchase, PostgreSQL"] = (on_pg, args.purchases)
        compare(loads, shared, args.rounds, args.log_exchanges)


@contextmanager
def postgresql(wanted: bool) -> Iterator[Callable[[Path, Path, int, int], float] | None]:
    """The purchase run on a fresh database of a throwaway PostgreSQL server, or None."""
    bindir = find_bindir() if wanted else None
    if bindir is None:
        if wanted:
            print("no PostgreSQL binaries here: the PostgreSQL row is missing")
        yield None
        return
    server = PgServer(bindir, Path(tempfile.mkdtemp(prefix="switchsim-pg-")))
    server.start()

    def run(shared: Path, tmp: Path, workers: int, count: int) -> float:
        url = asyncio.run(create_database(server))
        try:
            return run_purchases(shared, tmp, workers, count, url)
        finally:
            asyncio.run(drop_database(server, url))

    try:
        yield run
    finally:
        server.stop()


def compare(
    loads: dict[str, tuple[Callable[[Path, Path, int, int], float], int]], shared: Path, rounds: int, logs: str
) -> None:
    print(f"serve --workers 2 vs one worker, {CONNS} x {DEPTH}, median of {rounds} rounds (blast.py client), "
          f"--log-exchanges {logs}")
    print(f"{'load':<22} {'1 worker TPS':>12} {'2 workers TPS':>13} {'ratio':>6}   rounds (1 / 2)")
    for name, (run, count) in loads.items():
        tps: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(rounds):
            for workers in (1, 2):
                with tempfile.TemporaryDirectory() as tmpdir:
                    tps[workers].append(run(shared, Path(tmpdir), workers, count))
        one, two = statistics.median(tps[1]), statistics.median(tps[2])
        each = " ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(tps[1], tps[2], strict=True))
        print(f"{name:<22} {one:>12.0f} {two:>13.0f} {two / one:>6.2f}   {each}")


if __name__ == "__main__":
    main()
