"""The fleet run report: one JSON document (this module), and an HTML page beside it (chart.py).

JSON schema (``"schema": "switchsim.fleet.report/2"``); every key is always present::

    schema          "switchsim.fleet.report/2"
    target          "HOST:PORT" the fleet drove (a merge: the distinct targets, comma-separated)
    scenario        scenario name (a merge: the distinct names, comma-separated)
    terminals       number of virtual terminals
    started_at      ISO 8601 UTC time the run started, to the millisecond
    duration_s      seconds from start to the last answer
    timeout_ms      the per-exchange timeout
    exchanges       exchanges finished (answered, failed or timed out)
    ok              exchanges whose answer was well formed and expected
    failures        {kind: count} for every kind: timeout, refused, reset,
                    bad_check_value, bad_mac, unexpected_code, protocol
    tps             exchanges / duration_s
    latency_ms      {count, timeouts, p50, p90, p99, p999, max, mean} in milliseconds, null
                    when count is 0. Over every exchange that was answered or timed out; a
                    timed-out one counts as its wait, at least timeout_ms (``timeouts`` says how
                    many); refused and reset ones have none. Percentiles are nearest-rank (the
                    smallest sample with at least p% of the samples at or below it) read from
                    latency_histogram, so within 1/256 (0.4 %) of the exact value; max and mean
                    are exact.
    latency_histogram
                    {unit: "ns", sub_buckets: 128, count, sum_ns, min_ns, max_ns,
                    buckets: [[index, count], ...]}: the log-linear layout of histogram.py
                    (bucket i >= 256 holds [(i - 128 s) << s, (i - 128 s + 1) << s) ns with
                    s = i // 128 - 1; below 256, bucket i holds i ns), empty buckets left out
    response_codes  {field 39 value: count}
    by_kind         {step name: {exchanges, ok, failures, failure_kinds {kind: count, non-zero
                    only}, response_codes, latency_ms, latency_histogram}}
    tps_over_time   one point per wall-clock second, from the second the run started in to the
                    one it ended in (so the first and last points cover part of a second):
                    [{second, t, exchanges, failures, p50_ms, p99_ms, response_codes,
                    failure_kinds, connected, latency_buckets}]; ``second`` counts from 1, ``t``
                    is the Unix second the point covers; p50_ms/p99_ms are null in a second
                    in which nothing was answered or timed out (a gap, not 0 ms);
                    ``connected`` is the most connections open at an exchange of that second
                    (in a second without exchanges: those open when the next one came);
                    ``latency_buckets`` is that second's latency_histogram buckets
    max_connected   most TCP connections open at once (a merge: see merge.py)
    expectations    {held: bool, problems: [{count, text}, ...]}: held is false when any
                    exchange failed (including a 39 the scenario did not expect); problems are
                    the 20 most frequent, text "step: failure kind: detail"
    thresholds      {max_p99_ms, min_tps, max_failure_ratio} the run was judged against
                    (null: not given)
    verdict         {passed, line, checks: [{group, name, passed, message, detail}]}: see
                    verdict.py; ``line`` is the first line of the summary and of the HTML page
    merged_from     [] for a run; for a merge, one {target, scenario, terminals, started_at,
                    exchanges} per report merged
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from terminals_sim.histogram import Histogram, buckets_to_json, merge_counts, percentile_ns
from terminals_sim.outcome import Failure
from terminals_sim.stats import RunStats
from terminals_sim.verdict import Thresholds, judge

SCHEMA = "switchsim.fleet.report/2"
MAX_PROBLEMS = 20
_FAILURES = tuple(f.value for f in Failure)


@dataclass
class KindPart:
    """One step kind's counts, in the form both a run and a merge of reports reduce to."""

    exchanges: int = 0
    ok: int = 0
    failures: int = 0
    failure_kinds: Counter[str] = field(default_factory=Counter)
    response_codes: Counter[str] = field(default_factory=Counter)
    latency: Histogram = field(default_factory=Histogram)

    def add(self, other: KindPart) -> None:
        self.exchanges += other.exchanges
        self.ok += other.ok
        self.failures += other.failures
        self.failure_kinds.update(other.failure_kinds)
        self.response_codes.update(other.response_codes)
        self.latency.merge(other.latency)


@dataclass
class SecondPart:
    """One wall-clock second's counts (``t`` its Unix second)."""

    t: int
    exchanges: int = 0
    failures: int = 0
    connected: int = 0
    response_codes: Counter[str] = field(default_factory=Counter)
    failure_kinds: Counter[str] = field(default_factory=Counter)
    latency: dict[int, int] = field(default_factory=dict)

    def add(self, other: SecondPart) -> None:
        self.exchanges += other.exchanges
        self.failures += other.failures
        # Peaks of different processes within one second may not coincide: their sum is an
        # upper bound of the connections open at once (merge.py).
        self.connected += other.connected
        self.response_codes.update(other.response_codes)
        self.failure_kinds.update(other.failure_kinds)
        merge_counts(self.latency, other.latency)


@dataclass
class RunParts:
    """Everything a report document is made from."""

    target: str
    scenario: str
    terminals: int
    started_at: float  # Unix time
    duration_s: float
    timeout_ms: float
    by_kind: dict[str, KindPart]
    seconds: list[SecondPart]  # consecutive Unix seconds
    max_connected: int
    problems: Counter[str]
    merged_from: list[dict[str, Any]] = field(default_factory=list)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def latency_summary(hist: Histogram, timeouts: int) -> dict[str, Any]:
    return {
        "count": hist.count,
        "timeouts": timeouts,
        "p50": _round(hist.percentile_ms(50)),
        "p90": _round(hist.percentile_ms(90)),
        "p99": _round(hist.percentile_ms(99)),
        "p999": _round(hist.percentile_ms(99.9)),
        "max": _round(hist.max_ns / 1e6) if hist.count else None,
        "mean": _round(hist.mean_ms()),
    }


