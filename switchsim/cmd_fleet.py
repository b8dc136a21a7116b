"""``switchsim fleet`` (load runs of virtual terminals) and ``switchsim conformance`` (named
checks against any host, in the dialect --dialect names). Exit status: 0 the verdict passed (fleet:
every check of terminals_sim/verdict.py; conformance: no check failed), 1 it failed, 2 usage."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import re
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from specs.catalogue import DEFAULT_DIALECT
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
from terminals_sim.progress import print_summary, progress_for
from terminals_sim.provision import (
    DEFAULT_FIRST_TERMINAL,
    DEFAULT_MERCHANT_PREFIX,
    DEFAULT_SEED,
    PlannedTerminal,
    provision_plan,
)
from terminals_sim.report import build_report, write_report
from terminals_sim.scenario import ScenarioError, builtin_names, load_scenario
from terminals_sim.testcards import DEFAULT_TEST_CARDS, card_by_pan
from terminals_sim.verdict import ThresholdError, Thresholds, write_verdict_junit

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
DEFAULT_DURATION = 10.0
DEFAULT_PROGRESS_INTERVAL = 5.0
_PROVISION_HOOK = "switch.provisioning"


class _Usage(Exception):
    pass


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
    fleet.add_argument("--target", metavar="HOST:PORT", help="the host to drive, e.g. 127.0.0.1:5800")
    fleet.add_argument(
        "--terminals", type=_positive_int, default=10, metavar="N", help="virtual terminals (default 10)"
    )
    fleet.add_argument(
        "--scenario",
        default="steady",
        metavar="NAME|FILE",
        help=f"built-in ({', '.join(builtin_names())}) or a TOML file (default steady)",
    )
    stop = fleet.add_mutually_exclusive_group()
    stop.add_argument(
        "--duration", type=_duration, metavar="TIME", help=f"run length: 60s, 2m, 500ms (default {DEFAULT_DURATION:g}s)"
    )
    stop.add_argument("--exchanges", type=_positive_int, metavar="K", help="stop after K exchanges")
    fleet.add_argument(
        "--connect-rate", type=_positive_float, metavar="R", help="terminals started per second (default: all at once)"
    )
    fleet.add_argument(
        "--rate", type=_positive_float, metavar="TPS", help="global cap on exchanges per second (default: none)"
    )
    fleet.add_argument(
        "--timeout",
        type=_positive_float,
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
        default=DEFAULT_MERCHANT_PREFIX,
        metavar="DIGITS",
        help=f"merchant id prefix (default {DEFAULT_MERCHANT_PREFIX})",
    )
    fleet.add_argument(
        "--first-terminal",
        type=int,
        default=DEFAULT_FIRST_TERMINAL,
        metavar="N",
        help=f"first terminal number (default {DEFAULT_FIRST_TERMINAL})",
    )
    fleet.add_argument("--random-seed", type=int, metavar="N", help="make the step mix repeatable")
    fleet.add_argument("--quiet", action="store_true", help="no progress, only the summary")
    fleet.add_argument(
        "--progress-interval",
        type=_positive_float,
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
    conf.add_argument("--merchant", required=True, help="merchant id (field 42), 15 characters")
    conf.add_argument("--terminal", required=True, help="terminal id (field 41), 8 characters")
    conf.add_argument(
        "--tmk",
        required=True,
        type=_tmk,
        metavar="HEX32",
        help="the terminal's clear master key as registered on the host (test keys only)",
    )
    conf.add_argument("--operator", default="01", help="operator id to sign in (default 01)")
    conf.add_argument("--password", default="0000", help="that operator's password (default 0000)")
    default_card = DEFAULT_TEST_CARDS[0]
    conf.add_argument(
        "--card-pan",
        default=default_card.pan,
        metavar="DIGITS",
        help=f"test card for the financial checks (default {default_card.masked_pan}, the first shared test card)",
    )
    conf.add_argument(
        "--card-pin",
        default=None,
        metavar="DIGITS",
        help="that card's PIN (default: the shared test card's, when --card-pan is one)",
    )
    conf.add_argument(
        "--card-expiry",
        default=None,
        metavar="YYMM",
        help="that card's expiry (default: the shared test card's, when --card-pan is one)",
    )
    conf.add_argument("--timeout", type=_positive_float, default=DEFAULT_TIMEOUT, metavar="SECONDS")
    conf.add_argument(
        "--only", action="append", choices=CHECK_NAMES, metavar="CHECK", help="run only this check (repeatable)"
    )
    conf.add_argument("--junit", type=Path, metavar="FILE.xml", help="write JUnit XML here")
    _dialect_option(conf)
    conf.set_defaults(func=_conformance)


def add_verdict_options(parser: argparse.ArgumentParser, *, default_ratio: float | None) -> None:
    """The thresholds of terminals_sim/verdict.py and --junit (fleet and report merge)."""
    group = parser.add_argument_group("verdict for CI (exit 1 when any check fails)")
    group.add_argument("--max-p99-ms", type=_positive_float, metavar="MS", help="the run's p99 latency at most MS")
    group.add_argument(
        "--min-tps", type=_positive_float, metavar="TPS", help="the run's exchanges per second at least TPS"
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


# -- argument types ------------------------------------------------------------------------


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value



def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text.removesuffix("/s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 60s, 2m, 500ms)")
    return float(match.group(1)) * _UNIT[match.group(2)]


def _tmk(text: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError("TMK must be hexadecimal") from None
    if len(key) not in (8, 16, 24):
        raise argparse.ArgumentTypeError(f"TMK must be 16, 32 or 48 hex digits, got {len(text)}")
    return key


def _card(args: argparse.Namespace) -> CardProfile:
    known = card_by_pan(args.card_pan)
    pin = args.card_pin or (known.pin if known else None)
    expiry = args.card_expiry or (known.expiry if known else None)
    if pin is None or expiry is None:
        raise _Usage("--card-pan is not a shared test card: give --card-pin and --card-expiry too")
    return CardProfile(args.card_pan, expiry, known.service_code if known else "101", pin)


def _target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _Usage(f"--target must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


# -- fleet ---------------------------------------------------------------------------------


def _fleet(args: argparse.Namespace) -> int:
    console = Console(stderr=False)
    err = Console(stderr=True)
    try:
        if args.provision:
            _provision(args, err)
            if args.target is None:
                return EXIT_OK
        if args.target is None:
            raise _Usage("--target HOST:PORT is required")
        host, port = _target(args.target)
        json_path(args.report, "--report")
        thresholds = thresholds_from(args) or Thresholds()
        scenario = load_scenario(args.scenario)
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
        )
        run = _runner(args.uvloop)
    except (_Usage, ScenarioError, ThresholdError, ValueError) as exc:
        err.print(f"switchsim fleet: {exc}", style="red", highlight=False, soft_wrap=True, markup=False)
        return EXIT_USAGE
    if args.quiet:
        result = run(run_fleet(config))
    else:
        progress = progress_for(console, duration=duration, exchanges=args.exchanges, interval=args.progress_interval)
        with progress:
            result = run(run_fleet(config, progress.update))
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
        err.print(f"{prog}: cannot write {exc.filename}: {exc.strerror}", style="red", highlight=False,
                  soft_wrap=True, markup=False)
        return EXIT_USAGE
    return EXIT_OK if report["verdict"]["passed"] else EXIT_FAILED


def _runner(use_uvloop: bool) -> Callable[[Coroutine[Any, Any, FleetResult]], FleetResult]:
    if not use_uvloop:
        return asyncio.run
    try:
        import uvloop
    except ImportError:
        raise _Usage("--uvloop needs uvloop: pip install 'switchsim[fast]'") from None
    run: Callable[[Coroutine[Any, Any, FleetResult]], FleetResult] = uvloop.run
    return run


def _provision(args: argparse.Namespace, err: Console) -> None:
    if not args.db:
        raise _Usage("--provision needs --db PATH (the switch store to register terminals in)")
    try:
        hook = importlib.import_module(_PROVISION_HOOK).provision
    except (ImportError, AttributeError):
        raise _Usage(
            f"--provision needs {_PROVISION_HOOK}.provision(db_path, plan), which this install "
            "does not have; register the terminals with the switch's own commands instead"
        ) from None
    plan: list[PlannedTerminal] = provision_plan(args.terminals, args.seed, args.merchant_prefix, args.first_terminal)
    outcome = hook(args.db, plan)
    if inspect.isawaitable(outcome):
        asyncio.run(_await(outcome))
    err.print(f"provisioned {len(plan)} terminals in {args.db}", highlight=False, markup=False)


async def _await(awaitable: Any) -> Any:
    return await awaitable


# -- conformance ---------------------------------------------------------------------------


def _conformance(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    try:
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
            dialect=args.dialect,
        )
        only = frozenset(args.only) if args.only else None
        results = asyncio.run(run_conformance(target, only))
    except (_Usage, ValueError) as exc:
        err.print(f"switchsim conformance: {exc}", style="red", highlight=False, soft_wrap=True, markup=False)
        return EXIT_USAGE
    table = Table(title=f"{args.dialect} conformance against {host}:{port}")
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
