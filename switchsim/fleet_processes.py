"""``switchsim fleet --processes N``: one fleet on N processes of this machine.

Each process is ``switchsim fleet`` itself, given one shard of the terminals (consecutive
numbers, so together they are the terminals one process would have run) and its share of
``--exchanges``, ``--rate`` and ``--connect-rate``; each writes its report into a temporary
directory, and the reports are merged exactly (terminals_sim/merge.py) into one report, one
page and one summary, judged against the thresholds given here.

With ``--metrics-port`` the processes count into prometheus-client's multiprocess directory
(``PROMETHEUS_MULTIPROC_DIR``, a temporary one) and this process serves the sum on the port.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from switchsim.tls_options import client_tls_argv


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    first_terminal: int
    terminals: int
    exchanges: int | None
    rate: float | None
    connect_rate: float | None


def split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` whole shares as equal as they can be, the larger ones first."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def plan_shards(
    processes: int,
    terminals: int,
    first_terminal: int,
    exchanges: int | None,
    rate: float | None,
    connect_rate: float | None,
) -> list[Shard]:
    """The shards of one run; ValueError when it cannot be split that many ways."""
    if processes > terminals:
        raise ValueError(f"--processes {processes} needs at least as many --terminals, got {terminals}")
    if exchanges is not None and exchanges < processes:
        raise ValueError(f"--processes {processes} needs --exchanges of at least {processes}, got {exchanges}")
    counts = split(terminals, processes)
    budgets = split(exchanges, processes) if exchanges is not None else [None] * processes
    shards = []
    first = first_terminal
    for i, (n, budget) in enumerate(zip(counts, budgets, strict=True)):
        share = n / terminals
        shards.append(Shard(i, first, n, budget, rate * share if rate else None,
                            connect_rate * share if connect_rate else None))
        first += n
    return shards


def shard_argv(
    args: argparse.Namespace, shard: Shard, report: Path, duration: float | None, metrics: bool
) -> list[str]:
    """The command line of one shard's process."""
    argv = [sys.executable, "-m", "switchsim.cli", "fleet", "--target", args.target,
            "--terminals", str(shard.terminals), "--first-terminal", str(shard.first_terminal),
            "--scenario", args.scenario, "--timeout", repr(args.timeout), "--seed", args.seed,
            "--merchant-prefix", args.merchant_prefix, "--dialect", args.dialect, "--report", str(report), "--quiet",
            # Judged once, merged, here: a shard must not stop on a verdict.
            "--max-failure-ratio", "1"]
    argv += ["--exchanges", str(shard.exchanges)] if shard.exchanges is not None else ["--duration", f"{duration!r}s"]
    if shard.rate is not None:
        argv += ["--rate", repr(shard.rate)]
    if shard.connect_rate is not None:
        argv += ["--connect-rate", repr(shard.connect_rate)]
    if args.random_seed is not None:
        argv += ["--random-seed", str(args.random_seed + shard.index)]
    if args.uvloop:
        argv.append("--uvloop")
    argv += client_tls_argv(args)
    if metrics:
        argv.append("--metrics-shard")
    return argv


@dataclass(frozen=True, slots=True)
class ShardFailure:
    index: int
    returncode: int
    stderr: str


def run_shards(
    args: argparse.Namespace, shards: Sequence[Shard], duration: float | None, workdir: Path, say: Callable[[str], None]
) -> tuple[list[Path], list[ShardFailure]]:
    """Start every shard, wait for all; the reports written, and the shards that could not run.
    With ``--metrics-port`` the sum of their metrics is served meanwhile."""
    from switchsim.metrics_options import SharedMetrics

    reports = [workdir / f"shard-{s.index}.json" for s in shards]
    shared = None
    if args.metrics_port is not None:
        shared = SharedMetrics(workdir / "metrics", args.metrics_host, args.metrics_port)
        say(f"metrics on {shared.url}")
    metrics = shared is not None
    env = shared.env(os.environ) if shared is not None else dict(os.environ)
    procs = [
        subprocess.Popen(shard_argv(args, s, r, duration, metrics), env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
        for s, r in zip(shards, reports, strict=True)
    ]
    for s in shards:
        say(f"process {s.index + 1}/{len(shards)}: terminals {s.first_terminal}-{s.first_terminal + s.terminals - 1}")
    failures = []
    try:
        for s, proc in zip(shards, procs, strict=True):
            _out, err = proc.communicate()
            if shared is not None:
                shared.process_dead(proc.pid)  # its live gauges (connections open) leave the sum
            # 0 and 1 are verdicts (the report is written); anything else means no report.
            if proc.returncode not in (0, 1) or not reports[s.index].exists():
                failures.append(ShardFailure(s.index, proc.returncode, err.strip()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        if shared is not None:
            shared.close()
    return [r for r in reports if r.exists()], failures


def temporary_workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="switchsim-fleet-")
