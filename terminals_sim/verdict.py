"""A fleet run's verdict for CI: thresholds on the whole run and a check per step kind.

Checks, in this order (each passes or fails with a one-line message):

- ``max_failure_ratio``: failed exchanges / exchanges at most the limit (default 0: every
  exchange as the scenario expects). A run in which no exchange finished fails it.
- ``max_p99_ms`` (only when given): the run's p99 latency (report.py: from the histogram,
  within 0.4 %; a timeout counts as at least the timeout) at most the limit.
- ``min_tps`` (only when given): the run's exchanges per second at least the limit.
- one per step kind that ran, in name order: that kind's failed / exchanges at most
  ``max_failure_ratio``, so that a rare kind failing throughout is not hidden by a busy one.

The verdict passes when every check passes. It is judged on a report document (report.py), so
a merged report (merge.py) is judged the same way as a single run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from terminals_sim import junit

SUITE = "switchsim.fleet"


class ThresholdError(ValueError):
    """A threshold that cannot be judged against (negative, a ratio above 1, not a number)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    max_p99_ms: float | None = None
    min_tps: float | None = None
    max_failure_ratio: float = 0.0

    def __post_init__(self) -> None:
        for name in ("max_p99_ms", "min_tps"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ThresholdError(f"{name} must be positive, got {value}")
        if not 0.0 <= self.max_failure_ratio <= 1.0:
            raise ThresholdError(f"max_failure_ratio must be between 0 and 1, got {self.max_failure_ratio}")

    def to_json(self) -> dict[str, float | None]:
        return {"max_p99_ms": self.max_p99_ms, "min_tps": self.min_tps, "max_failure_ratio": self.max_failure_ratio}

    @classmethod
    def from_json(cls, doc: Any, where: str) -> Thresholds:
        if not isinstance(doc, dict):
            raise ThresholdError(f"{where}: thresholds must be an object")
        values: dict[str, float | None] = {}
        for name in ("max_p99_ms", "min_tps", "max_failure_ratio"):
            value = doc.get(name)
            if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise ThresholdError(f"{where}.{name}: must be a number or null, got {value!r}")
            values[name] = float(value) if value is not None else None
        ratio = values.pop("max_failure_ratio")
        try:
            return cls(**values, max_failure_ratio=ratio if ratio is not None else 0.0)
        except ThresholdError as exc:
            raise ThresholdError(f"{where}: {exc}") from None


class Group(StrEnum):
    THRESHOLD = "threshold"
    STEP = "step"


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    group: Group
    name: str
    passed: bool
    message: str  # one line
    detail: str = ""  # what was measured, for people and JUnit's system-out

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group.value, "name": self.name, "passed": self.passed, "message": self.message,
                "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Verdict:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def line(self) -> str:
        """The verdict in one line: what a CI log shows first."""
        failed = [c for c in self.checks if not c.passed]
        if not failed:
            shown = "; ".join(c.message for c in self.checks if c.group is Group.THRESHOLD)
            steps = sum(c.group is Group.STEP for c in self.checks)
            return f"verdict: PASSED ({shown}; {steps} step kinds within the failure limit)"
        return "verdict: FAILED: " + "; ".join(c.message for c in failed)

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "line": self.line, "checks": [c.to_json() for c in self.checks]}


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.2f}%"


def _ms(value: float) -> str:
    return f"{value:g} ms"


def _failures_text(kinds: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])) if n)


