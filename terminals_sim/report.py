"""The fleet run report: one JSON document, and an HTML chart beside it.

JSON schema (``"schema": "switchsim.fleet.report/1"``); every key is always present::

    schema          "switchsim.fleet.report/1"
    target          "HOST:PORT" the fleet drove
    scenario        scenario name
    terminals       number of virtual terminals
    started_at      ISO 8601 UTC time the run started
    duration_s      seconds from start to the last answer
    exchanges       exchanges finished (answered, failed or timed out)
    ok              exchanges whose answer was well formed and expected
    failures        {kind: count} for every kind: timeout, refused, reset,
                    bad_check_value, bad_mac, unexpected_code, protocol
    tps             exchanges / duration_s
    latency_ms      {p50, p90, p99, p999, max, mean} over answered exchanges, in
                    milliseconds; percentiles are nearest-rank (the smallest sample with at
                    least p% of the samples at or below it)
    response_codes  {field 39 value: count}
    by_kind         {step name: {exchanges, ok, failures, response_codes}}
    tps_over_time   one point per second of the run:
                    [{second, exchanges, failures, p50_ms, p99_ms}], ``second`` counting from 1;
                    the last point may cover less than a whole second
    max_connected   most TCP connections open at once
    expectations    {held: bool, problems: [text, ...]}: held is false when any exchange
                    failed (including a 39 the scenario did not expect)

The HTML file (same name, ``.html``) holds a plotly chart of throughput and latency over time,
with plotly.js embedded so it opens offline.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from terminals_sim.outcome import Failure
from terminals_sim.stats import RunStats, percentile

SCHEMA = "switchsim.fleet.report/1"
_MAX_PROBLEMS = 20


def _latency(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    mean = sum(ordered) / len(ordered) if ordered else 0.0
    return {
        "p50": round(percentile(ordered, 50), 3),
        "p90": round(percentile(ordered, 90), 3),
        "p99": round(percentile(ordered, 99), 3),
        "p999": round(percentile(ordered, 99.9), 3),
        "max": round(ordered[-1], 3) if ordered else 0.0,
        "mean": round(mean, 3),
    }


def build_report(
    stats: RunStats,
    *,
    target: str,
    scenario: str,
    terminals: int,
    started_at: float,
    duration_s: float,
) -> dict[str, Any]:
    """The report document for a finished run (``started_at`` is a Unix time)."""
    over_time = []
    for i, second in enumerate(stats.seconds, 1):
        ordered = sorted(second.latencies_ms)
        over_time.append(
            {
                "second": i,
                "exchanges": second.exchanges,
                "failures": second.failures,
                "p50_ms": round(percentile(ordered, 50), 3),
                "p99_ms": round(percentile(ordered, 99), 3),
            }
        )
    problems = [f"{count} x {text}" for text, count in stats.problems.most_common(_MAX_PROBLEMS)]
    return {
        "schema": SCHEMA,
        "target": target,
        "scenario": scenario,
        "terminals": terminals,
        "started_at": datetime.fromtimestamp(started_at, UTC).isoformat(timespec="seconds"),
        "duration_s": round(duration_s, 3),
        "exchanges": stats.exchanges,
        "ok": stats.ok,
        "failures": {f.value: stats.failures[f] for f in Failure},
        "tps": round(stats.exchanges / duration_s, 1) if duration_s > 0 else 0.0,
        "latency_ms": _latency(list(stats.latencies_ms)),
        "response_codes": dict(sorted(stats.response_codes.items())),
        "by_kind": {
            kind.value: {
                "exchanges": counts.exchanges,
                "ok": counts.ok,
                "failures": counts.failures,
                "response_codes": dict(sorted(counts.response_codes.items())),
            }
            for kind, counts in sorted(stats.by_kind.items())
        },
        "tps_over_time": over_time,
        "max_connected": stats.max_connected,
        "expectations": {"held": stats.failed == 0 and stats.exchanges > 0, "problems": problems},
    }


def write_report(report: dict[str, Any], path: Path) -> Path:
    """Write the JSON report to ``path`` and the chart beside it; returns the HTML path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    html = path.with_suffix(".html")
    write_chart(report, html)
    return html


def write_chart(report: dict[str, Any], path: Path) -> None:
    """Throughput (exchanges and failures per second) above latency (p50/p99) over time."""
    from plotly import graph_objects as go  # type: ignore[import-untyped]
    from plotly.subplots import make_subplots  # type: ignore[import-untyped]

    points = report["tps_over_time"]
    seconds = [p["second"] for p in points]
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
        subplot_titles=("Throughput (exchanges per second)", "Latency (ms)"),
    )
    fig.add_trace(go.Scatter(x=seconds, y=[p["exchanges"] for p in points], name="exchanges/s",
                             mode="lines+markers"), row=1, col=1)
    fig.add_trace(go.Scatter(x=seconds, y=[p["failures"] for p in points], name="failures/s",
                             mode="lines+markers", line={"color": "crimson"}), row=1, col=1)
    fig.add_trace(go.Scatter(x=seconds, y=[p["p50_ms"] for p in points], name="p50 latency",
                             mode="lines+markers"), row=2, col=1)
    fig.add_trace(go.Scatter(x=seconds, y=[p["p99_ms"] for p in points], name="p99 latency",
                             mode="lines+markers"), row=2, col=1)
    lat = report["latency_ms"]
    fig.update_layout(
        title=(
            f"switchsim fleet: {report['scenario']} against {report['target']}, "
            f"{report['terminals']} terminals, {report['exchanges']} exchanges, "
            f"{report['tps']} TPS, p50 {lat['p50']} ms, p99 {lat['p99']} ms"
        ),
        height=700,
        hovermode="x unified",
    )
    fig.update_xaxes(title_text="second of the run", row=2, col=1)
    fig.update_xaxes(dtick=max(1, math.ceil(len(points) / 20)))
    fig.write_html(str(path), include_plotlyjs=True, full_html=True)
