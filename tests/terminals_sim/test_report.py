"""Percentiles, the report document (schema switchsim.fleet.report/2) and its HTML page.

Expected latencies are worked by hand from the bucket layout written in
terminals_sim/histogram.py's docstring: a value v >= 256 ns falls in the bucket of width 2**s,
s = bit_length(v) - 8, starting at (v >> s) << s, and a percentile reports its midpoint.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from terminals_sim.outcome import Failure, Kind, Outcome
from terminals_sim.report import SCHEMA, build_report, write_report
from terminals_sim.stats import RunStats, percentile
from terminals_sim.verdict import Thresholds


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
    stats = RunStats(start=100.0, timeout_s=5.0)
    # second 1: four answers of 1, 2, 3, 4 ms; second 2: a timeout after 5.2 s and a 97
    # counted unexpected after 10 ms
    for i, ms in enumerate((1, 2, 3, 4)):
        stats.record(_ok(), ms / 1000, 100.1 + i * 0.1)
    stats.record(Outcome(kind=Kind.SIGNIN, response_code=None, failure=Failure.TIMEOUT, detail="5 s"),
                 5.2, 101.5)
    stats.record(Outcome(kind=Kind.SIGNIN, response_code="97", failure=Failure.UNEXPECTED_CODE,
                         detail="39 = 97, expected 00"), 0.010, 101.6)
    return stats


def test_report_counts_codes_failures_kinds_and_seconds() -> None:
    report = build_report(_stats(), target="127.0.0.1:5800", scenario="steady", terminals=2,
                          started_at=0.0, duration_s=2.0)
    assert report["schema"] == SCHEMA == "switchsim.fleet.report/2"
    assert report["exchanges"] == 6 and report["ok"] == 4
    assert report["tps"] == 3.0 and report["timeout_ms"] == 5000.0
    assert report["failures"]["timeout"] == 1 and report["failures"]["unexpected_code"] == 1
    assert set(report["failures"]) == {f.value for f in Failure}
    assert report["response_codes"] == {"00": 4, "97": 1}
    lat = report["latency_ms"]
    # Six latencies: 1, 2, 3, 4, 10 ms and the timeout's 5200 ms. p50 = 3rd = 3 ms, in bucket
    # [183 << 14, 184 << 14) = [2.998272, 3.014656) ms, midpoint 3.006464. p90 = 6th = 5200 ms,
    # in [154 << 25, 155 << 25) ns, midpoint 5184.159744 ms; max is exact.
    assert lat["count"] == 6 and lat["timeouts"] == 1
    assert lat["p50"] == 3.006 and lat["p90"] == 5184.16 and lat["max"] == 5200.0
    assert lat["mean"] == round((1 + 2 + 3 + 4 + 10 + 5200) / 6, 3)
    assert report["latency_histogram"]["count"] == 6 and report["latency_histogram"]["unit"] == "ns"
    signin = report["by_kind"]["signin"]
    assert (signin["exchanges"], signin["ok"], signin["failures"]) == (2, 0, 2)
    assert signin["failure_kinds"] == {"timeout": 1, "unexpected_code": 1}
    assert signin["response_codes"] == {"97": 1}
    first, second = report["tps_over_time"]
    # second 1: 1, 2, 3, 4 ms; p50 = 2nd = 2 ms in [244 << 13, 245 << 13) -> 2.002944 ms;
    # p99 = 4th = 4 ms in [244 << 14, 245 << 14) -> 4.005888 ms (per second, no clamping).
    assert (first["second"], first["exchanges"], first["failures"]) == (1, 4, 0)
    assert (first["p50_ms"], first["p99_ms"]) == (2.003, 4.006)
    assert first["response_codes"] == {"00": 4} and first["failure_kinds"] == {}
    # second 2: 10 ms and 5200 ms; p50 = 10 ms in [152 << 16, 153 << 16) -> 9.994240 ms;
    # p99 = 5200 ms in [154 << 25, 155 << 25) -> 5184.159744 ms.
    assert (second["second"], second["exchanges"], second["failures"]) == (2, 2, 2)
    assert (second["p50_ms"], second["p99_ms"]) == (9.994, 5184.16)
    assert second["failure_kinds"] == {"timeout": 1, "unexpected_code": 1}
    assert report["expectations"]["held"] is False
    assert {"count": 1, "text": "signin: timeout: 5 s"} in report["expectations"]["problems"]
    assert report["started_at"] == "1970-01-01T00:00:00.000+00:00"
    assert report["merged_from"] == []
    assert report["thresholds"] == {"max_p99_ms": None, "min_tps": None, "max_failure_ratio": 0.0}
    assert report["verdict"]["passed"] is False


def test_a_timeout_counts_as_at_least_the_timeout() -> None:
    stats = RunStats(start=0.0, timeout_s=2.0)
    # A timer that fired a little early still counts as the whole timeout.
    stats.record(Outcome(kind=Kind.ECHO, response_code=None, failure=Failure.TIMEOUT), 1.999, 0.5)
    report = build_report(stats, target="h:1", scenario="s", terminals=1, started_at=0.0, duration_s=1.0)
    assert report["latency_ms"]["max"] == 2000.0 and report["latency_ms"]["timeouts"] == 1


def test_seconds_without_answers_are_gaps_not_zeros() -> None:
    stats = RunStats(start=0.0)
    stats.record(_ok(), 0.001, 0.5)
    stats.record(Outcome(kind=Kind.ECHO, response_code=None, failure=Failure.REFUSED), 0.0001, 1.5)
    stats.record(_ok(), 0.001, 3.5)
    report = build_report(stats, target="h:1", scenario="s", terminals=1, started_at=0.0, duration_s=4.0)
    points = report["tps_over_time"]
    assert [p["exchanges"] for p in points] == [1, 1, 0, 1]
    assert [p["p99_ms"] is None for p in points] == [False, True, True, False]
    assert [p["t"] for p in points] == [0, 1, 2, 3]


def test_exchanges_without_an_answer_have_no_latency() -> None:
    stats = RunStats(start=0.0)
    stats.record(Outcome(kind=Kind.ECHO, response_code=None, failure=Failure.REFUSED), 0.002, 0.1)
    stats.record(Outcome(kind=Kind.ECHO, response_code=None, failure=Failure.RESET), 0.002, 0.15)
    stats.record(Outcome(kind=Kind.ECHO, response_code=None, failure=Failure.PROTOCOL), None, 0.2)
    stats.record(Outcome(kind=Kind.ECHO, response_code=None, failure=Failure.PROTOCOL), 0.003, 0.3)
    assert stats.latency.count == 1 and stats.latency.max_ns == 3_000_000
    assert stats.exchanges == 4 and stats.failed == 4


def test_seconds_are_wall_clock_seconds() -> None:
    # Started at Unix 1000.75: the first point is the rest of second 1000, the next is 1001.
    stats = RunStats(start=50.0, wall_start=1000.75)
    stats.record(_ok(), 0.001, 50.1)  # 1000.85
    stats.record(_ok(), 0.001, 50.3)  # 1001.05
    stats.record(_ok(), 0.001, 51.2)  # 1001.95
    report = build_report(stats, target="h:1", scenario="s", terminals=1, started_at=1000.75, duration_s=1.3)
    assert [(p["t"], p["exchanges"]) for p in report["tps_over_time"]] == [(1000, 1), (1001, 2)]
    assert report["started_at"] == "1970-01-01T00:16:40.750+00:00"


def test_connected_terminals_per_second() -> None:
    stats = RunStats(start=0.0)
    stats.connection_opened()
    stats.connection_opened()
    stats.record(_ok(), 0.001, 0.2)
    stats.connection_closed()
    stats.record(_ok(), 0.001, 1.2)
    stats.connection_opened()
    stats.connection_opened()
    stats.record(_ok(), 0.001, 3.2)
    report = build_report(stats, target="h:1", scenario="s", terminals=3, started_at=0.0, duration_s=3.5)
    assert [p["connected"] for p in report["tps_over_time"]] == [2, 1, 3, 3]
    assert report["max_connected"] == 3


def _page_report() -> dict[str, object]:
    return build_report(_stats(), target="h:1", scenario="steady", terminals=2, started_at=0.0, duration_s=2.0,
                        thresholds=Thresholds(max_p99_ms=50.0))


def test_write_report_puts_json_and_a_page_beside_one_shared_plotly(tmp_path: Path) -> None:
    html = write_report(_page_report(), tmp_path / "run" / "out.json")
    assert html == tmp_path / "run" / "out.html"
    assert json.loads((tmp_path / "run" / "out.json").read_text())["exchanges"] == 6
    page = html.read_text()
    # The verdict is the page's first line of text, before the charts.
    first_text = re.search(r"<body>\s*<p[^>]*>([^<]*)</p>", page)
    assert first_text is not None and first_text.group(1).startswith("verdict: FAILED")
    assert "max_p99_ms" in page and "Response codes" in page and "Failures by kind" in page
    assert "Connected terminals" in page and "Latency" in page and "Throughput" in page
    # plotly.js is one shared file beside the reports, not inside every page.
    assert re.search(r'<script[^>]* src="plotly.min.js"', page) and len(page) < 200_000
    shared = tmp_path / "run" / "plotly.min.js"
    assert shared.stat().st_size > 1_000_000
    write_report(_page_report(), tmp_path / "run" / "second.json")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "out.html", "out.json", "plotly.min.js", "second.html", "second.json"]


def test_self_contained_page_carries_plotly(tmp_path: Path) -> None:
    html = write_report(_page_report(), tmp_path / "out.json", self_contained=True)
    page = html.read_text()
    assert 'src="plotly.min.js"' not in page and len(page) > 1_000_000
    assert not (tmp_path / "plotly.min.js").exists()


def test_a_sixty_second_page_is_under_500_kb(tmp_path: Path) -> None:
    stats = RunStats(start=0.0, wall_start=1_700_000_000.25, timeout_s=5.0)
    codes = ("00", "00", "00", "51", "55", "A0")
    for second in range(60):
        for i in range(300):
            now = second + i / 300
            if i % 97 == 0:
                stats.record(Outcome(kind=Kind.PURCHASE, response_code=None, failure=Failure.TIMEOUT), 5.0, now)
            else:
                code = codes[i % len(codes)]
                failure = Failure.UNEXPECTED_CODE if code not in ("00", "51") else None
                kind = Kind.PURCHASE if i % 2 else Kind.BALANCE
                stats.record(Outcome(kind=kind, response_code=code, failure=failure), 0.0005 + (i % 50) / 1000, now)
    report = build_report(stats, target="h:1", scenario="retail-day", terminals=50, started_at=1_700_000_000.25,
                          duration_s=60.0, thresholds=Thresholds(max_p99_ms=100.0, min_tps=100.0))
    html = write_report(report, tmp_path / "run.json")
    assert len(report["tps_over_time"]) == 61
    assert html.stat().st_size < 500_000
