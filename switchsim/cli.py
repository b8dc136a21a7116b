"""The `switchsim` command: a thin argparse front that hands each subcommand to its package.

Each subcommand group lives in its own module exposing ``register(subparsers)``; the parsers it
adds set ``func`` to a callable taking the parsed namespace and returning the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# Modules that add subcommands; each has register(subparsers) -> None.
_COMMAND_MODULES = (
    "switchsim.cmd_wire",
    "switchsim.cmd_demo",
    "switchsim.cmd_hsm",
    "switchsim.cmd_switch",
    "switchsim.cmd_fleet",
    "switchsim.cmd_report",
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchsim",
        description="ISO 8583 acquiring-switch simulator: switch, payment HSM, terminal fleet.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
