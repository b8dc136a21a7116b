"""``switchsim fleet`` (load runs of virtual terminals) and ``switchsim conformance`` (named
checks against any host, in the dialect --dialect names). Exit status: 0 the verdict passed (fleet:
every check of terminals_sim/verdict.py; conformance: no check failed), 1 it failed, 2 usage."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from specs.catalogue import DEFAULT_DIALECT
from specs.testcards import CHIP_CARD, DEFAULT_TEST_CARDS, card_by_pan
from switchsim import argtypes
from switchsim.errors import EXIT_FAILED, EXIT_OK, RunFailed, UsageError
from switchsim.fleet_processes import Shard, plan_shards, run_shards, temporary_workdir
from switchsim.metrics_options import add_metrics_options, start_metrics
from switchsim.provisioning import provision
from switchsim.tls_options import add_client_tls_options, client_tls
from terminals_sim.chipcard import ChipProfile
from terminals_sim.conformance import (
    CHECK_NAMES,
    CheckStatus,
    ConformanceTarget,
    describe,
    run_conformance,
    write_junit,
)
from terminals_sim.financial import CardProfile
from terminals_sim.fleet import DEFAULT_TIMEOUT, FleetConfig, FleetResult, run_fleet
from terminals_sim.merge import merge_reports
from terminals_sim.progress import print_summary, progress_for
from terminals_sim.provision import (
    DEFAULT_FIRST_TERMINAL,
    DEFAULT_MERCHANT_PREFIX,
    DEFAULT_SEED,
    PlannedTerminal,
    provision_plan,
)
from terminals_sim.report import build_report, write_report
from terminals_sim.scenario import builtin_names, load_scenario
from terminals_sim.verdict import Thresholds, write_verdict_junit

DEFAULT_DURATION = 10.0
DEFAULT_PROGRESS_INTERVAL = 5.0
LOCUSTFILE = "terminals_sim.locustfile"


def register(subparsers: Any) -> None:
    fleet = subparsers.add_parser(
        "fleet",
        help="drive a host with virtual UnionPay POS terminals and report",
        description=(
            "Run N virtual terminals against a host (cup-pos unless --dialect) with a scenario; progress, "
            "the verdict and a summary table, and an optional JSON report with an HTML page beside it. "
            "Exit 0 when the verdict passed (no failed exchange, or at most --max-failure-ratio, "
            "and every threshold given), 1 when it failed, 2 on bad usage."
        ),
    )
    fleet.add_argument(
        "action",
        nargs="?",
        choices=("locustfile",),
        help="locustfile: print the path of the locustfile that drives these terminals from Locust, and exit",
    )
    fleet.add_argument("--target", metavar="HOST:PORT", help="the host to drive, e.g. 127.0.0.1:5800")
    fleet.add_argument(
        "--terminals", type=argtypes.positive_int, default=10, metavar="N", help="virtual terminals (default 10)"
    )
    fleet.add_argument(
        "--scenario",
        default="steady",
        metavar="NAME|FILE",
        help=f"built-in ({', '.join(builtin_names())}) or a TOML file (default steady)",
    )
    stop = fleet.add_mutually_exclusive_group()
    stop.add_argument(
        "--duration",
        type=argtypes.duration,
        metavar="TIME",
        help=f"run length: 60s, 2m, 500ms (default {DEFAULT_DURATION:g}s)",
    )
    stop.add_argument("--exchanges", type=argtypes.positive_int, metavar="K", help="stop after K exchanges")
    fleet.add_argument(
        "--connect-rate",
        type=argtypes.positive_float,
        metavar="R",
        help="terminals started per second (default: all at once)",
    )
    fleet.add_argument(
        "--rate", type=argtypes.positive_float, metavar="TPS", help="global cap on exchanges per second (default: none)"
    )
    fleet.add_argument(
        "--timeout",
        type=argtypes.positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"per-exchange timeout (default {DEFAULT_TIMEOUT:g})",
    )
    fleet.add_argument(
        "--report", type=Path, metavar="FILE.json", help="write the JSON report here and an HTML page beside it"
    )
    fleet.add_argument(
        "--self-contained",
        action="store_true",
        help="put plotly.js inside the HTML page (4.8 MB) instead of one shared plotly.min.js beside it",
    )
    add_verdict_options(fleet, default_ratio=0.0)
    fleet.add_argument(
        "--seed", default=DEFAULT_SEED, help=f"TMK derivation seed shared with the switch (default {DEFAULT_SEED!r})"
    )
    fleet.add_argument(
        "--merchant-prefix",
        type=argtypes.digits(1, 14, "a merchant prefix"),
        default=DEFAULT_MERCHANT_PREFIX,
        metavar="DIGITS",
        help=f"merchant id prefix (default {DEFAULT_MERCHANT_PREFIX})",
    )
    fleet.add_argument(
        "--first-terminal",
        type=argtypes.non_negative_int,
        default=DEFAULT_FIRST_TERMINAL,
        metavar="N",
        help=f"first terminal number (default {DEFAULT_FIRST_TERMINAL})",
    )
    fleet.add_argument("--random-seed", type=int, metavar="N", help="make the step mix repeatable")
    fleet.add_argument("--quiet", action="store_true", help="no progress, only the summary")
    fleet.add_argument(
        "--progress-interval",
        type=argtypes.positive_float,
        default=DEFAULT_PROGRESS_INTERVAL,
        metavar="SECONDS",
        help="when stdout is not a terminal, print a progress line this often "
        f"(default {DEFAULT_PROGRESS_INTERVAL:g}; on a terminal the line is redrawn in place)",
    )
    fleet.add_argument(
        "--uvloop", action="store_true", help="run on uvloop (pip install 'switchsim[fast]'); about 10-40%% more TPS"
    )
    fleet.add_argument(
        "--provision",
        action="store_true",
        help="register the fleet's terminals in the switch store first (needs --db); without --target, only provision",
    )
    fleet.add_argument("--db", metavar="PATH", help="switch store to provision into")
    _dialect_option(fleet)
    fleet.add_argument(
        "--processes",
        type=argtypes.positive_int,
        default=1,
        metavar="N",
        help="run N fleet processes on this machine, one shard of the terminals each, and merge their reports "
        "into one report and one summary (default 1)",
    )
    add_metrics_options(fleet)
    add_client_tls_options(fleet)
    # A shard of --processes: count into the multiprocess directory, the parent serves it.
    fleet.add_argument("--metrics-shard", action="store_true", help=argparse.SUPPRESS)
    fleet.set_defaults(func=_fleet)

    conf = subparsers.add_parser(
        "conformance",
        help="run named conformance checks against a host (cup-pos unless --dialect)",
        description="Sign-in 001/003/004, key rotation, echo, operator sign-in, sign-off, malformed "
        "frame, unknown terminal/merchant; MAC, PIN, reversal and duplicate-STAN handling with "
        "a test card (skipped when the host answers 14 for it). Exit 0 when no check failed, "
        "1 otherwise.",
    )
    conf.add_argument("--target", required=True, metavar="HOST:PORT")
    conf.add_argument(
        "--merchant", required=True, type=argtypes.merchant_id, help="merchant id (field 42), 15 characters"
    )
    conf.add_argument(
        "--terminal", required=True, type=argtypes.terminal_id, help="terminal id (field 41), 8 characters"
    )
    conf.add_argument(
        "--tmk",
        required=True,
        type=argtypes.des_key,
        metavar="HEX32",
        help="the terminal's clear master key as registered on the host (test keys only)",
    )
    conf.add_argument("--operator", default="01", type=argtypes.operator_id, help="operator id to sign in (default 01)")
    conf.add_argument(
        "--password",
        default="0000",
        type=argtypes.digits(4, 12, "a password", secret=True),
        help="that operator's password (default 0000)",
    )
    default_card = DEFAULT_TEST_CARDS[0]
    conf.add_argument(
        "--card-pan",
        default=default_card.pan,
        type=argtypes.digits(12, 19, "a PAN", secret=True),
        metavar="DIGITS",
        help=f"test card for the financial checks (default {default_card.masked_pan}, the first shared test card)",
    )
    conf.add_argument(
        "--card-pin",
        default=None,
        type=argtypes.digits(4, 12, "a PIN", secret=True),
        metavar="DIGITS",
        help="that card's PIN (default: the shared test card's, when --card-pan is one)",
    )
    conf.add_argument(
        "--card-expiry",
        default=None,
        type=argtypes.digits(4, 4, "an expiry (YYMM)"),
        metavar="YYMM",
        help="that card's expiry (default: the shared test card's, when --card-pan is one)",
    )
    conf.add_argument(
        "--chip-card-pan",
        default=CHIP_CARD.pan,
        type=argtypes.digits(12, 19, "a PAN", secret=True),
        metavar="DIGITS",
        help=f"chip card for the chip checks (default {CHIP_CARD.masked_pan}, the shared chip test card)",
    )
    conf.add_argument(
        "--chip-card-imk-ac",
        type=argtypes.double_key,
        metavar="HEX32",
        help="its IMK-AC as the host has it (default: derived from the fleet's seed, as the shared chip cards')",
    )
    conf.add_argument(
        "--chip-card-psn", type=argtypes.digits(2, 2, "a PAN sequence number"), metavar="NN",
        help="its PAN sequence number (default: the shared chip card's, else 01)",
    )
    conf.add_argument(
        "--chip-card-pin", type=argtypes.digits(4, 12, "a PIN", secret=True), metavar="DIGITS",
        help="its PIN (default: the shared chip card's)",
    )
    conf.add_argument(
        "--chip-card-expiry", type=argtypes.digits(4, 4, "an expiry (YYMM)"), metavar="YYMM",
        help="its expiry (default: the shared chip card's)",
    )
    conf.add_argument("--timeout", type=argtypes.positive_float, default=DEFAULT_TIMEOUT, metavar="SECONDS")
    conf.add_argument(
        "--only", action="append", choices=CHECK_NAMES, metavar="CHECK", help="run only this check (repeatable)"
    )
    conf.add_argument("--junit", type=Path, metavar="FILE.xml", help="write JUnit XML here")
    _dialect_option(conf)
    add_client_tls_options(conf)
    conf.set_defaults(func=_conformance)


def add_verdict_options(parser: argparse.ArgumentParser, *, default_ratio: float | None) -> None:
    """The thresholds of terminals_sim/verdict.py and --junit (fleet and report merge)."""
    group = parser.add_argument_group("verdict for CI (exit 1 when any check fails)")
    group.add_argument(
        "--max-p99-ms", type=argtypes.positive_float, metavar="MS", help="the run's p99 latency at most MS"
    )
    group.add_argument(
        "--min-tps", type=argtypes.positive_float, metavar="TPS", help="the run's exchanges per second at least TPS"
    )
    shown = "0: no exchange may fail" if default_ratio is not None else "the reports' own"
    group.add_argument(
        "--max-failure-ratio",
        type=_ratio,
        default=default_ratio,
        metavar="R",
        help=f"failed / exchanges at most R (0 to 1), for the run and for each step kind (default {shown})",
    )
    group.add_argument(
        "--junit", type=Path, metavar="FILE.xml", help="write JUnit XML: one test case per threshold and per step kind"
    )


def thresholds_from(args: argparse.Namespace) -> Thresholds | None:
    """The thresholds given on the command line; None when none was given and there is no default."""
    if args.max_p99_ms is None and args.min_tps is None and args.max_failure_ratio is None:
        return None
    ratio = args.max_failure_ratio if args.max_failure_ratio is not None else 0.0
    return Thresholds(max_p99_ms=args.max_p99_ms, min_tps=args.min_tps, max_failure_ratio=ratio)


def json_path(path: Path | None, option: str) -> None:
    """Refuse a report name that is not .json: the JSON would land in a file named for another format."""
    if path is not None and path.suffix.lower() != ".json":
        raise ValueError(f"{option} must name a .json file (the HTML page is written beside it), got {str(path)!r}")


def _dialect_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dialect",
        default=DEFAULT_DIALECT,
        help=f"what the terminals speak: a dialect with a message catalogue (default {DEFAULT_DIALECT})",
    )


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


# -- argument checks -----------------------------------------------------------------------


def _writable(path: Path | None, option: str) -> None:
    """A report path that cannot be written is refused before the run, not after it. Its folder
    is made here, as the report writers would make it."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot make its folder ({exc.strerror or exc})") from None


