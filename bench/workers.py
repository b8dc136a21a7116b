"""`serve --workers 2` beside one worker, on the two loads of bench/iso87_peer.py and
bench/switch_tps.py, same client (../shared/bench/blast.py), same machine, same run.

usage: python bench/workers.py [--shared ../shared] [--count 20000] [--purchases 4000] [--rounds 3]

Loads, each at 10 connections x 8 in flight:
  * iso87-binary 0800 network management (70 = 301): decode, answer, journal;
  * cup-pos purchase with PIN: MAC verify, PIN verify, ledger commit, response MAC.
Each round starts a fresh switch (its own store) with 1 and then with 2 workers; for a purchase
run one terminal signs in first and its purchases spread over both workers through the shared
store. The median TPS of the rounds is printed, and the ratio of 2 workers to 1. The blast client
is a process too: on a 2-core machine it takes a share of the cores the workers would use.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import iso87_peer
import switch_tps
from harness import ROOT, blast, free_port, start_switch, stop, wait_port

CONNS, DEPTH = 10, 8


def run_iso87(shared: Path, tmp: Path, workers: int, count: int) -> float:
    config = iso87_peer.write_config(tmp)
    load = iso87_peer.frames(tmp / "nm.frames", count)
    port = free_port()
    switch = start_switch(config, port, workers=workers)
    try:
        wait_port(port)
        blast(shared, port, load, 4, min(count, 2000))  # warm-up
        return blast(shared, port, load, CONNS, count, DEPTH)["tps"]
    finally:
        stop(switch)


def run_purchases(shared: Path, tmp: Path, workers: int, count: int) -> float:
    config = switch_tps.write_config(tmp)
    port = free_port()
    switch = start_switch(config, port, workers=workers)
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
    args = parser.parse_args()
    shared = Path(args.shared)
    loads: dict[str, tuple[Callable[[Path, Path, int, int], float], int]] = {
        "iso87-binary 0800/301": (run_iso87, args.count),
        "cup-pos purchase": (run_purchases, args.purchases),
    }
    print(f"serve --workers 2 vs one worker, {CONNS} x {DEPTH}, median of {args.rounds} rounds (blast.py client)")
    print(f"{'load':<22} {'1 worker TPS':>12} {'2 workers TPS':>13} {'ratio':>6}   rounds (1 / 2)")
    for name, (run, count) in loads.items():
        tps: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.rounds):
            for workers in (1, 2):
                with tempfile.TemporaryDirectory() as tmpdir:
                    tps[workers].append(run(shared, Path(tmpdir), workers, count))
        one, two = statistics.median(tps[1]), statistics.median(tps[2])
        rounds = " ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(tps[1], tps[2], strict=True))
        print(f"{name:<22} {one:>12.0f} {two:>13.0f} {two / one:>6.2f}   {rounds}")


if __name__ == "__main__":
    main()
