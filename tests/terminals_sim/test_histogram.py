"""The log-linear latency histogram: its bucket layout worked by hand from the definition in
terminals_sim/histogram.py's docstring, and its percentiles against a plain nearest-rank over the
raw samples (written here, not the code's)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from terminals_sim.histogram import Histogram, HistogramError, bucket_bounds, bucket_index


def nearest_rank(samples: list[int], p: float) -> int:
    """The smallest sample with at least p% of the samples at or below it."""
    ordered = sorted(samples)
    rank = math.ceil(p / 100 * len(ordered) - 1e-9)
    return ordered[max(rank, 1) - 1]


@pytest.mark.parametrize(
    ("ns", "index", "low", "high"),
    [
        (0, 0, 0, 1),
        (255, 255, 255, 256),  # below 256 ns: one bucket per nanosecond
        (256, 256, 256, 258),  # 256 = 0b1_0000_0000: s = 9 - 8 = 1, 256 >> 1 = 128
        (1_000_000, 1780, 999_424, 1_003_520),  # s = 20 - 8 = 12, 1e6 >> 12 = 244; 12 * 128 + 244
        (5_000_000_000, 3349, 4_999_610_368, 5_033_164_800),  # s = 33 - 8 = 25, 5e9 >> 25 = 149
    ],
)
def test_bucket_layout_worked_by_hand(ns: int, index: int, low: int, high: int) -> None:
    assert bucket_index(ns) == index
    assert bucket_bounds(index) == (low, high)


@given(st.integers(min_value=128, max_value=10**13))
def test_every_value_lies_in_its_bucket_and_buckets_are_narrow(ns: int) -> None:
    low, high = bucket_bounds(bucket_index(ns))
    assert low <= ns < high
    assert (high - low) * 128 <= low  # at most 1/128 of the value wide


def test_buckets_tile_the_line_without_gaps() -> None:
    previous_high = 0
    for index in range(0, 40 * 128):
        low, high = bucket_bounds(index)
        assert low == previous_high and high > low
        previous_high = high


@given(st.lists(st.integers(min_value=1_000, max_value=10**11), min_size=1, max_size=400))
def test_percentiles_are_within_1_in_256_of_the_nearest_rank(samples: list[int]) -> None:
    hist = Histogram()
    for ns in samples:
        hist.record_ns(ns)
    for p in (1, 50, 90, 99, 99.9, 100):
        exact = nearest_rank(samples, p) / 1e6
        got = hist.percentile_ms(p)
        assert got is not None and abs(got - exact) <= exact / 256 * (1 + 1e-9), (p, got, exact)  # + float rounding
    assert hist.max_ns == max(samples) and hist.min_ns == min(samples) and hist.count == len(samples)


def test_merged_histograms_give_the_pooled_percentiles() -> None:
    rng = random.Random(7)
    a = [int(rng.lognormvariate(14, 0.6)) for _ in range(5000)]  # around 1.2 ms
    b = [int(rng.lognormvariate(15.5, 0.3)) for _ in range(2000)]  # a slower process, ~5.4 ms
    ha, hb = Histogram(), Histogram()
    for ns in a:
        ha.record_ns(ns)
    for ns in b:
        hb.record_ns(ns)
    merged = Histogram.merged([ha, hb])
    for p in (50, 90, 99, 99.9):
        exact = nearest_rank(a + b, p) / 1e6
        got = merged.percentile_ms(p)
        assert got is not None and abs(got - exact) <= exact / 256 * (1 + 1e-9)
    assert merged.count == 7000 and merged.sum_ns == sum(a) + sum(b)


def test_json_round_trip_and_layout_check() -> None:
    hist = Histogram()
    for ns in (300, 1_000_000, 1_000_100, 7_000_000_000):
        hist.record_ns(ns)
    doc = hist.to_json()
    # 300: s = 1, 128 + 150 = 278; 7e9: s = 25, 7e9 >> 25 = 208, 25 * 128 + 208 = 3408
    assert doc["buckets"] == [[278, 1], [1780, 2], [3408, 1]]
    back = Histogram.from_json(doc, "r.json")
    assert (back.counts, back.count, back.sum_ns, back.min_ns, back.max_ns) == (
        hist.counts, 4, hist.sum_ns, 300, 7_000_000_000)
    with pytest.raises(HistogramError, match=r"r.json: histogram layout is unit 'us' with 128"):
        Histogram.from_json({**doc, "unit": "us"}, "r.json")
    with pytest.raises(HistogramError, match=r"r.json.buckets: bucket 1 is not an \[index, count\] pair"):
        Histogram.from_json({**doc, "buckets": [[1, 2], [3]]}, "r.json")
    with pytest.raises(HistogramError, match="buckets hold 4 values but count says 5"):
        Histogram.from_json({**doc, "count": 5}, "r.json")


def test_an_empty_histogram_has_no_percentiles() -> None:
    assert Histogram().percentile_ms(50) is None and Histogram().mean_ms() is None
