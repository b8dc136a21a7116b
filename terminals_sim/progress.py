"""What a person watches during and after a fleet run: a progress line and a summary (rich).

On a terminal the progress line is redrawn in place four times a second; anywhere else (a CI
log, a pipe) it is printed whole every few seconds, so the log shows the run moving and the
summary never starts on the line of a progress update.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from terminals_sim.stats import Snapshot


class LiveProgress:
    """A context manager whose ``update`` is the fleet's tick callback: one line redrawn in
    place, for a terminal."""

    def __init__(self, console: Console, *, duration: float | None, exchanges: int | None) -> None:
        self._console = console
        self._duration = duration
        self._exchanges = exchanges
        self._live = Live(self._render(None), console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.__exit__(exc_type, exc, tb)
        if not self._console.is_terminal:
            # rich leaves the last render without its newline when it cannot redraw in place;
            # what is printed next (the summary) must start on a line of its own.
            self._console.line()

    def update(self, snapshot: Snapshot) -> None:
        self._live.update(self._render(snapshot))

    def _render(self, s: Snapshot | None) -> Text:
        if s is None:
            return Text("starting terminals...", style="dim")
        return progress_line(s, duration=self._duration, exchanges=self._exchanges)


class PlainProgress:
    """The same line for a stdout that is not a terminal (a CI log, a pipe): printed whole,
    once every ``interval`` seconds of the run, never redrawn."""

    def __init__(self, console: Console, *, duration: float | None, exchanges: int | None, interval: float) -> None:
        if interval <= 0:
            raise ValueError("the progress interval must be positive")
        self._console = console
        self._duration = duration
        self._exchanges = exchanges
        self._interval = interval
        self._next = interval

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def update(self, snapshot: Snapshot) -> None:
        if snapshot.elapsed < self._next:
            return
        while self._next <= snapshot.elapsed:
            self._next += self._interval
        line = progress_line(snapshot, duration=self._duration, exchanges=self._exchanges).plain
        self._console.print(line, markup=False, highlight=False, soft_wrap=True)
        self._console.file.flush()


def progress_line(s: Snapshot, *, duration: float | None, exchanges: int | None) -> Text:
    goal = f"/{duration:.0f}s" if duration else ""
    done = f"{s.exchanges}" + (f"/{exchanges}" if exchanges else "")
    text = Text()
    # Short enough for an 80-column terminal.
    text.append(f"{s.elapsed:.1f}s{goal} ", style="bold")
    text.append(f"exchanges {done} ")
    text.append(f"TPS {s.current_tps:.0f} ", style="cyan")
    text.append(f"errors {s.errors} ", style="red" if s.errors else "green")
    text.append(f"timeouts {s.timeouts} ", style="red" if s.timeouts else "green")
    text.append(f"conns {s.connected}", style="dim")
    return text


def progress_for(
    console: Console, *, duration: float | None, exchanges: int | None, interval: float
) -> LiveProgress | PlainProgress:
    """A live line on a terminal, a line every ``interval`` seconds anywhere else."""
    if console.is_terminal:
        return LiveProgress(console, duration=duration, exchanges=exchanges)
    return PlainProgress(console, duration=duration, exchanges=exchanges, interval=interval)


def _value(v: object) -> str:
    return "-" if v is None else str(v)


def print_summary(console: Console, report: dict[str, Any]) -> None:
    """What is printed after a run: the verdict, whole on the first line (a CI log greps it),
    then the table."""
    passed = report["verdict"]["passed"]
    console.print(Text(report["verdict"]["line"], style="bold green" if passed else "bold red"), soft_wrap=True)
    console.print(summary_table(report))


def summary_table(report: dict[str, Any]) -> Table:
    """The final summary of a report document (report.py's schema)."""
    lat = report["latency_ms"]
    held = report["expectations"]["held"]
    table = Table(title=f"fleet run: {report['scenario']} against {report['target']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("terminals", str(report["terminals"]))
    table.add_row("duration", f"{report['duration_s']:.1f} s")
    table.add_row("exchanges", f"{report['exchanges']} ({report['ok']} ok)")
    table.add_row("TPS", f"{report['tps']}")
    timeouts = f"  ({lat['timeouts']} timeouts counted as >= {report['timeout_ms']:g} ms)" if lat["timeouts"] else ""
    table.add_row(
        "latency ms",
        f"p50 {_value(lat['p50'])}  p90 {_value(lat['p90'])}  p99 {_value(lat['p99'])}  "
        f"p99.9 {_value(lat['p999'])}  max {_value(lat['max'])}{timeouts}",
    )
    codes = "  ".join(f"{code}: {n}" for code, n in report["response_codes"].items()) or "-"
    table.add_row("response codes", codes)
    failures = "  ".join(f"{kind}: {n}" for kind, n in report["failures"].items() if n) or "none"
    table.add_row("failures", Text(failures, style="red" if failures != "none" else "green"))
    for kind, counts in report["by_kind"].items():
        table.add_row(f"  {kind}", f"{counts['exchanges']} exchanges, {counts['failures']} failed, "
                                   f"p99 {_value(counts['latency_ms']['p99'])} ms")
    table.add_row("max connections", str(report["max_connected"]))
    table.add_row("expectations", Text("held" if held else "FAILED", style="green" if held else "bold red"))
    for problem in report["expectations"]["problems"][:5]:
        table.add_row("", Text(f"{problem['count']} x {problem['text']}", style="red"))
    for check in report["verdict"]["checks"]:
        if check["group"] == "threshold":
            table.add_row(f"{check['name']}", Text(check["message"], style="green" if check["passed"] else "bold red"))
    return table
