"""``switchsim report merge``: two reports of two processes merged, checked against the raw
samples the test made them from (a plain nearest-rank written here)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from switchsim.cli import main
from terminals_sim.outcome import Failure, Kind, Outcome
from terminals_sim.report import build_report, write_json
from terminals_sim.stats import RunStats
from terminals_sim.verdict import Thresholds

# The two processes started 0.875 s apart, in different wall-clock seconds: their points line
# up by Unix second, not by their own second count. (Fractions exact in binary, so that the
# test's own second arithmetic cannot round differently from the code's.)
START_A = 1_700_000_000.25
START_B = 1_700_000_001.125


def nearest_rank_ms(samples_ns: list[int], p: float) -> float:
    ordered = sorted(samples_ns)
    rank = max(1, math.ceil(p / 100 * len(ordered) - 1e-9))
    return ordered[rank - 1] / 1e6


class Run:
    """One fleet process's stats, and every latency it recorded, by wall-clock second."""

    def __init__(self, wall_start: float, seed: int, mu: float, seconds: int, per_second: int) -> None:
        self.stats = RunStats(start=0.0, wall_start=wall_start, timeout_s=1.0)
        self.raw: list[int] = []
        self.by_second: dict[int, list[int]] = {}
        rng = random.Random(seed)
        self.stats.connection_opened()
        self.stats.connection_opened()
        for n in range(seconds * per_second):
            now = n / per_second
            kind = Kind.ECHO if n % 3 else Kind.PURCHASE
            if n % 101 == 0:  # a timeout: counted in the latency as the 1 s it waited
                outcome = Outcome(kind=kind, response_code=None, failure=Failure.TIMEOUT, detail="1 s")
                ns = 1_000_000_000
            else:
                code = "00" if n % 17 else "51"
                failure = Failure.UNEXPECTED_CODE if code == "51" else None
                outcome = Outcome(kind=kind, response_code=code, failure=failure, detail="39 = 51, expected 00")
                ns = max(200_000, int(rng.lognormvariate(mu, 0.5)))
            self.stats.record(outcome, ns / 1e9, now)
            self.raw.append(ns)
            self.by_second.setdefault(math.floor(wall_start + now), []).append(ns)

    def write(self, path: Path, thresholds: Thresholds) -> None:
        report = build_report(self.stats, target="127.0.0.1:5800", scenario="steady", terminals=2,
                              started_at=self.stats.wall_start or 0.0, duration_s=3.0, thresholds=thresholds)
        write_json(report, path)


TOLERANT = Thresholds(max_failure_ratio=0.2)


def _two_reports(tmp_path: Path, thresholds: Thresholds = TOLERANT) -> tuple[Run, Run]:
    a = Run(START_A, seed=1, mu=14.0, seconds=3, per_second=400)  # about 1.2 ms
    b = Run(START_B, seed=2, mu=15.2, seconds=3, per_second=250)  # a slower process, about 4 ms
    a.write(tmp_path / "a.json", thresholds)
    b.write(tmp_path / "b.json", thresholds)
    return a, b


def _merge(tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "all.json"
    rc = main(["report", "merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-o", str(out), *extra])
    return rc, json.loads(out.read_text()) if out.exists() else {}


def test_merged_percentiles_are_those_of_the_pooled_samples(tmp_path: Path) -> None:
    a, b = _two_reports(tmp_path)
    rc, merged = _merge(tmp_path)
    assert rc == 0
    pooled = a.raw + b.raw
    lat = merged["latency_ms"]
    assert lat["count"] == len(pooled) == 1950
    for key, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)):
        exact = nearest_rank_ms(pooled, p)
        # histogram.py's bound (1/256 of the value) plus the report's rounding to 0.001 ms
        assert abs(lat[key] - exact) <= exact / 256 + 0.0005, (key, lat[key], exact)
    assert lat["max"] == max(pooled) / 1e6
    assert lat["mean"] == pytest.approx(sum(pooled) / len(pooled) / 1e6, abs=0.001)
    # The same, step kind by step kind.
    echo_a = [ns for n, ns in enumerate(a.raw) if n % 3]
    echo_b = [ns for n, ns in enumerate(b.raw) if n % 3]
    exact = nearest_rank_ms(echo_a + echo_b, 99)
    assert abs(merged["by_kind"]["echo"]["latency_ms"]["p99"] - exact) <= exact / 256 + 0.0005