def _chip_card(args: argparse.Namespace) -> CardProfile:
    known = card_by_pan(args.chip_card_pan)
    pin = args.chip_card_pin or (known.pin if known else None)
    expiry = args.chip_card_expiry or (known.expiry if known else None)
    if pin is None or expiry is None:
        raise UsageError("--chip-card-pan is not a shared test card: give --chip-card-pin and --chip-card-expiry too")
    psn = args.chip_card_psn or (known.psn if known and known.chip else "01")
    pan = args.chip_card_pan
    if args.chip_card_imk_ac is not None:
        chip = ChipProfile.of_imk(args.chip_card_imk_ac, pan, psn)
    else:
        chip = ChipProfile.derived(pan, psn)
    return CardProfile(pan, expiry, known.service_code if known else "220", pin, chip=chip)


def _card(args: argparse.Namespace) -> CardProfile:
    known = card_by_pan(args.card_pan)
    pin = args.card_pin or (known.pin if known else None)
    expiry = args.card_expiry or (known.expiry if known else None)
    if pin is None or expiry is None:
        raise UsageError("--card-pan is not a shared test card: give --card-pin and --card-expiry too")
    return CardProfile(args.card_pan, expiry, known.service_code if known else "101", pin)


def _target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--target must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


# -- fleet ---------------------------------------------------------------------------------


