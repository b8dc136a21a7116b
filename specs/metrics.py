"""Prometheus metrics: observers (specs/observer.py) that count into prometheus-client families,
and the small HTTP server that exposes them (``/metrics``) with the latest refusals
(``/refusals``, JSON).

Families, one set per role, named as Prometheus asks (``switchsim_<role>_..._total`` for
counters, ``..._seconds`` for durations); labels are bounded vocabularies only (message kind,
response or error code, command code, failure kind, close reason, rule name), never a terminal
id. ``SwitchMetrics``, ``HsmMetrics`` and ``FleetMetrics`` list theirs in ``FAMILIES``.

Cost on the hot path: each observed event adds to plain numbers (specs/tally.py), which a scrape
renders; prometheus-client's own counters lock and walk buckets on every call, ten to twenty
times the cost here (bench/metrics.py measures both).

Several processes behind one port: when ``PROMETHEUS_MULTIPROC_DIR`` names a directory before
prometheus-client is imported (prometheus-client's multiprocess mode), each process syncs its
counts once a second (and when it closes its observer) into prometheus-client families whose
values are files there, gauges summed over live processes (``livesum``), and ``MetricsServer``
serves the sum of every process's files. ``switchsim fleet --processes N`` works this way; a switch with
workers would do the same (each worker observing, the parent serving).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.multiprocess import MultiProcessCollector

from specs.observer import NullObserver, Refusal, RefusalLog
from specs.tally import Syncer, Tally

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Latency buckets in seconds: an in-process HSM command takes tens of microseconds, a switch
#: exchange hundreds, a slow host (a delay rule) seconds; the fleet's timeout defaults to 5 s.
LATENCY_BUCKETS = (
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
NO_CODE = "none"  # the code label of an exchange that got no field 39


def multiprocess_dir() -> str | None:
    """The directory of prometheus-client's multiprocess mode, when it is switched on."""
    return os.environ.get(MULTIPROC_ENV) or None


class RoleMetrics(NullObserver):
    """What every role counts: connections and unreadable frames or messages. The counts are
    kept in a ``Tally`` (specs/tally.py); ``registry`` renders them for one process, and in
    multiprocess mode a thread syncs them into the shared directory once a second."""

    __slots__ = ("_accepted", "_closed", "_open", "_refused", "_syncer", "_wire", "prefix", "refusals",
                 "registry", "tally")

    def __init__(self, role: str, registry: CollectorRegistry | None, refusals: RefusalLog | None) -> None:
        self.prefix = p = f"switchsim_{role}"
        self.tally = t = Tally()
        self.refusals = refusals if refusals is not None else RefusalLog()
        self._open = t.gauge(f"{p}_connections_open", "Connections open now")
        self._accepted = t.counter(f"{p}_connections_accepted", "Connections accepted")
        self._closed = t.counter(f"{p}_connections_closed", "Connections closed, by reason", ["reason"])
        self._refused = t.counter(f"{p}_connections_refused", "Connections turned away at once, by reason",
                                  ["reason"])
        self._wire = t.counter(f"{p}_wire_errors", "Frames that could not be read (framing) or messages that "
                               "could not be decoded (format)", ["layer"])
        self.registry = registry if registry is not None else CollectorRegistry()
        self._syncer: Syncer | None = None

    def _families_done(self) -> None:
        """Called by each role once its families exist: expose them, or sync them (multiprocess)."""
        if multiprocess_dir() is not None:
            self._syncer = Syncer(self.tally)
        else:
            self.registry.register(self.tally)

    def close(self) -> None:
        """Stop syncing, after a last sync (multiprocess mode)."""
        if self._syncer is not None:
            self._syncer.stop()
            self._syncer = None

    def connection_opened(self) -> None:
        self._accepted.add(())
        self._open.value += 1

    def connection_closed(self, reason: str) -> None:
        self._closed.add((reason,))
        self._open.value -= 1

    def connection_refused(self, reason: str) -> None:
        self._refused.add((reason,))

    def wire_error(self, layer: str) -> None:
        self._wire.add((layer,))


