"""``switchsim top --metrics URL``: a live view (Textual) of a switch, an HSM or a fleet.

Every second it reads ``/metrics`` and ``/refusals`` from the endpoint that ``--metrics-port``
serves (specs/metrics.py) and shows, for each role whose families it finds (specs/livemetrics.py):
exchanges per second, response codes, p50/p99 latency over the last second, connections,
terminals signed in, the HSM's health, and the latest refusals with their reasons.
``textual serve "switchsim top --metrics URL"`` (textual-serve) shows the same in a browser.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Header, Static

from specs.livemetrics import RoleView, Scrape, codes_line, parse, summarise
from switchsim.cmd_top import DEFAULT_INTERVAL

_REFUSALS_SHOWN = 20
_TITLE = {"switch": "switch", "hsm": "HSM", "fleet": "fleet"}
_UNIT = {"switch": "TPS", "hsm": "commands/s", "fleet": "TPS"}


def endpoints(url: str) -> tuple[str, str]:
    """The /metrics and /refusals URLs of what the user typed (``http://H:P`` or ``.../metrics``)."""
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--metrics must be http://HOST:PORT[/metrics], got {url!r}")
    metrics = parts._replace(path=parts.path if parts.path not in ("", "/") else "/metrics", query="", fragment="")
    refusals = metrics._replace(path=metrics.path.rsplit("/", 1)[0] + "/refusals")
    return urllib.parse.urlunsplit(metrics), urllib.parse.urlunsplit(refusals)


def _fetch(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data: bytes = response.read()
        return data


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f} ms"


def render_role(view: RoleView) -> str:
    """The lines of one role's panel."""
    lines = [
        f"[b]{_TITLE[view.role]}[/b]  {view.per_second:,.1f} {_UNIT[view.role]}   total {view.total:,}   "
        f"p50 {_ms(view.p50_ms)}   p99 {_ms(view.p99_ms)}",
        f"codes       {codes_line(view.codes)}",
        f"connections {view.connections_open:,} open, {view.connections_accepted:,} accepted, closed: "
        f"{codes_line(view.closed)}" + (f", {view.wire_errors:,} framing/format errors" if view.wire_errors else ""),
    ]
    if view.signed_in is not None:
        lines.append(f"terminals   {view.signed_in:,} signed in")
    if view.hsm is not None:
        health = view.hsm
        style = "red" if health.failing else "green"
        lines.append(f"HSM         [{style}]{health.status}[/{style}]  {health.commands_per_s:,.1f} commands/s, "
                     f"p99 {_ms(health.p99_ms)}, failures: {codes_line(health.failures)}")
    if view.failures:
        label = "failures   " if view.role == "fleet" else "rules fired"
        lines.append(f"{label} {codes_line(view.failures)}")
    return "\n".join(lines)


class TopApp(App[None]):
    """The live view; ``refreshes`` counts the scrapes shown (tests wait on it)."""

    TITLE = "switchsim top"
    BINDINGS: ClassVar[list[BindingType]] = [("q", "quit", "Quit")]
    CSS = """
    #status { height: auto; padding: 0 1; }
    #roles { height: auto; padding: 0 1; }
    #refusals { height: 1fr; }
    """

    def __init__(self, url: str, interval: float = DEFAULT_INTERVAL) -> None:
        super().__init__()
        self.metrics_url, self.refusals_url = endpoints(url)
        self.interval = interval
        self.previous: Scrape | None = None
        self.views: tuple[RoleView, ...] = ()
        self.refreshes = 0
        self.error: str | None = None
        self._busy = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield Static(f"reading {self.metrics_url}", id="status")
            yield Static("", id="roles")
            table: DataTable[str] = DataTable(id="refusals")
            table.add_columns("time", "kind", "code", "reason")
            yield table
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(self.interval, self.poll)
        self.call_later(self.poll)

    async def poll(self) -> None:
        if self._busy:
            return  # a slow endpoint: skip a tick rather than pile scrapes up
        self._busy = True
        try:
            await self._poll()
        except NoMatches:
            pass  # the app closed while a scrape was under way: its widgets are gone
        finally:
            self._busy = False

    async def _poll(self) -> None:
        timeout = max(self.interval, 1.0)
        try:
            text = await asyncio.to_thread(_fetch, self.metrics_url, timeout)
            at = time.monotonic()
            refusals = await asyncio.to_thread(self._refusals, timeout)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            self.error = f"cannot read {self.metrics_url}: {getattr(exc, 'reason', exc)}"
            self.query_one("#status", Static).update(f"[red]{self.error}[/red] (retrying every {self.interval:g} s)")
            return
        self.error = None
        current = parse(text.decode("utf-8", "replace"), at)
        self.views = summarise(self.previous, current)
        self.previous = current
        status = self.query_one("#status", Static)
        if not self.views:
            status.update(f"{self.metrics_url}: no switchsim metrics here (yet)")
        else:
            status.update(f"{self.metrics_url}: {', '.join(_TITLE[v.role] for v in self.views)}, "
                          f"every {self.interval:g} s")
        self.query_one("#roles", Static).update("\n\n".join(render_role(v) for v in self.views))
        table = self.query_one("#refusals", DataTable)
        table.clear()
        for item in reversed(refusals[-_REFUSALS_SHOWN:]):
            when = time.strftime("%H:%M:%S", time.localtime(float(item.get("time", 0))))
            table.add_row(when, str(item.get("kind", "")), str(item.get("code", "")), str(item.get("reason", "")))
        self.refreshes += 1

    def _refusals(self, timeout: float) -> list[dict[str, Any]]:
        """The latest refusals; none when the endpoint has no /refusals (another exporter)."""
        try:
            doc = json.loads(_fetch(self.refusals_url, timeout))
        except (OSError, urllib.error.URLError, ValueError):
            return []
        items = doc.get("refusals", []) if isinstance(doc, dict) else []
        return [i for i in items if isinstance(i, dict)]
