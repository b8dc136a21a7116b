"""What a person watches during and after a fleet run: a live line and a summary table (rich)."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from terminals_sim.stats import Snapshot


class LiveProgress:
    """A context manager whose ``update`` is the fleet's tick callback."""

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

    def update(self, snapshot: Snapshot) -> None:
        self._live.update(self._render(snapshot))

    def _render(self, s: Snapshot | None) -> Text:
        if s is None:
            return Text("starting terminals...", style="dim")
        goal = ""
        if self._duration:
            goal = f"/{self._duration:.0f}s"
        done = f"{s.exchanges}" + (f"/{self._exchanges}" if self._exchanges else "")
        text = Text()
        # Short enough for an 80-column terminal.
        text.append(f"{s.elapsed:.1f}s{goal} ", style="bold")
        text.append(f"exchanges {done} ")
        text.append(f"TPS {s.current_tps:.0f} ", style="cyan")
        text.append(f"errors {s.errors} ", style="red" if s.errors else "green")
        text.append(f"timeouts {s.timeouts} ", style="red" if s.timeouts else "green")
        text.append(f"conns {s.connected}", style="dim")
        return text


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
    table.add_row(
        "latency ms",
        f"p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  p99.9 {lat['p999']}  max {lat['max']}",
    )
    codes = "  ".join(f"{code}: {n}" for code, n in report["response_codes"].items()) or "-"
    table.add_row("response codes", codes)
    failures = "  ".join(f"{kind}: {n}" for kind, n in report["failures"].items() if n) or "none"
    table.add_row("failures", Text(failures, style="red" if failures != "none" else "green"))
    for kind, counts in report["by_kind"].items():
        table.add_row(f"  {kind}", f"{counts['exchanges']} exchanges, {counts['failures']} failed")
    table.add_row("max connections", str(report["max_connected"]))
    table.add_row("expectations", Text("held" if held else "FAILED", style="green" if held else "bold red"))
    for problem in report["expectations"]["problems"][:5]:
        table.add_row("", Text(problem, style="red"))
    return table
