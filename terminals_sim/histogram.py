"""Latency as an HDR-style log-linear histogram: O(1) to record, exact to merge, and
percentiles within 1/256 (0.4 %) of the true value.

Layout (the one every ``latency_histogram`` of a fleet report uses; see report.py): a value
is a whole number of nanoseconds ``v``. Values below 256 ns have a bucket each (index ``v``).
Above that, with ``s = v.bit_length() - 8`` (so that ``v >> s`` lies in [128, 256)), the index
is ``128 * s + (v >> s)``: every power of two is cut into 128 buckets of equal width ``2**s``.
Bucket ``i`` >= 256 therefore holds ``[(i - 128 s) << s, ((i - 128 s) + 1) << s)`` with
``s = i // 128 - 1``. A bucket is never wider than 1/128 of its lower bound, so the bucket's
midpoint, which is what a percentile reports, is within 1/256 of any value in it (for values
of at least 128 ns; every latency over a socket is far above that).

Merging two histograms adds their counts bucket by bucket, so the percentiles of a merge are
those of the pooled samples, to the same precision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

UNIT = "ns"
SUB_BUCKETS = 128  # buckets per power of two
SUB_BITS = 7
LINEAR_LIMIT = 2 * SUB_BUCKETS  # values below this have a bucket each


class HistogramError(ValueError):
    """A histogram in a document that is not in this layout or is not well formed."""


def bucket_index(ns: int) -> int:
    """The bucket that holds ``ns`` nanoseconds (negative values count as 0)."""
    if ns < LINEAR_LIMIT:
        return ns if ns > 0 else 0
    shift = ns.bit_length() - SUB_BITS - 1
    return (shift << SUB_BITS) + (ns >> shift)


def bucket_bounds(index: int) -> tuple[int, int]:
    """``[low, high)`` in nanoseconds of bucket ``index``."""
    if index < LINEAR_LIMIT:
        return index, index + 1
    shift = (index >> SUB_BITS) - 1
    mantissa = index - (shift << SUB_BITS)
    return mantissa << shift, (mantissa + 1) << shift


def bucket_midpoint(index: int) -> float:
    low, high = bucket_bounds(index)
    return (low + high) / 2.0


def percentile_ns(counts: Mapping[int, int], p: float) -> float | None:
    """Nearest-rank percentile over bucket counts (the midpoint of the bucket holding the
    smallest sample with at least p% of the samples at or below it); None when empty."""
    total = sum(counts.values())
    if total == 0:
        return None
    # Rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point, not 999.
    rank = min(total, max(1, math.ceil(round(p * total / 100.0, 9))))
    seen = 0
    for index in sorted(counts):
        seen += counts[index]
        if seen >= rank:
            return bucket_midpoint(index)
    raise AssertionError("unreachable: the ranks add up to the total")


def merge_counts(into: dict[int, int], counts: Mapping[int, int]) -> None:
    for index, n in counts.items():
        into[index] = into.get(index, 0) + n


def buckets_to_json(counts: Mapping[int, int]) -> list[list[int]]:
    """``[[index, count], ...]`` in index order, empty buckets left out."""
    return [[i, counts[i]] for i in sorted(counts) if counts[i]]


def buckets_from_json(doc: Any, where: str) -> dict[int, int]:
    if not isinstance(doc, list):
        raise HistogramError(f"{where}: buckets must be a list of [index, count] pairs")
    counts: dict[int, int] = {}
    for n, pair in enumerate(doc):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in pair)
        ):
            raise HistogramError(f"{where}: bucket {n} is not an [index, count] pair of whole numbers: {pair!r}")
        counts[pair[0]] = counts.get(pair[0], 0) + pair[1]
    return counts


class Histogram:
    """Counts per bucket plus the exact count, sum, min and max (for the mean and the ends)."""

    __slots__ = ("count", "counts", "max_ns", "min_ns", "sum_ns")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.sum_ns = 0
        self.min_ns = 0
        self.max_ns = 0

    def record_ns(self, ns: int) -> None:
        """Count one value: a few integer operations and one dict update, whatever the count."""
        if ns < 0:
            ns = 0
        self.add(bucket_index(ns), ns)

    def add(self, index: int, ns: int) -> None:
        """``record_ns`` for a caller that already has the bucket (``bucket_index(ns)``)."""
        counts = self.counts
        counts[index] = counts.get(index, 0) + 1
        if self.count == 0 or ns < self.min_ns:
            self.min_ns = ns
        if ns > self.max_ns:
            self.max_ns = ns
        self.count += 1
        self.sum_ns += ns

    def merge(self, other: Histogram) -> None:
        if other.count == 0:
            return
        merge_counts(self.counts, other.counts)
        self.min_ns = other.min_ns if self.count == 0 else min(self.min_ns, other.min_ns)
        self.max_ns = max(self.max_ns, other.max_ns)
        self.count += other.count
        self.sum_ns += other.sum_ns

    @classmethod
    def merged(cls, parts: Iterable[Histogram]) -> Histogram:
        total = cls()
        for part in parts:
            total.merge(part)
        return total

    def percentile_ms(self, p: float) -> float | None:
        """Nearest-rank percentile in milliseconds, kept inside the exact min and max."""
        ns = percentile_ns(self.counts, p)
        if ns is None:
            return None
        return min(max(ns, self.min_ns), self.max_ns) / 1e6

    def mean_ms(self) -> float | None:
        return self.sum_ns / self.count / 1e6 if self.count else None

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": UNIT,
            "sub_buckets": SUB_BUCKETS,
            "count": self.count,
            "sum_ns": self.sum_ns,
            "min_ns": self.min_ns,
            "max_ns": self.max_ns,
            "buckets": buckets_to_json(self.counts),
        }

    @classmethod
    def from_json(cls, doc: Any, where: str) -> Histogram:
        if not isinstance(doc, dict):
            raise HistogramError(f"{where}: not a histogram object")
        if doc.get("unit") != UNIT or doc.get("sub_buckets") != SUB_BUCKETS:
            raise HistogramError(
                f"{where}: histogram layout is unit {doc.get('unit')!r} with {doc.get('sub_buckets')!r} "
                f"sub-buckets; this version reads unit {UNIT!r} with {SUB_BUCKETS}"
            )
        hist = cls()
        hist.counts = buckets_from_json(doc.get("buckets"), f"{where}.buckets")
        for name in ("count", "sum_ns", "min_ns", "max_ns"):
            value = doc.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise HistogramError(f"{where}.{name}: must be a whole number, got {value!r}")
            setattr(hist, name, value)
        if sum(hist.counts.values()) != hist.count:
            raise HistogramError(
                f"{where}: buckets hold {sum(hist.counts.values())} values but count says {hist.count}"
            )
        return hist
