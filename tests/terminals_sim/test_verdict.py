"""The fleet's verdict: thresholds and per-kind checks on a report, and its JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from terminals_sim.outcome import Failure, Kind, Outcome
from terminals_sim.report import build_report
from terminals_sim.stats import RunStats
from terminals_sim.verdict import ThresholdError, Thresholds, write_verdict_junit


def _report(thresholds: Thresholds, *, failed_balance: int = 0) -> dict[str, Any]:
    """100 echoes of 1..100 ms (p99 = 99 ms), 10 balance inquiries, ``failed_balance`` of them
    answered 51 where 00 was expected; 110 exchanges in 10 s = 11 TPS."""
    stats = RunStats(start=0.0, timeout_s=5.0)
    for i in range(1, 101):
        stats.record(Outcome(kind=Kind.ECHO, response_code="00"), i / 1000, i / 11)
    for i in range(10):
        if i < failed_balance:
            outcome = Outcome(kind=Kind.BALANCE, response_code="51", failure=Failure.UNEXPECTED_CODE,
                              detail="39 = 51, expected 00")
        else:
            outcome = Outcome(kind=Kind.BALANCE, response_code="00")
        stats.record(outcome, 0.002, 9.5)
    return build_report(stats, target="h:1", scenario="s", terminals=2, started_at=0.0, duration_s=10.0,
                        thresholds=thresholds)


def _checks(report: dict[str, Any]) -> dict[str, tuple[bool, str]]:
    return {c["name"]: (c["passed"], c["message"]) for c in report["verdict"]["checks"]}


def test_a_run_within_every_threshold_passes() -> None:
    report = _report(Thresholds(max_p99_ms=120.0, min_tps=10.0))
    assert report["verdict"]["passed"] is True
    checks = _checks(report)
    assert list(checks) == ["max_failure_ratio", "max_p99_ms", "min_tps", "balance", "echo"]
    assert all(passed for passed, _ in checks.values())
    assert checks["min_tps"][1] == "11 TPS >= 10"
    assert report["verdict"]["line"].startswith("verdict: PASSED (failures 0.00% (0 of 110) <= 0.00%; p99 ")


def test_each_threshold_fails_on_its_own() -> None:
    # p99 of 1..100 ms and ten 2 ms answers is the 109th of 110 samples: 99 ms (within 0.4 %).
    checks = _checks(_report(Thresholds(max_p99_ms=50.0, min_tps=20.0)))
    assert checks["max_p99_ms"][0] is False and checks["max_p99_ms"][1].endswith("> 50 ms")
    p99 = float(checks["max_p99_ms"][1].split()[1])
    assert abs(p99 - 99.0) <= 99.0 / 256
    assert checks["min_tps"] == (False, "11 TPS < 20")
    assert checks["max_failure_ratio"][0] is True and checks["echo"][0] is True


def test_failures_fail_the_run_and_their_kind_unless_tolerated() -> None:
    strict = _report(Thresholds(), failed_balance=2)
    checks = _checks(strict)
    assert checks["max_failure_ratio"] == (False, "failures 1.82% (2 of 110) > 0.00%")
    assert checks["balance"] == (False, "balance: 2 of 10 failed (20.00% > 0.00%): unexpected_code 2")
    assert checks["echo"][0] is True
    assert strict["verdict"]["line"] == (
        "verdict: FAILED: failures 1.82% (2 of 110) > 0.00%; "
        "balance: 2 of 10 failed (20.00% > 0.00%): unexpected_code 2")
    # 5 % tolerated: the run (1.82 %) passes, the balance inquiries (20 %) still fail.
    tolerant = _checks(_report(Thresholds(max_failure_ratio=0.05), failed_balance=2))
    assert tolerant["max_failure_ratio"][0] is True and tolerant["balance"][0] is False
    assert _report(Thresholds(max_failure_ratio=0.2), failed_balance=2)["verdict"]["passed"] is True


def test_a_run_without_exchanges_fails() -> None:
    report = build_report(RunStats(start=0.0), target="h:1", scenario="s", terminals=1, started_at=0.0,
                          duration_s=1.0, thresholds=Thresholds(max_p99_ms=10.0))
    checks = _checks(report)
    assert checks["max_failure_ratio"] == (False, "no exchange finished")
    assert checks["max_p99_ms"][0] is False


@pytest.mark.parametrize(
    "kwargs", [{"max_p99_ms": 0.0}, {"min_tps": -1.0}, {"max_failure_ratio": 1.5}, {"max_failure_ratio": -0.1}]
)
def test_impossible_thresholds_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ThresholdError):
        Thresholds(**kwargs)


def test_junit_has_a_case_per_threshold_and_per_step_kind(tmp_path: Path) -> None:
    report = _report(Thresholds(max_p99_ms=50.0, min_tps=5.0), failed_balance=1)
    path = tmp_path / "fleet.xml"
    write_verdict_junit(report, path)
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    assert root.tag == "testsuites" and suite is not None
    assert (suite.get("name"), suite.get("tests"), suite.get("failures"), suite.get("time")) == (
        "switchsim.fleet", "5", "3", "10.000")
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    assert set(cases) == {
        ("switchsim.fleet.thresholds", "max_failure_ratio"),
        ("switchsim.fleet.thresholds", "max_p99_ms"),
        ("switchsim.fleet.thresholds", "min_tps"),
        ("switchsim.fleet.steps", "balance"),
        ("switchsim.fleet.steps", "echo"),
    }
    balance = cases[("switchsim.fleet.steps", "balance")].find("failure")
    assert balance is not None and balance.get("type") == "StepFailed"
    assert balance.get("message") == "balance: 1 of 10 failed (10.00% > 0.00%): unexpected_code 1"
    assert "1 x balance: unexpected_code: 39 = 51, expected 00" in (balance.text or "")
    assert cases[("switchsim.fleet.thresholds", "min_tps")].find("failure") is None
    p99 = cases[("switchsim.fleet.thresholds", "max_p99_ms")].find("failure")
    assert p99 is not None and p99.get("type") == "ThresholdFailed"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["max_p99_ms"] == "50" and props["min_tps"] == "5" and props["target"] == "h:1"
