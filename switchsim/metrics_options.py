"""``--metrics-port`` and ``--metrics-host``: the options that make ``serve``, ``hsm serve`` and
``fleet`` serve Prometheus ``/metrics`` (specs/metrics.py), and starting that endpoint."""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from specs.observer import NULL_OBSERVER, Observer
from switchsim import argtypes
from switchsim.errors import RunFailed, UsageError

if TYPE_CHECKING:  # prometheus-client is imported only by a command that serves metrics
    from specs.metrics import MetricsServer, RoleMetrics


def add_metrics_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-port",
        type=argtypes.port,
        metavar="P",
        help="serve Prometheus /metrics (and /refusals, the latest refusals as JSON) on this port; 0 picks one",
    )
    parser.add_argument(
        "--metrics-host", default="127.0.0.1", metavar="ADDR", help="address for --metrics-port (default 127.0.0.1)"
    )


class MetricsEndpoint:
    """The observer a command hands to its component, and the endpoint serving it (if any)."""

    def __init__(self, observer: Observer, server: MetricsServer | None, metrics: RoleMetrics | None) -> None:
        self.observer = observer
        self.server = server
        self.metrics = metrics

    def close(self) -> None:
        from specs.metrics import SpilledRefusals

        if self.metrics is not None:
            self.metrics.close()  # the last counts reach the multiprocess directory
        if self.metrics is not None and isinstance(self.metrics.refusals, SpilledRefusals):
            self.metrics.refusals.flush()  # the latest refusals, for the process serving them
        if self.server is not None:
            self.server.close()


def start_metrics(args: argparse.Namespace, role: str, *, shard: bool = False) -> MetricsEndpoint:
    """Start the endpoint the options ask for and say where it is (one line on stdout);
    RunFailed when the port cannot be bound. ``shard``: count, in multiprocess mode, for the
    parent process to serve (``fleet --processes``)."""
    from specs.metrics import MULTIPROC_ENV, metrics_for, multiprocess_dir, serve_metrics

    if shard:
        if multiprocess_dir() is None:
            raise UsageError(f"--metrics-shard needs {MULTIPROC_ENV}")
        metrics = metrics_for(role)
        return MetricsEndpoint(metrics, None, metrics)
    if args.metrics_port is None:
        return MetricsEndpoint(NULL_OBSERVER, None, None)
    metrics = metrics_for(role)
    try:
        server = serve_metrics(metrics, args.metrics_host, args.metrics_port)
    except OSError as exc:
        raise RunFailed(f"cannot serve metrics on {args.metrics_host} port {args.metrics_port}: "
                        f"{exc.strerror or exc}") from None
    print(f"metrics on {server.url}", flush=True)
    return MetricsEndpoint(metrics, server, metrics)


class SharedMetrics:
    """One port serving the sum of several processes' metrics (``serve --workers``,
    ``fleet --processes``): prometheus-client's multiprocess mode in ``directory``, which the
    processes are given in their environment (``env``); the refusals they spill too."""

    def __init__(self, directory: Path, host: str, port: int) -> None:
        from specs.metrics import serve_multiprocess

        self.directory = directory
        directory.mkdir(exist_ok=True)
        try:
            self.server = serve_multiprocess(directory, host, port)
        except OSError as exc:
            raise RunFailed(f"cannot serve metrics on {host} port {port}: {exc.strerror or exc}") from None

    @property
    def url(self) -> str:
        return self.server.url

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with the multiprocess directory, for a process that counts into it."""
        from specs.metrics import MULTIPROC_ENV

        return {**base, MULTIPROC_ENV: str(self.directory)}

    def process_dead(self, pid: int) -> None:
        """A counting process ended: its live gauges (connections open, ...) leave the sum; what
        it counted stays in it."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(self.directory))  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self.server.close()


@contextlib.contextmanager
def shared_metrics(args: argparse.Namespace) -> Iterator[SharedMetrics | None]:
    """``SharedMetrics`` in a temporary directory when ``--metrics-port`` asks for metrics (its
    URL said on stdout), None otherwise; closed and removed at the end."""
    if args.metrics_port is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="switchsim-metrics-") as tmp:
        metrics = SharedMetrics(Path(tmp) / "metrics", args.metrics_host, args.metrics_port)
        print(f"metrics on {metrics.url}", flush=True)
        try:
            yield metrics
        finally:
            metrics.close()
