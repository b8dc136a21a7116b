"""The HTML page of a fleet report (report.py's schema): the verdict, the thresholds, and five
charts over the run's seconds.

The page's first line is the verdict, then the table of checks (thresholds and step kinds) and
the run's figures, then, on one shared time axis: throughput; latency p50/p99 (seconds in which
nothing was answered are gaps, timed-out exchanges are marked at the timeout they count as);
response codes per second, stacked; failures per second by kind, stacked; connected terminals.

plotly.js (about 4.8 MB) is not put into every page: it is written once as ``plotly.min.js``
beside the page (rewritten only when it is not the installed plotly's) and referenced, so a
directory of reports holds one copy. ``self_contained`` puts it inside the page instead, for a
page that travels alone.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PLOTLY_JS = "plotly.min.js"
DIV_ID = "fleet-chart"
_TITLES = (
    "Throughput (exchanges per second)",
    "Latency (ms)",
    "Response codes (per second, stacked)",
    "Failures by kind (per second, stacked)",
    "Connected terminals",
)
_CODE_COLOURS = {"00": "#2ca02c"}
_FAILURE_COLOURS = {
    "timeout": "#ff7f0e",
    "refused": "#8c564b",
    "reset": "#e377c2",
    "bad_check_value": "#9467bd",
    "bad_mac": "#17becf",
    "unexpected_code": "#d62728",
    "protocol": "#7f7f7f",
}


def figure(report: Mapping[str, Any]) -> Any:
    """The plotly figure of a report's seconds."""
    from plotly import graph_objects as go  # type: ignore[import-untyped]
    from plotly.subplots import make_subplots  # type: ignore[import-untyped]

    points = report["tps_over_time"]
    x = [p["second"] for p in points]
    fig = make_subplots(rows=5, cols=1, shared_xaxes=True, vertical_spacing=0.05, subplot_titles=_TITLES)
    fig.add_trace(go.Scatter(x=x, y=[p["exchanges"] for p in points], name="exchanges/s", mode="lines+markers"),
                  row=1, col=1)
    # None is a gap in plotly: a second without answers is not drawn as 0 ms.
    fig.add_trace(go.Scatter(x=x, y=[p["p50_ms"] for p in points], name="p50 latency", mode="lines+markers",
                             connectgaps=False), row=2, col=1)
    fig.add_trace(go.Scatter(x=x, y=[p["p99_ms"] for p in points], name="p99 latency", mode="lines+markers",
                             connectgaps=False), row=2, col=1)
    timeout_ms = report["timeout_ms"]
    timed_out = [(p["second"], p["failure_kinds"].get("timeout", 0)) for p in points]
    timed_out = [(s, n) for s, n in timed_out if n]
    if timed_out:
        fig.add_trace(go.Scatter(
            x=[s for s, _ in timed_out], y=[timeout_ms] * len(timed_out), mode="markers",
            name=f"timeouts (counted as >= {timeout_ms:g} ms)", text=[f"{n} timed out" for _, n in timed_out],
            marker={"symbol": "x", "size": 10, "color": _FAILURE_COLOURS["timeout"]},
        ), row=2, col=1)
        fig.update_yaxes(type="log", row=2, col=1)  # the timeout and the usual latency on one axis
    codes = sorted({code for p in points for code in p["response_codes"]})
    for code in codes:
        fig.add_trace(go.Bar(x=x, y=[p["response_codes"].get(code, 0) for p in points], name=f"39 = {code}",
                             marker={"color": _CODE_COLOURS.get(code)}, legendgroup="codes"), row=3, col=1)
    kinds = [k for k in _FAILURE_COLOURS if any(p["failure_kinds"].get(k) for p in points)]
    for kind in kinds:
        fig.add_trace(go.Bar(x=x, y=[p["failure_kinds"].get(kind, 0) for p in points], name=kind,
                             marker={"color": _FAILURE_COLOURS[kind]}, legendgroup="failures"), row=4, col=1)
    if not kinds:
        fig.add_trace(go.Bar(x=x, y=[0] * len(points), name="no failures", legendgroup="failures"), row=4, col=1)
    fig.add_trace(go.Scatter(x=x, y=[p["connected"] for p in points], name="connected terminals",
                             mode="lines", line={"shape": "hv"}), row=5, col=1)
    fig.update_layout(barmode="stack", height=1300, hovermode="x unified", margin={"t": 40},
                      legend={"tracegroupgap": 10})
    fig.update_xaxes(title_text="second of the run", row=5, col=1)
    fig.update_xaxes(dtick=max(1, -(-len(points) // 20)))
    return fig


def _check_rows(report: Mapping[str, Any]) -> str:
    rows = []
    for c in report["verdict"]["checks"]:
        state = "passed" if c["passed"] else "failed"
        rows.append(
            f'<tr class="{state}"><td>{html.escape(c["group"])}</td><td>{html.escape(c["name"])}</td>'
            f"<td>{state.upper()}</td><td>{html.escape(c['message'])}</td></tr>"
        )
    return "\n".join(rows)


def _thresholds(report: Mapping[str, Any]) -> str:
    given = [f"{name} {value:g}" for name, value in report["thresholds"].items() if value is not None]
    return ", ".join(given)


def page(report: Mapping[str, Any], chart_div: str) -> str:
    verdict = report["verdict"]
    state = "passed" if verdict["passed"] else "failed"
    lat = report["latency_ms"]
    run = (
        f"{report['scenario']} against {report['target']}: {report['terminals']} terminals, started "
        f"{report['started_at']}, {report['duration_s']} s, {report['exchanges']} exchanges "
        f"({report['ok']} ok), {report['tps']} TPS, latency p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
        f"max {lat['max']} ms ({lat['timeouts']} timeouts counted as at least {report['timeout_ms']:g} ms), "
        f"most connected {report['max_connected']}"
    )
    merged = ""
    if report["merged_from"]:
        merged = f"<p>merged from {len(report['merged_from'])} reports</p>"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(verdict['line'])} | switchsim fleet</title>
<style>
body {{ font-family: sans-serif; margin: 1em 2em; }}
#verdict {{ font-size: 1.3em; font-weight: bold; padding: 0.4em 0.6em; }}
#verdict.passed {{ background: #e6f4ea; color: #1e6b31; }}
#verdict.failed {{ background: #fce8e6; color: #a50e0e; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }}
tr.failed td {{ color: #a50e0e; font-weight: bold; }}
</style>
</head>
<body>
<p id="verdict" class="{state}">{html.escape(verdict['line'])}</p>
<p id="thresholds">thresholds: {html.escape(_thresholds(report))}</p>
<table id="checks">
<tr><th>group</th><th>check</th><th>result</th><th>measured</th></tr>
{_check_rows(report)}
</table>
<p id="run">{html.escape(run)}</p>
{merged}
{chart_div}
</body>
</html>
"""


def write_plotly_js(directory: Path) -> Path:
    """The shared plotly.min.js in ``directory``, written when missing or another version."""
    from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

    js: str = get_plotlyjs()
    path = directory / PLOTLY_JS
    data = js.encode("utf-8")
    if not path.is_file() or path.stat().st_size != len(data) or path.read_bytes() != data:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{PLOTLY_JS}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # another report being written beside this one never sees half a file
    return path


def write_chart(report: Mapping[str, Any], path: Path, *, self_contained: bool = False) -> None:
    import plotly.io as pio  # type: ignore[import-untyped]

    include: bool | str = True
    if not self_contained:
        write_plotly_js(path.parent)
        include = PLOTLY_JS  # a relative <script src>: the copy beside the page
    div: str = pio.to_html(figure(report), include_plotlyjs=include, full_html=False, div_id=DIV_ID,
                           default_height="1300px")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(report, div), encoding="utf-8")