class SwitchMetrics(RoleMetrics):
    """The acquiring switch: exchanges by kind and code, latency by kind, connections, terminals
    signed in, its HSM commands, store commits, rules fired, framing and format errors."""

    __slots__ = (
        "_commit", "_exchanges", "_hsm_failures", "_hsm_latency", "_journal_dropped", "_latency", "_rules", "_signed_in"
    )

    def __init__(self, registry: CollectorRegistry | None = None, refusals: RefusalLog | None = None) -> None:
        super().__init__("switch", registry, refusals)
        p, t = self.prefix, self.tally
        self._exchanges = t.counter(f"{p}_exchanges", "Requests answered, by message kind and field 39 "
                                    "(none: not answered, a drop or close rule)", ["kind", "code"])
        self._latency = t.histogram(f"{p}_exchange_seconds", "Time from request read to answer built, by message "
                                    "kind", ["kind"], LATENCY_BUCKETS)
        # Each worker reads the same count from the shared store: the newest of the live ones.
        self._signed_in = t.gauge(f"{p}_terminals_signed_in", "Terminals signed in: live sessions in the store, "
                                  "read once a second", multiprocess_mode="livemax")
        self._hsm_latency = t.histogram(f"{p}_hsm_command_seconds", "HSM host commands the switch sent, by command",
                                        ["command"], LATENCY_BUCKETS)
        self._hsm_failures = t.counter(f"{p}_hsm_failures", "HSM host commands answered with an error (or not at "
                                       "all: transport), by command and error code", ["command", "error"])
        self._commit = t.histogram(f"{p}_store_commit_seconds", "Store commits of financial transactions", (),
                                   LATENCY_BUCKETS)
        self._journal_dropped = t.counter(f"{p}_journal_dropped", "Journal entries dropped because the store's "
                                          "journal queue was full (their answers were sent)", ())
        self._rules = t.counter(f"{p}_rules_fired", "Requests a response rule decided, by rule and action",
                                ["rule", "action"])
        self._families_done()

    def exchange_done(self, kind: str, code: str, seconds: float, failure: str = "", reason: str = "") -> None:
        self._exchanges.add((kind, code or NO_CODE))
        self._latency.observe((kind,), seconds)
        if code != "00":
            self.refusals.add(kind, code, reason)

    def hsm_command(self, command: str, error: str, seconds: float) -> None:
        self._hsm_latency.observe((command,), seconds)
        if error != "00":
            self._hsm_failures.add((command, error))

    def store_commit(self, seconds: float) -> None:
        self._commit.observe((), seconds)

    def journal_dropped(self, count: int) -> None:
        self._journal_dropped.add((), count)

    def rule_fired(self, rule: str, action: str) -> None:
        self._rules.add((rule, action))

    def terminals_signed_in(self, count: int) -> None:
        self._signed_in.value = count


class HsmMetrics(RoleMetrics):
    """The software HSM: host commands by command and error code, with latency."""

    __slots__ = ("_commands", "_latency")

    def __init__(self, registry: CollectorRegistry | None = None, refusals: RefusalLog | None = None) -> None:
        super().__init__("hsm", registry, refusals)
        p, t = self.prefix, self.tally
        self._commands = t.counter(f"{p}_commands", "Host commands answered, by command and error code",
                                   ["command", "error"])
        self._latency = t.histogram(f"{p}_command_seconds", "Time to answer a host command, by command",
                                    ["command"], LATENCY_BUCKETS)
        self._families_done()

    def hsm_command(self, command: str, error: str, seconds: float) -> None:
        self._commands.add((command, error))
        self._latency.observe((command,), seconds)
        # 01 is a verification's "does not match", an answer and not a failure of the HSM.
        if error != "00" and error != "01":
            self.refusals.add(command, error, f"error {error}")


class FleetMetrics(RoleMetrics):
    """The fleet: exchanges by kind and code, failures by kind, latency, connected terminals."""

    __slots__ = ("_exchanges", "_failures", "_latency")

    def __init__(self, registry: CollectorRegistry | None = None, refusals: RefusalLog | None = None) -> None:
        super().__init__("fleet", registry, refusals)
        p, t = self.prefix, self.tally
        self._exchanges = t.counter(f"{p}_exchanges", "Exchanges done, by step kind and field 39 (none: no answer)",
                                    ["kind", "code"])
        self._failures = t.counter(f"{p}_failures", "Exchanges that failed, by step kind and failure kind",
                                   ["kind", "failure"])
        self._latency = t.histogram(f"{p}_exchange_seconds", "Time from request sent to answer judged, by step "
                                    "kind", ["kind"], LATENCY_BUCKETS)
        self._families_done()

    def exchange_done(self, kind: str, code: str, seconds: float, failure: str = "", reason: str = "") -> None:
        self._exchanges.add((kind, code or NO_CODE))
        self._latency.observe((kind,), seconds)
        if failure:
            self._failures.add((kind, failure))
            self.refusals.add(kind, code, f"{failure}: {reason}" if reason else failure)


