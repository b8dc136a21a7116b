"""``switchsim top``: the live view (switchsim/top.py), imported only when it runs: Textual
takes a while to import and no other command needs it."""

from __future__ import annotations

import argparse
from typing import Any

from switchsim import argtypes
from switchsim.errors import EXIT_OK, UsageError

DEFAULT_INTERVAL = 1.0


def register(subparsers: Any) -> None:
    top = subparsers.add_parser(
        "top",
        help="live view of a switch, HSM or fleet from its --metrics-port endpoint",
        description="Read /metrics (and /refusals) every second and show TPS, response codes, p50/p99 latency, "
        "connections, terminals signed in, the HSM's health and the latest refusals. q quits.",
    )
    top.add_argument("--metrics", required=True, metavar="URL", help="e.g. http://127.0.0.1:9100 (the /metrics URL)")
    top.add_argument("--interval", type=argtypes.positive_float, default=DEFAULT_INTERVAL, metavar="SECONDS",
                     help=f"refresh period (default {DEFAULT_INTERVAL:g})")
    top.set_defaults(func=_top)


def _top(args: argparse.Namespace) -> int:
    from switchsim.top import TopApp

    try:
        app = TopApp(args.metrics, args.interval)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    app.run()
    return EXIT_OK