def _fleet(args: argparse.Namespace) -> int:
    if args.action == "locustfile":
        # Found, not imported: importing Locust patches the standard library for gevent.
        spec = importlib.util.find_spec(LOCUSTFILE)
        assert spec is not None and spec.origin is not None, f"{LOCUSTFILE} is part of this package"
        print(spec.origin)
        return EXIT_OK
    console = Console(stderr=False)
    err = Console(stderr=True)
    if args.target is None and not args.provision:
        raise UsageError("--target HOST:PORT is required")
    json_path(args.report, "--report")
    _writable(args.report, "--report")
    thresholds = thresholds_from(args) or Thresholds()
    # Checked before --provision writes anything.
    host, port = _target(args.target) if args.target is not None else ("", 0)
    tls = client_tls(args)
    scenario = load_scenario(args.scenario) if args.target is not None else None
    if args.provision:
        _provision(args, err)
    if scenario is None:
        return EXIT_OK
    duration = args.duration if args.exchanges is None else None
    if duration is None and args.exchanges is None:
        duration = DEFAULT_DURATION
    config = FleetConfig(
        host=host,
        port=port,
        terminals=args.terminals,
        scenario=scenario,
        seed=args.seed,
        merchant_prefix=args.merchant_prefix,
        first_terminal=args.first_terminal,
        connect_rate=args.connect_rate,
        duration=duration,
        exchanges=args.exchanges,
        rate=args.rate,
        timeout=args.timeout,
        random_seed=args.random_seed,
        dialect=args.dialect,
        tls=tls,
    )
    run = _runner(args.uvloop)
    if args.processes > 1:
        shards = plan_shards(args.processes, args.terminals, args.first_terminal, args.exchanges, args.rate,
                             args.connect_rate)
        return _fleet_processes(args, shards, duration, thresholds, console, err)
    metrics = start_metrics(args, "fleet", shard=args.metrics_shard)
    try:
        if args.quiet:
            result = run(run_fleet(config, observer=metrics.observer))
        else:
            progress = progress_for(console, duration=duration, exchanges=args.exchanges,
                                    interval=args.progress_interval)
            with progress:
                result = run(run_fleet(config, progress.update, metrics.observer))
    finally:
        metrics.close()
    report = build_report(
        result.stats,
        target=f"{host}:{port}",
        scenario=scenario.name,
        terminals=config.terminals,
        started_at=result.started_at,
        duration_s=result.duration_s,
        timeout_s=config.timeout,
        thresholds=thresholds,
    )
    return finish(report, args, console, err, "switchsim fleet")


