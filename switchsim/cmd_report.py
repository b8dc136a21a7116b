"""``switchsim report merge``: several fleet reports (from processes or machines that each ran a
shard of the terminals) into one, with its HTML page and verdict. Exit status as ``fleet``: 0
the merged verdict passed, 1 it failed, 2 bad usage or an input that cannot be merged."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from switchsim.cmd_fleet import add_verdict_options, finish, json_path, thresholds_from
from terminals_sim.merge import merge_reports


def register(subparsers: Any) -> None:
    report = subparsers.add_parser("report", help="work with fleet reports (merge)")
    sub = report.add_subparsers(dest="report_command", metavar="COMMAND", required=True)
    merge = sub.add_parser(
        "merge",
        help="merge fleet reports exactly (counts, latency histograms, per-second series)",
        description=(
            "Merge switchsim.fleet.report/2 JSON reports into one: counts summed, latency "
            "histograms added (so the merged percentiles are those of all the samples), the "
            "per-second series aligned on wall-clock seconds, the verdict judged again. Without "
            "threshold options the merged report is judged against the thresholds of the inputs, "
            "which must agree. Writes the HTML page beside the output."
        ),
    )
    merge.add_argument("reports", nargs="+", type=Path, metavar="REPORT.json")
    merge.add_argument("-o", "--output", required=True, type=Path, metavar="FILE.json", help="the merged report")
    merge.add_argument(
        "--self-contained",
        action="store_true",
        help="put plotly.js inside the HTML page instead of one shared plotly.min.js beside it",
    )
    add_verdict_options(merge, default_ratio=None)
    merge.set_defaults(func=_merge)


def _merge(args: argparse.Namespace) -> int:
    console = Console()
    err = Console(stderr=True)
    # ReportError, ThresholdError and a name that is not .json are ValueErrors: the CLI's one
    # boundary (switchsim/cli.py) answers them with one line and exit 2.
    json_path(args.output, "--output")
    report = merge_reports(args.reports, thresholds_from(args))
    args.report = args.output
    return finish(report, args, console, err, "switchsim report merge")