def test_counts_codes_and_failures_add_up(tmp_path: Path) -> None:
    _two_reports(tmp_path)
    _, merged = _merge(tmp_path)
    ra = json.loads((tmp_path / "a.json").read_text())
    rb = json.loads((tmp_path / "b.json").read_text())
    assert merged["exchanges"] == ra["exchanges"] + rb["exchanges"] == 1950
    assert merged["ok"] == ra["ok"] + rb["ok"]
    for code in ("00", "51"):
        assert merged["response_codes"][code] == ra["response_codes"][code] + rb["response_codes"][code]
    assert merged["failures"]["timeout"] == 12 + 8  # every 101st of 1200 and of 750
    assert merged["by_kind"]["purchase"]["exchanges"] == 400 + 250
    assert merged["terminals"] == 4 and merged["target"] == "127.0.0.1:5800"
    text = "echo: unexpected_code: 39 = 51, expected 00"
    problems = {p["text"]: p["count"] for p in merged["expectations"]["problems"]}
    assert problems[text] == sum(p["count"] for r in (ra, rb) for p in r["expectations"]["problems"]
                                 if p["text"] == text)
    # Earliest start (A, 0.25 s past Unix 1700000000) to latest end (B, 1.125 + 3 s).
    assert merged["started_at"] == "2023-11-14T22:13:20.250+00:00"
    assert merged["duration_s"] == 3.875 and merged["tps"] == round(1950 / 3.875, 1)
    assert [m["started_at"] for m in merged["merged_from"]] == [ra["started_at"], rb["started_at"]]


def test_the_series_line_up_on_wall_clock_seconds(tmp_path: Path) -> None:
    a, b = _two_reports(tmp_path)
    _, merged = _merge(tmp_path)
    points = merged["tps_over_time"]
    seconds = sorted(set(a.by_second) | set(b.by_second))
    assert [p["t"] for p in points] == seconds == list(range(1_700_000_000, 1_700_000_005))
    for p in points:
        raw = a.by_second.get(p["t"], []) + b.by_second.get(p["t"], [])
        assert p["exchanges"] == len(raw)
        exact = nearest_rank_ms(raw, 99)
        assert abs(p["p99_ms"] - exact) <= exact / 256 + 0.0005
    # Each process held 2 connections through every second it ran; they overlap in 3 seconds.
    assert [p["connected"] for p in points] == [2, 4, 4, 4, 2]
    assert merged["max_connected"] == 4


def test_the_merged_verdict_is_judged_again(tmp_path: Path) -> None:
    _two_reports(tmp_path, Thresholds(max_failure_ratio=0.2, max_p99_ms=1000.0))
    # Each input passes the 1000 ms p99; so does the merge (timeouts are 1 % of each).
    rc, merged = _merge(tmp_path)
    assert rc == 0 and merged["verdict"]["passed"]
    assert merged["thresholds"]["max_p99_ms"] == 1000.0
    # Judged against other thresholds given on the command line: exit 1, JUnit written.
    junit = tmp_path / "merged.xml"
    rc, merged = _merge(tmp_path, "--max-p99-ms", "2", "--junit", str(junit))
    assert rc == 1 and not merged["verdict"]["passed"]
    assert merged["verdict"]["line"].startswith("verdict: FAILED")
    assert 'name="max_p99_ms"' in junit.read_text()
    assert (tmp_path / "all.html").is_file() and (tmp_path / "plotly.min.js").is_file()


def test_reports_judged_differently_need_thresholds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = Run(START_A, seed=1, mu=14.0, seconds=1, per_second=10)
    a.write(tmp_path / "a.json", Thresholds(max_p99_ms=5.0))
    a.write(tmp_path / "b.json", Thresholds(max_p99_ms=9.0))
    rc, _ = _merge(tmp_path)
    assert rc == 2
    assert "judged against different thresholds" in capsys.readouterr().err
    rc, _ = _merge(tmp_path, "--max-failure-ratio", "1")
    assert rc == 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(schema="switchsim.fleet.report/1"), "schema is 'switchsim.fleet.report/1'"),
        (lambda r: r["by_kind"]["echo"].pop("latency_histogram"), "b.json.by_kind.echo: missing 'latency_histogram'"),
        (lambda r: r["tps_over_time"][0].update(exchanges=-1), "b.json.tps_over_time[0].exchanges: must be a whole"),
        (lambda r: r["latency_histogram"].update(unit="us"), None),  # the top-level one is derived, not read
    ],
)
def test_a_report_that_cannot_be_merged_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Any, message: str | None
) -> None:
    _two_reports(tmp_path)
    doc = json.loads((tmp_path / "b.json").read_text())
    edit(doc)
    (tmp_path / "b.json").write_text(json.dumps(doc))
    rc, _ = _merge(tmp_path)
    err = capsys.readouterr().err
    if message is None:
        assert rc == 0
        return
    assert rc == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_merge_refuses_bad_files_and_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _two_reports(tmp_path)
    assert main(["report", "merge", str(tmp_path / "a.json"), "-o", str(tmp_path / "all.xml")]) == 2
    assert "--output must name a .json file" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["report", "merge", str(tmp_path / "bad.json"), "-o", str(tmp_path / "all.json")]) == 2
    assert "bad.json: not JSON: Expecting property name" in capsys.readouterr().err
    assert main(["report", "merge", str(tmp_path / "missing.json"), "-o", str(tmp_path / "all.json")]) == 2
    assert "missing.json: cannot read" in capsys.readouterr().err
    assert not (tmp_path / "all.json").exists()
