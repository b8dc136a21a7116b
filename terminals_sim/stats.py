"""Counting a run as it happens: exchanges, failures, response codes, latency, per second.

Kept cheap on purpose (a few appends and dict increments per exchange), since it sits on the
fleet's hot path.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from terminals_sim.outcome import Failure, Kind, Outcome

# Failures that mean no answer came back, so there is no latency to record.
_NO_ANSWER = frozenset({Failure.TIMEOUT, Failure.REFUSED, Failure.RESET})


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


@dataclass
class _Second:
    exchanges: int = 0
    failures: int = 0
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))


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
    """Everything a report needs, gathered one exchange at a time."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.exchanges = 0
        self.ok = 0
        self.failures: Counter[Failure] = Counter()
        self.response_codes: Counter[str] = Counter()
        self.by_kind: dict[Kind, KindCounts] = {}
        self.latencies_ms: array[float] = array("d")
        self.seconds: list[_Second] = []
        self.problems: Counter[str] = Counter()  # failure details, for the summary
        self.connected = 0
        self.max_connected = 0

    def record(self, outcome: Outcome, latency_s: float | None, now: float) -> None:
        """Count one exchange; ``latency_s`` None when nothing was sent (a local error)."""
        self.exchanges += 1
        kind = self.by_kind.get(outcome.kind)
        if kind is None:
            kind = self.by_kind[outcome.kind] = KindCounts()
        kind.exchanges += 1
        index = int(now - self.start)
        seconds = self.seconds
        while len(seconds) <= index:
            seconds.append(_Second())
        bucket = seconds[index]
        bucket.exchanges += 1
        if outcome.response_code is not None:
            self.response_codes[outcome.response_code] += 1
            kind.response_codes[outcome.response_code] += 1
        failure = outcome.failure
        if failure is None:
            self.ok += 1
            kind.ok += 1
        else:
            self.failures[failure] += 1
            kind.failures += 1
            bucket.failures += 1
            self.problems[f"{outcome.kind.value}: {failure.value}: {outcome.detail}"] += 1
        if latency_s is not None and failure not in _NO_ANSWER:
            ms = latency_s * 1000.0
            self.latencies_ms.append(ms)
            bucket.latencies_ms.append(ms)

    def connection_opened(self) -> None:
        self.connected += 1
        self.max_connected = max(self.max_connected, self.connected)

    def connection_closed(self) -> None:
        self.connected -= 1

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def snapshot(self, now: float) -> Snapshot:
        elapsed = now - self.start
        index = int(elapsed)
        # The last whole second; in the first second, the rate so far.
        if index >= 1 and len(self.seconds) >= index:
            current = float(self.seconds[index - 1].exchanges)
        else:
            current = self.exchanges / elapsed if elapsed > 0 else 0.0
        return Snapshot(
            elapsed=elapsed,
            exchanges=self.exchanges,
            current_tps=current,
            errors=self.failed,
            timeouts=self.failures[Failure.TIMEOUT],
            connected=self.connected,
        )