#: Every family each role exposes (without the _total, _bucket, ... suffixes).
FAMILIES: dict[str, tuple[str, ...]] = {
    "switch": tuple(f"switchsim_switch_{n}" for n in (
        "exchanges", "exchange_seconds", "terminals_signed_in", "hsm_command_seconds", "hsm_failures",
        "store_commit_seconds", "journal_dropped", "rules_fired", "connections_open", "connections_accepted",
        "connections_closed", "connections_refused", "wire_errors")),
    "hsm": tuple(f"switchsim_hsm_{n}" for n in (
        "commands", "command_seconds", "connections_open", "connections_accepted", "connections_closed",
        "connections_refused", "wire_errors")),
    "fleet": tuple(f"switchsim_fleet_{n}" for n in (
        "exchanges", "failures", "exchange_seconds", "connections_open", "connections_accepted",
        "connections_closed", "connections_refused", "wire_errors")),
}


# -- refusals shared between processes ---------------------------------------------------------

_REFUSALS_FILE = "refusals_{pid}.json"
_SPILL_EVERY = 1.0  # seconds: refusals reach the serving process at most this late


class SpilledRefusals(RefusalLog):
    """A RefusalLog that also writes itself, at most once a second, into the multiprocess
    directory, so the process serving the port can show every process's latest refusals."""

    def __init__(self, directory: str | Path, size: int = 50) -> None:
        super().__init__(size)
        self._path = Path(directory) / _REFUSALS_FILE.format(pid=os.getpid())
        self._written = 0.0

    def add(self, kind: str, code: str, reason: str) -> None:
        super().add(kind, code, reason)
        now = time.monotonic()
        if now - self._written >= _SPILL_EVERY:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        self._written = time.monotonic() if now is None else now
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps([r.as_json() for r in self.latest()]))
        tmp.replace(self._path)


def read_spilled(directory: str | Path) -> list[Refusal]:
    """Every process's spilled refusals, oldest first (an unreadable file is skipped: its writer
    is replacing it)."""
    found: list[Refusal] = []
    for path in Path(directory).glob(_REFUSALS_FILE.format(pid="*")):
        try:
            found += [Refusal(**item) for item in json.loads(path.read_text())]
        except (OSError, ValueError, TypeError):
            continue
    return sorted(found, key=lambda r: r.time)


# -- the HTTP endpoint -------------------------------------------------------------------------


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape on stderr would drown the component's own log


Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def _app(registry: CollectorRegistry, refusals: Callable[[], list[Refusal]]) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/refusals":
            body = json.dumps({"refusals": [r.as_json() for r in refusals()]}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if path == "/metrics":
            result: Iterable[bytes] = metrics(environ, start_response)
            return result
        body = b"switchsim: /metrics (Prometheus text format), /refusals (the latest refusals, JSON)\n"
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return app


class MetricsServer:
    """``/metrics`` and ``/refusals`` over HTTP on a thread of its own, so a scrape never waits
    for the event loop and the loop never waits for a scrape."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry,
                 refusals: Callable[[], list[Refusal]]) -> None:
        self._server = make_server(host, port, _app(registry, refusals), _ThreadingServer, handler_class=_QuietHandler)
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def serve_metrics(observer: RoleMetrics, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
    """Serve one process's observer; in multiprocess mode, the sum of every process's files."""
    directory = multiprocess_dir()
    if directory is None:
        return MetricsServer(host, port, observer.registry, observer.refusals.latest)
    return serve_multiprocess(directory, host, port, own=observer.refusals)


def serve_multiprocess(directory: str | Path, host: str = "127.0.0.1", port: int = 0,
                       own: RefusalLog | None = None) -> MetricsServer:
    """Serve the sum of what every process wrote into ``directory`` (multiprocess mode)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]

    def refusals() -> list[Refusal]:
        merged = read_spilled(directory) + (own.latest() if own is not None and not isinstance(own, SpilledRefusals)
                                            else [])
        return sorted(merged, key=lambda r: r.time)[-50:]

    return MetricsServer(host, port, registry, refusals)


def metrics_for(role: str) -> RoleMetrics:
    """The observer of a role (``switch``, ``hsm``, ``fleet``); its refusals spill to the
    multiprocess directory when that mode is on."""
    directory = multiprocess_dir()
    refusals = SpilledRefusals(directory) if directory is not None else None
    factory: dict[str, Callable[..., RoleMetrics]] = {"switch": SwitchMetrics, "hsm": HsmMetrics, "fleet": FleetMetrics}
    return factory[role](refusals=refusals)
