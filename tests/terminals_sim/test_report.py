"""Percentiles, the report document and its chart."""

from __future__ import annotations

import json
from pathlib import Path

from terminals_sim.outcome import Failure, Kind, Outcome
from terminals_sim.report import build_report, write_report
from terminals_sim.stats import RunStats, percentile


def test_nearest_rank_percentiles_on_a_hand_worked_sample() -> None:
    # 1..10 ms. Nearest rank: p50 -> ceil(0.5*10)=5th = 5; p90 -> 9th = 9; p99 -> ceil(9.9)=10th
    # = 10; p99.9 -> 10th = 10. 1..1000: p99.9 -> ceil(999.0) = 999th = 999.
    sample = [float(v) for v in range(1, 11)]
    assert [percentile(sample, p) for p in (50, 90, 99, 99.9)] == [5.0, 9.0, 10.0, 10.0]
    big = [float(v) for v in range(1, 1001)]
    assert percentile(big, 99.9) == 999.0
    assert percentile(big, 99) == 990.0
    assert percentile([], 50) == 0.0
    assert percentile([7.0], 1) == 7.0


def _ok(kind: Kind = Kind.ECHO, code: str = "00") -> Outcome:
    return Outcome(kind=kind, response_code=code)


def _stats() -> RunStats:
    stats = RunStats(start=100.0)
    # second 1: four answers of 1, 2, 3, 4 ms; second 2: a timeout and a 97 counted unexpected
    for i, ms in enumerate((1, 2, 3, 4)):
        stats.record(_ok(), ms / 1000, 100.1 + i * 0.1)
    stats.record(Outcome(kind=Kind.SIGNIN, response_code=None, failure=Failure.TIMEOUT, detail="5 s"),
                 5.0, 101.5)
    stats.record(Outcome(kind=Kind.SIGNIN, response_code="97", failure=Failure.UNEXPECTED_CODE,
                         detail="39 = 97, expected 00"), 0.010, 101.6)
    return stats


def test_report_counts_codes_failures_kinds_and_seconds() -> None:
    report = build_report(_stats(), target="127.0.0.1:5800", scenario="steady", terminals=2,
                          started_at=0.0, duration_s=2.0)
    assert report["exchanges"] == 6 and report["ok"] == 4
    assert report["tps"] == 3.0
    assert report["failures"]["timeout"] == 1 and report["failures"]["unexpected_code"] == 1
    assert set(report["failures"]) == {f.value for f in Failure}
    assert report["response_codes"] == {"00": 4, "97": 1}
    # latencies 1, 2, 3, 4, 10 ms (the timeout has none): p50 = 3rd = 3, p90 = 5th = 10
    assert report["latency_ms"]["p50"] == 3.0 and report["latency_ms"]["p90"] == 10.0
    assert report["latency_ms"]["max"] == 10.0
    assert report["by_kind"]["signin"] == {"exchanges": 2, "ok": 0, "failures": 2,
                                           "response_codes": {"97": 1}}
    assert report["tps_over_time"] == [
        {"second": 1, "exchanges": 4, "failures": 0, "p50_ms": 2.0, "p99_ms": 4.0},
        {"second": 2, "exchanges": 2, "failures": 2, "p50_ms": 10.0, "p99_ms": 10.0},
    ]
    assert report["expectations"]["held"] is False
    assert report["started_at"] == "1970-01-01T00:00:00+00:00"


def test_write_report_puts_json_and_an_offline_chart_side_by_side(tmp_path: Path) -> None:
    report = build_report(_stats(), target="h:1", scenario="steady", terminals=2, started_at=0.0,
                          duration_s=2.0)
    html = write_report(report, tmp_path / "run" / "out.json")
    assert html == tmp_path / "run" / "out.html"
    assert json.loads((tmp_path / "run" / "out.json").read_text())["exchanges"] == 6
    page = html.read_text()
    assert "plotly" in page.lower() and "Throughput" in page and "Latency" in page
    # plotly.js is embedded (megabytes of it), not fetched: the page works offline.
    assert "<script src=" not in page and len(page) > 1_000_000


def test_exchanges_without_an_answer_have_no_latency() -> None:
    stats = RunStats(start=0.0)
    stats.record(Outcome(kind=Kind.ECHO, response_code=None, failure=Failure.REFUSED), 0.002, 0.1)
    stats.record(Outcome(kind=Kind.ECHO, response_code=None, failure=Failure.PROTOCOL), None, 0.2)
    stats.record(Outcome(kind=Kind.ECHO, response_code=None, failure=Failure.PROTOCOL), 0.003, 0.3)
    assert list(stats.latencies_ms) == [3.0]
    assert stats.exchanges == 3 and stats.failed == 3
