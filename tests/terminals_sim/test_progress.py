"""The progress line on a terminal and off one, and where the summary starts after it."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from terminals_sim.progress import LiveProgress, PlainProgress, progress_for
from terminals_sim.stats import Snapshot


def _snap(elapsed: float, exchanges: int = 0) -> Snapshot:
    return Snapshot(elapsed=elapsed, exchanges=exchanges, current_tps=40.0, errors=0, timeouts=0, connected=3)


def test_off_a_terminal_a_whole_line_every_interval() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80)
    progress = progress_for(console, duration=12.0, exchanges=None, interval=5.0)
    assert isinstance(progress, PlainProgress)
    with progress:
        for tick in range(1, 49):  # the fleet ticks every 0.25 s
            progress.update(_snap(tick * 0.25, tick * 10))
    console.print("SUMMARY")
    assert out.getvalue().splitlines() == [
        "5.0s/12s exchanges 200 TPS 40 errors 0 timeouts 0 conns 3",
        "10.0s/12s exchanges 400 TPS 40 errors 0 timeouts 0 conns 3",
        "SUMMARY",
    ]


def test_a_late_tick_prints_once_not_for_every_interval_missed() -> None:
    out = io.StringIO()
    progress = PlainProgress(Console(file=out, width=80), duration=None, exchanges=100, interval=1.0)
    progress.update(_snap(3.5, 7))
    progress.update(_snap(3.75, 8))
    progress.update(_snap(4.0, 9))
    assert out.getvalue().splitlines() == [
        "3.5s exchanges 7/100 TPS 40 errors 0 timeouts 0 conns 3",
        "4.0s exchanges 9/100 TPS 40 errors 0 timeouts 0 conns 3",
    ]


@pytest.mark.parametrize("terminal", [True, False])
def test_the_live_line_never_runs_into_what_follows(terminal: bool) -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=terminal)
    with LiveProgress(console, duration=2.0, exchanges=None) as live:
        live.update(_snap(1.0, 10))
    console.print("SUMMARY")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # colours and cursor moves
    assert text.endswith("conns 3\nSUMMARY\n")


def test_on_a_terminal_the_line_is_live() -> None:
    console = Console(file=io.StringIO(), force_terminal=True)
    assert isinstance(progress_for(console, duration=1.0, exchanges=None, interval=5.0), LiveProgress)