def _fleet_processes(
    args: argparse.Namespace,
    shards: list[Shard],
    duration: float | None,
    thresholds: Thresholds,
    console: Console,
    err: Console,
) -> int:
    """--processes N: the shards run as processes of their own, one merged report and summary."""

    def say(line: str) -> None:
        if not args.quiet or line.startswith("metrics on "):
            console.print(line, highlight=False, markup=False, soft_wrap=True)

    with temporary_workdir() as workdir:
        reports, failures = run_shards(args, shards, duration, Path(workdir), say)
        for failure in failures:
            err.print(f"switchsim fleet: process {failure.index + 1} exited {failure.returncode}: {failure.stderr}",
                      style="red", highlight=False, soft_wrap=True, markup=False)
        if failures:
            raise RunFailed(f"{len(failures)} of {len(shards)} fleet processes did not finish (see above)")
        report = merge_reports(reports, thresholds)
    return finish(report, args, console, err, "switchsim fleet")


def finish(report: dict[str, Any], args: argparse.Namespace, console: Console, err: Console, prog: str) -> int:
    """Print the verdict and the summary, write the report, its page and the JUnit file; the
    exit status of the verdict (fleet and report merge)."""
    print_summary(console, report)
    try:
        if args.report is not None:
            html = write_report(report, args.report, self_contained=args.self_contained)
            console.print(f"report: {args.report}  page: {html}", highlight=False, markup=False, soft_wrap=True)
        if args.junit is not None:
            write_verdict_junit(report, args.junit)
            console.print(f"junit: {args.junit}", highlight=False, markup=False, soft_wrap=True)
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename}: {exc.strerror}") from None
    return EXIT_OK if report["verdict"]["passed"] else EXIT_FAILED


