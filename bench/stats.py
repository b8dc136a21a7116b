"""Cost of counting one exchange on the fleet's hot path (terminals_sim/stats.py), beside the
way report/1 counted it (every latency kept in two arrays and sorted at the end).

usage: python bench/stats.py [--n 200000] [--memory-n 300000]

Cases, each over the same outcomes (echo and purchase, 00 and the odd 51 and timeout) and
log-normal latencies around 1.5 ms spread over 60 seconds:
  samples (report/1)    the baseline: per-exchange counters plus the latency appended to the
                        run's array and its second's array (what stats.py did before)
  histogram (report/2)  RunStats.record: the same counters, per-second codes and failure kinds,
                        and the latency into the kind's and the second's log-linear histogram
Then, for --memory-n exchanges, the memory each holds when the run ends (tracemalloc) and the
time to build the report's latency figures from it.
Each per-record figure is the best of 7 timed loops of this thread's CPU time, the two cases
taking turns (other work on a shared machine only adds time).
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
from array import array
from collections import Counter
from collections.abc import Callable
from typing import Any

from terminals_sim.outcome import Failure, Kind, Outcome
from terminals_sim.report import build_report
from terminals_sim.stats import RunStats, percentile


class SampleStats:
    """report/1's counting, kept here as the baseline: every latency in two arrays."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.exchanges = 0
        self.ok = 0
        self.failures: Counter[Failure] = Counter()
        self.response_codes: Counter[str] = Counter()
        self.by_kind: dict[Kind, list[int]] = {}
        self.latencies_ms: array[float] = array("d")
        self.seconds: list[array[float]] = []

    def record(self, outcome: Outcome, latency_s: float | None, now: float) -> None:
        self.exchanges += 1
        kind = self.by_kind.get(outcome.kind)
        if kind is None:
            kind = self.by_kind[outcome.kind] = [0, 0]
        kind[0] += 1
        index = int(now - self.start)
        while len(self.seconds) <= index:
            self.seconds.append(array("d"))
        if outcome.response_code is not None:
            self.response_codes[outcome.response_code] += 1
        if outcome.failure is None:
            self.ok += 1
        else:
            self.failures[outcome.failure] += 1
        if latency_s is not None and outcome.failure is not Failure.TIMEOUT:
            ms = latency_s * 1000.0
            self.latencies_ms.append(ms)
            self.seconds[index].append(ms)

    def figures(self) -> list[float]:
        ordered = sorted(self.latencies_ms)
        per_second = [percentile(sorted(s), 99) for s in self.seconds]
        return [percentile(ordered, p) for p in (50, 90, 99, 99.9)] + per_second


def workload(n: int, seed: int = 1) -> list[tuple[Outcome, float, float]]:
    rng = random.Random(seed)
    ok_echo = Outcome(kind=Kind.ECHO, response_code="00")
    ok_buy = Outcome(kind=Kind.PURCHASE, response_code="00")
    declined = Outcome(kind=Kind.PURCHASE, response_code="51", failure=Failure.UNEXPECTED_CODE, detail="39 = 51")
    timeout = Outcome(kind=Kind.PURCHASE, response_code=None, failure=Failure.TIMEOUT, detail="5 s")
    items = []
    for i in range(n):
        outcome = timeout if i % 997 == 0 else declined if i % 53 == 0 else ok_buy if i % 3 == 0 else ok_echo
        latency = 5.0 if outcome is timeout else rng.lognormvariate(-6.5, 0.5)
        items.append((outcome, latency, 60.0 * i / n))
    return items


def per_record_us(makers: dict[str, Callable[[], Any]], items: list[tuple[Outcome, float, float]],
                  rounds: int = 7) -> dict[str, float]:
    """Best-of-``rounds`` microseconds per record, the cases taking turns round by round so that
    a burst of other work on the machine does not land on one case only."""
    best = dict.fromkeys(makers, float("inf"))
    for _ in range(rounds):
        for label, make in makers.items():
            record = make().record
            started = time.thread_time()
            for outcome, latency, now in items:
                record(outcome, latency, now)
            best[label] = min(best[label], time.thread_time() - started)
    return {label: seconds / len(items) * 1e6 for label, seconds in best.items()}


def held(make: Callable[[], object], items: list[tuple[Outcome, float, float]]) -> tuple[int, object]:
    tracemalloc.start()
    stats = make()
    for outcome, latency, now in items:
        stats.record(outcome, latency, now)  # type: ignore[attr-defined]
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return size, stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--memory-n", type=int, default=300_000)
    args = parser.parse_args()
    items = workload(args.n)
    us = per_record_us({
        "samples": lambda: SampleStats(0.0),
        "histogram": lambda: RunStats(0.0, wall_start=1_700_000_000.0, timeout_s=5.0),
    }, items)
    baseline, current = us["samples"], us["histogram"]
    print(f"{'per exchange':<22} {'us/record':>10} {'ratio':>7}")
    print(f"{'samples (report/1)':<22} {baseline:>10.3f} {1.0:>7.2f}")
    print(f"{'histogram (report/2)':<22} {current:>10.3f} {current / baseline:>7.2f}")

    big = workload(args.memory_n, seed=2)
    old_bytes, old = held(lambda: SampleStats(0.0), big)
    new_bytes, new = held(lambda: RunStats(0.0, wall_start=1_700_000_000.0, timeout_s=5.0), big)
    started = time.perf_counter()
    old.figures()  # type: ignore[attr-defined]
    old_s = time.perf_counter() - started
    started = time.perf_counter()
    assert isinstance(new, RunStats)
    build_report(new, target="h:1", scenario="bench", terminals=50, started_at=1_700_000_000.0, duration_s=60.0)
    new_s = time.perf_counter() - started
    print(f"\n{args.memory_n} exchanges over 60 s   {'held MB':>8} {'ratio':>7} {'report s':>9} {'ratio':>7}")
    print(f"{'samples (report/1)':<30} {old_bytes / 1e6:>8.1f} {1.0:>7.2f} {old_s:>9.3f} {1.0:>7.2f}")
    print(f"{'histogram (report/2)':<30} {new_bytes / 1e6:>8.1f} {new_bytes / old_bytes:>7.2f} {new_s:>9.3f} "
          f"{new_s / old_s:>7.2f}")
    print("(report/2's report time includes the whole document: by kind, per second, verdict)")


if __name__ == "__main__":
    main()
