"""The HTML report rendered by a real browser (headless Chromium, the Debian ``chromium``
package): the charts are drawn, with their traces, from the shared plotly.min.js beside the page.

Skipped, with the reason, where Chromium is not installed.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from switchsim.cli import main
from terminals_sim.outcome import Failure, Kind, Outcome
from terminals_sim.report import build_report, write_report
from terminals_sim.stats import RunStats
from terminals_sim.verdict import Thresholds
from tests.terminals_sim.switchthread import threaded_switch

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"
)


def render(page: Path, profile: Path) -> str:
    """The DOM of ``page`` after Chromium has loaded it and run its scripts."""
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def legend(dom: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r'class="legendtext"[^>]*>([^<]*)<', dom)]


def test_a_fleet_run_page_renders_its_charts(tmp_path: Path) -> None:
    report = tmp_path / "out" / "run.json"
    scenario = tmp_path / "s.toml"
    scenario.write_text('think_ms = 20\n[[setup]]\nstep = "signin"\n[[mix]]\nstep = "echo"\n')
    with threaded_switch(tmp_path, 2) as port:
        rc = main(["fleet", "--target", f"127.0.0.1:{port}", "--terminals", "2", "--duration", "2s",
                   "--scenario", str(scenario), "--quiet", "--report", str(report), "--max-p99-ms", "20000"])
    assert rc == 0
    dom = render(report.with_suffix(".html"), tmp_path / "profile")
    # plotly drew SVG: line layers (throughput, latency, connections), bar layers (codes,
    # failures), and the legend of every trace (plotly lists stacked bars in reverse).
    assert dom.count('class="scatterlayer') >= 3 and 'class="barlayer' in dom
    assert sorted(legend(dom)) == sorted(["exchanges/s", "p50 latency", "p99 latency", "39 = 00", "no failures",
                                          "connected terminals"])
    first = re.search(r'<p id="verdict" class="passed">([^<]*)</p>', dom)
    assert first is not None and first.group(1).startswith("verdict: PASSED")
    assert "Response codes (per second, stacked)" in dom and "Failures by kind (per second, stacked)" in dom


def test_a_failed_run_page_shows_codes_failures_and_timeouts(tmp_path: Path) -> None:
    stats = RunStats(start=0.0, wall_start=1_700_000_000.5, timeout_s=5.0)
    for second in range(10):
        for i in range(20):
            now = second + i / 20
            if second == 4:
                continue  # a second without answers: a gap in the latency chart
            if i == 0:
                stats.record(Outcome(kind=Kind.PURCHASE, response_code=None, failure=Failure.TIMEOUT), 5.0, now)
            elif i % 5 == 0:
                stats.record(Outcome(kind=Kind.PURCHASE, response_code="55", failure=Failure.UNEXPECTED_CODE,
                                     detail="39 = 55, expected 00"), 0.004, now)
            else:
                stats.record(Outcome(kind=Kind.PURCHASE, response_code="00"), 0.002 + i / 10_000, now)
    report = build_report(stats, target="h:1", scenario="retail-day", terminals=5, started_at=1_700_000_000.5,
                          duration_s=10.0, thresholds=Thresholds(max_p99_ms=100.0))
    page = write_report(report, tmp_path / "failed.json")
    dom = render(page, tmp_path / "profile")
    assert sorted(legend(dom)) == sorted([
        "exchanges/s", "p50 latency", "p99 latency", "timeouts (counted as >= 5000 ms)",
        "39 = 00", "39 = 55", "timeout", "unexpected_code", "connected terminals"])
    first = re.search(r'<p id="verdict" class="failed">([^<]*)</p>', dom)
    assert first is not None and html.unescape(first.group(1)).startswith("verdict: FAILED: failures ")
    assert "p99 5000 ms &gt; 100 ms" in dom
