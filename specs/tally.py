"""Counting for Prometheus at the cost of a dictionary update: the hot path adds to plain ints,
and prometheus-client sees them only when they are read.

prometheus-client's own ``Counter.inc`` and ``Histogram.observe`` take a lock and walk the
buckets on every call (bench/metrics.py: about 10 to 20 times a dictionary update here), which a
switch answering thousands of requests a second would pay once per family per request. A
``Tally`` holds the same families as plain numbers instead:

* in one process, ``Tally`` is a collector: a scrape renders the numbers as Prometheus families
  (``collect``), so nothing else runs per event;
* in prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set), ``sync()`` (once
  a second from a thread, and when the process ends) adds what changed since the last sync to
  real prometheus-client families, whose values live in that directory's files, so the process
  serving the port reads every process's sum with its ``MultiProcessCollector``.

The tallies are written by one thread (the event loop's) and read by another (a scrape or the
sync thread) through ``dict.copy()``, which the interpreter does in one step.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

Key = tuple[str, ...]


class CounterTally:
    __slots__ = ("doc", "labels", "name", "values")

    def __init__(self, name: str, doc: str, labels: Sequence[str] = ()) -> None:
        self.name, self.doc, self.labels = name, doc, tuple(labels)
        self.values: dict[Key, float] = {}

    def add(self, key: Key, amount: float = 1) -> None:
        values = self.values
        values[key] = values.get(key, 0) + amount


# How prometheus-client's multiprocess collector combines the processes' values of a gauge (the
# two this house uses): the live processes' sum, or their largest.
MultiprocessMode = Literal["livesum", "livemax"]


class GaugeTally:
    """One value, combined across processes as its ``multiprocess_mode`` says."""

    __slots__ = ("doc", "multiprocess_mode", "name", "value")

    def __init__(self, name: str, doc: str, multiprocess_mode: MultiprocessMode = "livesum") -> None:
        self.name, self.doc, self.multiprocess_mode = name, doc, multiprocess_mode
        self.value = 0.0

    def add(self, amount: float) -> None:
        self.value += amount


class HistogramTally:
    """Counts per bucket (not cumulative: the last one is +Inf) and the sum, by label values."""

    __slots__ = ("bounds", "doc", "labels", "name", "sums", "values")

    def __init__(self, name: str, doc: str, labels: Sequence[str], bounds: Sequence[float]) -> None:
        self.name, self.doc, self.labels = name, doc, tuple(labels)
        self.bounds = tuple(bounds)
        self.values: dict[Key, list[int]] = {}
        self.sums: dict[Key, float] = {}

    def observe(self, key: Key, amount: float) -> None:
        counts = self.values.get(key)
        if counts is None:
            counts = self.values[key] = [0] * (len(self.bounds) + 1)
            self.sums[key] = 0.0
        # bisect_left: the first bound >= amount, which is the bucket "le" the amount falls in.
        counts[bisect_left(self.bounds, amount)] += 1
        self.sums[key] += amount


Family = CounterTally | GaugeTally | HistogramTally


def _le(bound: float) -> str:
    return repr(float(bound))


class Tally(Collector):
    """Families of plain counts; a prometheus-client collector of them."""

    def __init__(self) -> None:
        self.families: list[Family] = []
        self._synced: dict[str, Any] = {}
        self._mirrors: dict[str, Any] = {}
        self._lock = threading.Lock()

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> CounterTally:
        family = CounterTally(name, doc, labels)
        self.families.append(family)
        return family

    def gauge(self, name: str, doc: str, multiprocess_mode: MultiprocessMode = "livesum") -> GaugeTally:
        family = GaugeTally(name, doc, multiprocess_mode)
        self.families.append(family)
        return family

    def histogram(self, name: str, doc: str, labels: Sequence[str], bounds: Sequence[float]) -> HistogramTally:
        family = HistogramTally(name, doc, labels, bounds)
        self.families.append(family)
        return family

    # -- one process: rendered at scrape time ------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            if isinstance(family, CounterTally):
                counter = CounterMetricFamily(family.name, family.doc, labels=family.labels)
                for key, value in family.values.copy().items():
                    counter.add_metric(key, value)
                yield counter
            elif isinstance(family, GaugeTally):
                yield GaugeMetricFamily(family.name, family.doc, value=family.value)
            else:
                histogram = HistogramMetricFamily(family.name, family.doc, labels=family.labels)
                sums = family.sums.copy()
                for key, counts in family.values.copy().items():
                    cumulative, buckets = 0, []
                    for bound, n in zip((*family.bounds, float("inf")), list(counts), strict=True):
                        cumulative += n
                        buckets.append((_le(bound) if bound != float("inf") else "+Inf", cumulative))
                    histogram.add_metric(key, buckets, sums.get(key, 0.0))
                yield histogram

    # -- multiprocess mode: deltas into prometheus-client's files ----------------------------

    def sync(self) -> None:
        """Add what changed since the last sync to the prometheus-client families (created on
        first use, in the multiprocess directory when that mode is on)."""
        with self._lock:
            for family in self.families:
                if isinstance(family, CounterTally):
                    self._sync_counter(family)
                elif isinstance(family, GaugeTally):
                    self._sync_gauge(family)
                else:
                    self._sync_histogram(family)

    def _mirror(self, family: Family) -> Any:
        mirror = self._mirrors.get(family.name)
        if mirror is None:
            if isinstance(family, CounterTally):
                mirror = Counter(family.name, family.doc, family.labels, registry=None)
            elif isinstance(family, GaugeTally):
                mirror = Gauge(family.name, family.doc, registry=None, multiprocess_mode=family.multiprocess_mode)
            else:
                mirror = Histogram(family.name, family.doc, family.labels, buckets=family.bounds, registry=None)
            self._mirrors[family.name] = mirror
        return mirror

    def _sync_counter(self, family: CounterTally) -> None:
        now = family.values.copy()
        before: dict[Key, float] = self._synced.get(family.name, {})
        for key, value in now.items():
            delta = value - before.get(key, 0)
            if delta:
                mirror = self._mirror(family)
                (mirror.labels(*key) if key else mirror).inc(delta)
        self._synced[family.name] = now

    def _sync_gauge(self, family: GaugeTally) -> None:
        value = family.value
        if self._synced.get(family.name) != value:
            self._mirror(family).set(value)
            self._synced[family.name] = value

    def _sync_histogram(self, family: HistogramTally) -> None:
        now = {key: list(counts) for key, counts in family.values.copy().items()}
        sums = family.sums.copy()
        before: dict[Key, tuple[list[int], float]] = self._synced.get(family.name, {})
        for key, counts in now.items():
            old, old_sum = before.get(key, ([0] * len(counts), 0.0))
            if counts == old:
                continue
            mirror = self._mirror(family)
            child = mirror.labels(*key) if key else mirror  # a family without labels is its own child
            # prometheus-client has no public way to add n observations to a bucket; its
            # histogram keeps one value per bucket (not cumulative) and the sum, as we do.
            for i, (n, m) in enumerate(zip(counts, old, strict=True)):
                if n != m:
                    child._buckets[i].inc(n - m)
            child._sum.inc(sums.get(key, 0.0) - old_sum)
        self._synced[family.name] = {key: (counts, sums.get(key, 0.0)) for key, counts in now.items()}


class Syncer:
    """Calls ``tally.sync()`` every ``period`` seconds on a thread, and once more at ``stop()``."""

    def __init__(self, tally: Tally, period: float = 1.0) -> None:
        self._tally = tally
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            self._tally.sync()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._tally.sync()