def _runner(use_uvloop: bool) -> Callable[[Coroutine[Any, Any, FleetResult]], FleetResult]:
    if not use_uvloop:
        return asyncio.run
    try:
        import uvloop
    except ImportError:
        raise UsageError("--uvloop needs uvloop: pip install 'switchsim[fast]'") from None
    run: Callable[[Coroutine[Any, Any, FleetResult]], FleetResult] = uvloop.run
    return run


def _provision(args: argparse.Namespace, err: Console) -> None:
    if not args.db:
        raise UsageError("--provision needs --db PATH (the switch store to register terminals in)")
    plan: list[PlannedTerminal] = provision_plan(args.terminals, args.seed, args.merchant_prefix, args.first_terminal)
    # The seed also derives the shared chip test cards' IMK-AC (hsm_sim.testkeys).
    provision(args.db, [(p.merchant, p.terminal, p.tmk) for p in plan], seed=args.seed)
    err.print(f"provisioned {len(plan)} terminals in {args.db}", highlight=False, markup=False)


# -- conformance ---------------------------------------------------------------------------


def _conformance(args: argparse.Namespace) -> int:
    _writable(args.junit, "--junit")
    host, port = _target(args.target)
    target = ConformanceTarget(
        host=host,
        port=port,
        merchant=args.merchant,
        terminal=args.terminal,
        tmk=args.tmk,
        operator=args.operator,
        password=args.password,
        timeout=args.timeout,
        card=_card(args),
        chip_card=_chip_card(args),
        dialect=args.dialect,
        tls=client_tls(args),
    )
    only = frozenset(args.only) if args.only else None
    results = asyncio.run(run_conformance(target, only))
    over = " over TLS" if target.tls is not None else ""
    table = Table(title=f"{args.dialect} conformance against {host}:{port}{over}")
    table.add_column("check")
    table.add_column("result")
    table.add_column("reason / what it checks")
    style = {CheckStatus.PASSED: "green", CheckStatus.FAILED: "bold red", CheckStatus.SKIPPED: "yellow"}
    for r in results:
        table.add_row(r.name, Text(r.status.value, style=style[r.status]), Text(r.reason or describe(r.name)))
    Console().print(table)
    if args.junit is not None:
        write_junit(results, args.junit, target=f"{host}:{port}", dialect=args.dialect)
    failed = any(r.status is CheckStatus.FAILED for r in results)
    return EXIT_FAILED if failed else EXIT_OK