def judge(report: Mapping[str, Any], thresholds: Thresholds) -> Verdict:
    """The verdict on a report document (report.py's schema)."""
    checks = [_failure_ratio(report, thresholds.max_failure_ratio)]
    lat = report["latency_ms"]
    if thresholds.max_p99_ms is not None:
        limit = thresholds.max_p99_ms
        p99 = lat["p99"]
        if p99 is None:
            checks.append(Check(group=Group.THRESHOLD, name="max_p99_ms", passed=False,
                                message=f"p99 unknown (no exchange answered or timed out) > {_ms(limit)}"))
        else:
            passed = p99 <= limit
            checks.append(Check(
                group=Group.THRESHOLD, name="max_p99_ms", passed=passed,
                message=f"p99 {_ms(p99)} {'<=' if passed else '>'} {_ms(limit)}",
                detail=f"p50 {lat['p50']} ms, p90 {lat['p90']} ms, p99 {p99} ms, max {lat['max']} ms over "
                       f"{lat['count']} exchanges ({lat['timeouts']} timeouts counted at >= {report['timeout_ms']} ms)",
            ))
    if thresholds.min_tps is not None:
        limit = thresholds.min_tps
        tps = report["tps"]
        passed = tps >= limit
        checks.append(Check(
            group=Group.THRESHOLD, name="min_tps", passed=passed,
            message=f"{tps:g} TPS {'>=' if passed else '<'} {limit:g}",
            detail=f"{report['exchanges']} exchanges in {report['duration_s']} s",
        ))
    problems = report["expectations"]["problems"]
    for kind, counts in sorted(report["by_kind"].items()):
        checks.append(_step(kind, counts, thresholds.max_failure_ratio, problems))
    return Verdict(tuple(checks))


def _failure_ratio(report: Mapping[str, Any], limit: float) -> Check:
    exchanges, failed = report["exchanges"], sum(report["failures"].values())
    if exchanges == 0:
        return Check(group=Group.THRESHOLD, name="max_failure_ratio", passed=False,
                     message="no exchange finished")
    ratio = failed / exchanges
    passed = ratio <= limit
    return Check(
        group=Group.THRESHOLD, name="max_failure_ratio", passed=passed,
        message=f"failures {_pct(ratio)} ({failed} of {exchanges}) {'<=' if passed else '>'} {_pct(limit)}",
        detail=_failures_text(report["failures"]) or "no failures",
    )


def _step(kind: str, counts: Mapping[str, Any], limit: float, problems: list[dict[str, Any]]) -> Check:
    exchanges, failed = counts["exchanges"], counts["failures"]
    ratio = failed / exchanges if exchanges else 0.0
    passed = ratio <= limit
    lat = counts["latency_ms"]
    codes = ", ".join(f"{code} {n}" for code, n in counts["response_codes"].items()) or "none"
    lines = [
        f"exchanges {exchanges}, ok {counts['ok']}, failed {failed}",
        f"response codes: {codes}",
        f"latency ms: p50 {lat['p50']}, p99 {lat['p99']}, max {lat['max']}",
    ]
    mine = [p for p in problems if p["text"].startswith(f"{kind}: ")]
    lines += [f"{p['count']} x {p['text']}" for p in mine]
    if failed == 0:
        message = f"{kind}: {exchanges} exchanges, none failed"
    else:
        message = (f"{kind}: {failed} of {exchanges} failed ({_pct(ratio)} {'<=' if passed else '>'} {_pct(limit)}): "
                   f"{_failures_text(counts['failure_kinds'])}")
    return Check(group=Group.STEP, name=kind, passed=passed, message=message, detail="\n".join(lines))


def write_verdict_junit(report: Mapping[str, Any], path: Path) -> None:
    """JUnit XML (junit.py) of a report's verdict: one testcase per threshold and per step kind."""
    cases = []
    for c in report["verdict"]["checks"]:
        threshold = c["group"] == Group.THRESHOLD.value
        text = f"{c['message']}\n{c['detail']}".strip()
        cases.append(junit.Case(
            classname=f"{SUITE}.{'thresholds' if threshold else 'steps'}",
            name=c["name"],
            failure=None if c["passed"] else c["message"],
            failure_type="ThresholdFailed" if threshold else "StepFailed",
            failure_text=text,
            output=text,
        ))
    properties = {
        "target": str(report["target"]),
        "scenario": str(report["scenario"]),
        "terminals": str(report["terminals"]),
        "started_at": str(report["started_at"]),
        **{name: "" if value is None else f"{value:g}" for name, value in report["thresholds"].items()},
    }
    junit.write_junit(path, SUITE, cases, properties=properties, seconds=float(report["duration_s"]))