def _ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def _point(n: int, s: SecondPart) -> dict[str, Any]:
    return {
        "second": n,
        "t": s.t,
        "exchanges": s.exchanges,
        "failures": s.failures,
        "p50_ms": _ms(percentile_ns(s.latency, 50)),
        "p99_ms": _ms(percentile_ns(s.latency, 99)),
        "response_codes": dict(sorted(s.response_codes.items())),
        "failure_kinds": {k: s.failure_kinds[k] for k in _FAILURES if s.failure_kinds[k]},
        "connected": s.connected,
        "latency_buckets": buckets_to_json(s.latency),
    }


def assemble(parts: RunParts, thresholds: Thresholds) -> dict[str, Any]:
    """The report document (schema above) from its parts, judged against ``thresholds``."""
    total = KindPart()
    for kind in parts.by_kind.values():
        total.add(kind)
    duration = parts.duration_s
    problems = [{"count": n, "text": text} for text, n in parts.problems.most_common(MAX_PROBLEMS)]
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "target": parts.target,
        "scenario": parts.scenario,
        "terminals": parts.terminals,
        "started_at": datetime.fromtimestamp(parts.started_at, UTC).isoformat(timespec="milliseconds"),
        "duration_s": round(duration, 3),
        "timeout_ms": round(parts.timeout_ms, 3),
        "exchanges": total.exchanges,
        "ok": total.ok,
        "failures": {f: total.failure_kinds[f] for f in _FAILURES},
        "tps": round(total.exchanges / duration, 1) if duration > 0 else 0.0,
        "latency_ms": latency_summary(total.latency, total.failure_kinds[Failure.TIMEOUT.value]),
        "latency_histogram": total.latency.to_json(),
        "response_codes": dict(sorted(total.response_codes.items())),
        "by_kind": {
            name: {
                "exchanges": k.exchanges,
                "ok": k.ok,
                "failures": k.failures,
                "failure_kinds": {f: k.failure_kinds[f] for f in _FAILURES if k.failure_kinds[f]},
                "response_codes": dict(sorted(k.response_codes.items())),
                "latency_ms": latency_summary(k.latency, k.failure_kinds[Failure.TIMEOUT.value]),
                "latency_histogram": k.latency.to_json(),
            }
            for name, k in sorted(parts.by_kind.items())
        },
        "tps_over_time": [_point(n, s) for n, s in enumerate(parts.seconds, 1)],
        "max_connected": parts.max_connected,
        "expectations": {"held": total.failures == 0 and total.exchanges > 0, "problems": problems},
        "thresholds": thresholds.to_json(),
        "merged_from": parts.merged_from,
    }
    report["verdict"] = judge(report, thresholds).to_json()
    return report


def run_parts(
    stats: RunStats,
    *,
    target: str,
    scenario: str,
    terminals: int,
    started_at: float,
    duration_s: float,
    timeout_s: float,
) -> RunParts:
    """A finished run's counts as report parts (``started_at`` is a Unix time)."""
    first = stats.first_second if stats.wall_start is not None else math.floor(started_at)
    seconds = [
        SecondPart(
            t=first + i,
            exchanges=s.exchanges,
            failures=s.failures,
            connected=s.connected,
            response_codes=Counter(s.response_codes),
            failure_kinds=Counter({f.value: n for f, n in s.failure_kinds.items()}),
            latency=dict(s.latency),
        )
        for i, s in enumerate(stats.seconds)
    ]
    by_kind = {
        kind.value: KindPart(
            exchanges=k.exchanges,
            ok=k.ok,
            failures=k.failures,
            failure_kinds=Counter({f.value: n for f, n in k.failure_kinds.items()}),
            response_codes=Counter(k.response_codes),
            latency=k.latency,
        )
        for kind, k in stats.by_kind.items()
    }
    return RunParts(
        target=target,
        scenario=scenario,
        terminals=terminals,
        started_at=started_at,
        duration_s=duration_s,
        timeout_ms=timeout_s * 1000.0,
        by_kind=by_kind,
        seconds=seconds,
        max_connected=stats.max_connected,
        problems=Counter(stats.problems),
    )


def build_report(
    stats: RunStats,
    *,
    target: str,
    scenario: str,
    terminals: int,
    started_at: float,
    duration_s: float,
    timeout_s: float | None = None,
    thresholds: Thresholds | None = None,
) -> dict[str, Any]:
    """The report document for a finished run (``started_at`` is a Unix time); the timeout
    defaults to the one the stats were counted with."""
    timeout = timeout_s if timeout_s is not None else (stats.timeout_s or 0.0)
    parts = run_parts(stats, target=target, scenario=scenario, terminals=terminals, started_at=started_at,
                      duration_s=duration_s, timeout_s=timeout)
    return assemble(parts, thresholds or Thresholds())


# A histogram bucket [index, count] on one line instead of four.
_PAIR = re.compile(r"\[\s+(\d+),\s+(\d+)\s+\]")


def write_json(report: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _PAIR.sub(r"[\1, \2]", json.dumps(report, indent=2))
    path.write_text(text + "\n", encoding="utf-8")


def write_report(report: Mapping[str, Any], path: Path, *, self_contained: bool = False) -> Path:
    """Write the JSON report to ``path`` and the HTML page beside it (chart.py); returns the
    HTML path."""
    from terminals_sim.chart import write_chart

    write_json(report, path)
    html = path.with_suffix(".html")
    write_chart(report, html, self_contained=self_contained)
    return html
