"""Counting a run as it happens: exchanges, failures, response codes, latency, per second.

Kept cheap on purpose, since it sits on the fleet's hot path: each exchange costs a handful of
counter increments and two histogram bucket updates (histogram.py), the same whatever the
number of exchanges so far, and memory grows with the number of distinct buckets and seconds,
not with the number of exchanges (bench/stats.py measures it).

Seconds are wall-clock seconds: given the run's Unix start time, second 0 runs from the start
to the next whole Unix second, so that the series of runs in other processes line up when
their reports are merged.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from terminals_sim.histogram import LINEAR_LIMIT, SUB_BITS, Histogram
from terminals_sim.outcome import Failure, Kind, Outcome

# Failures that mean nothing came back and no wait was spent on an answer, so there is no
# latency to record. A timeout is different: the terminal waited, and it counts in the latency
# as at least the timeout.
_NO_LATENCY = frozenset({Failure.REFUSED, Failure.RESET})


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p% of the sample at or below it.

    ``sorted_values`` must be sorted ascending; an empty sample gives 0.0.
    """
    n = len(sorted_values)
    if n == 0:
        return 0.0
    # Rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point, not 999.
    rank = max(1, math.ceil(round(p * n / 100.0, 9)))
    return float(sorted_values[min(rank, n) - 1])


@dataclass
class KindCounts:
    exchanges: int = 0
    ok: int = 0
    failures: int = 0
    response_codes: Counter[str] = field(default_factory=Counter)
    failure_kinds: Counter[Failure] = field(default_factory=Counter)
    latency: Histogram = field(default_factory=Histogram)


@dataclass(slots=True)
class Second:
    """One wall-clock second of the run."""

    exchanges: int = 0
    failures: int = 0
    connected: int = 0  # most connections seen open at an exchange in this second
    response_codes: dict[str, int] = field(default_factory=dict)
    failure_kinds: dict[Failure, int] = field(default_factory=dict)
    latency: dict[int, int] = field(default_factory=dict)  # histogram.py bucket -> count


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a live display shows."""

    elapsed: float
    exchanges: int
    current_tps: float
    errors: int
    timeouts: int
    connected: int


class RunStats:
    """Everything a report needs, gathered one exchange at a time.

    ``start`` is on the clock the caller passes to ``record`` (the fleet uses
    ``time.monotonic()``); ``wall_start`` is the Unix time of that same instant, which puts
    the per-second series on wall-clock seconds (without it, seconds count from ``start``).
    ``timeout_s`` is the per-exchange timeout: a timed-out exchange counts in the latency as at
    least that.
    """

    def __init__(self, start: float, *, wall_start: float | None = None, timeout_s: float | None = None) -> None:
        self.start = start
        self.wall_start = wall_start
        self.timeout_s = timeout_s
        # The instant, on the caller's clock, at which the Unix second holding the start began.
        self._origin = start - (wall_start % 1.0 if wall_start is not None else 0.0)
        self.exchanges = 0
        self.by_kind: dict[Kind, KindCounts] = {}
        self.seconds: list[Second] = []
        self.problems: Counter[str] = Counter()  # failure details, for the summary
        self.connected = 0
        self.max_connected = 0

    @property
    def first_second(self) -> int:
        """The Unix second of ``seconds[0]`` (0 when the run has no wall-clock start)."""
        return math.floor(self.wall_start) if self.wall_start is not None else 0

    def record(self, outcome: Outcome, latency_s: float | None, now: float) -> None:
        """Count one exchange; ``latency_s`` None when nothing was sent (a local error)."""
        self.exchanges += 1
        kind = self.by_kind.get(outcome.kind)
        if kind is None:
            kind = self.by_kind[outcome.kind] = KindCounts()
        kind.exchanges += 1
        index = int(now - self._origin)
        seconds = self.seconds
        if index >= len(seconds):
            self._reach(index)
        second = seconds[index]
        second.exchanges += 1
        if self.connected > second.connected:
            second.connected = self.connected
        code = outcome.response_code
        if code is not None:
            kind.response_codes[code] += 1
            codes = second.response_codes
            codes[code] = codes.get(code, 0) + 1
        failure = outcome.failure
        if failure is None:
            kind.ok += 1
        else:
            kind.failures += 1
            kind.failure_kinds[failure] += 1
            second.failures += 1
            second.failure_kinds[failure] = second.failure_kinds.get(failure, 0) + 1
            self.problems[f"{outcome.kind.value}: {failure.value}: {outcome.detail}"] += 1
            if failure in _NO_LATENCY:
                latency_s = None
            elif failure is Failure.TIMEOUT and latency_s is not None and self.timeout_s is not None:
                latency_s = max(latency_s, self.timeout_s)
        if latency_s is not None:
            # Histogram.add and bucket_index, written out: this runs once per exchange.
            ns = int(latency_s * 1e9)
            if ns < LINEAR_LIMIT:
                bucket = ns if ns > 0 else 0
            else:
                shift = ns.bit_length() - SUB_BITS - 1
                bucket = (shift << SUB_BITS) + (ns >> shift)
            hist = kind.latency
            counts = hist.counts
            counts[bucket] = counts.get(bucket, 0) + 1
            if ns > hist.max_ns:
                hist.max_ns = ns
            if ns < hist.min_ns or not hist.count:
                hist.min_ns = ns
            hist.count += 1
            hist.sum_ns += ns
            counts = second.latency
            counts[bucket] = counts.get(bucket, 0) + 1

    def _reach(self, index: int) -> None:
        """Open the seconds up to ``index``; one without exchanges shows the connections open."""
        while len(self.seconds) <= index:
            self.seconds.append(Second(connected=self.connected))

    def connection_opened(self) -> None:
        self.connected += 1
        self.max_connected = max(self.max_connected, self.connected)

    def connection_closed(self) -> None:
        self.connected -= 1

    # The run's totals are the kinds' sums: counting them once more per exchange would cost
    # the hot path, and they are read only by a tick or a report.
    @property
    def ok(self) -> int:
        return sum(k.ok for k in self.by_kind.values())

    @property
    def failures(self) -> Counter[Failure]:
        total: Counter[Failure] = Counter()
        for k in self.by_kind.values():
            total.update(k.failure_kinds)
        return total

    @property
    def response_codes(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for k in self.by_kind.values():
            total.update(k.response_codes)
        return total

    @property
    def failed(self) -> int:
        return sum(k.failures for k in self.by_kind.values())

    @property
    def latency(self) -> Histogram:
        """Every recorded latency of the run (the kinds' histograms merged)."""
        return Histogram.merged(k.latency for k in self.by_kind.values())

    def snapshot(self, now: float) -> Snapshot:
        elapsed = now - self.start
        index = int(now - self._origin)
        # The last whole second; before there is one, the rate so far.
        if index >= 2 and len(self.seconds) >= index:
            current = float(self.seconds[index - 1].exchanges)
        else:
            current = self.exchanges / elapsed if elapsed > 0 else 0.0
        return Snapshot(
            elapsed=elapsed,
            exchanges=self.exchanges,
            current_tps=current,
            errors=self.failed,
            timeouts=sum(k.failure_kinds[Failure.TIMEOUT] for k in self.by_kind.values()),
            connected=self.connected,
        )
