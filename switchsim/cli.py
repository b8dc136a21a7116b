"""The `switchsim` command: a thin argparse front that hands each subcommand to its package.

Each subcommand group lives in its own module exposing ``register(subparsers)``; the parsers it
adds set ``func`` to a callable taking the parsed namespace and returning the exit status.

`main` is the CLI's boundary: whatever a subcommand raises becomes one stderr line
``switchsim <command>: error: ...`` and an exit status by the rule in `switchsim.errors`
(0 ok, 1 the run failed, 2 bad usage or configuration); no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import NoReturn

from hsm_sim.client import HsmAnswerError
from hsm_sim.errors import HsmError
from hsm_sim.transports.interface import HsmTransportError
from specs.errors import SpecError, WireError
from switch.config import ConfigError
from switch.store import StoreError
from switchsim.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError
from terminals_sim.scenario import ScenarioError

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

# Modules that add subcommands; each has register(subparsers) -> None.
_COMMAND_MODULES = (
    "switchsim.cmd_wire",
    "switchsim.cmd_demo",
    "switchsim.cmd_hsm",
    "switchsim.cmd_switch",
    "switchsim.cmd_trace",
    "switchsim.cmd_db",
    "switchsim.cmd_fleet",
    "switchsim.cmd_report",
    "switchsim.cmd_top",
    "switchsim.cmd_tls",
)

# Library errors that mean the input was wrong (a file, a value, a name) and those that mean
# the run itself failed; anything else is a bug, still reported in one line. A failed run is
# tried first: an HSM that answered an error code is one, although its error is an HsmError.
_BAD_INPUT: tuple[type[Exception], ...] = (
    ConfigError,
    SpecError,
    WireError,
    StoreError,
    ScenarioError,
    HsmError,
    ValueError,
)
_RUN_FAILED: tuple[type[Exception], ...] = (HsmAnswerError, HsmTransportError, OSError, sqlite3.Error)

_PROG_ATTR = "_switchsim_prog"  # the namespace attribute naming the subcommand that parsed
#: The namespace attribute holding the command line as given (``serve --workers`` starts each
#: worker with it, so every option of ``serve`` reaches the workers without being listed again).
ARGV_ATTR = "_switchsim_argv"


class _Parser(argparse.ArgumentParser):
    """argparse with two changes: an option a subcommand does not know is refused by that
    subcommand (its usage, not the top level's), and a value that fails its type check is one
    line (the command was typed right; its usage would only bury the reason)."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        if not hasattr(parsed, _PROG_ATTR):
            # The innermost subcommand parses first, so the name it sets is the one kept.
            setattr(parsed, _PROG_ATTR, self.prog)
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        cause = sys.exc_info()[1]
        if isinstance(cause, argparse.ArgumentError) and isinstance(
            cause.__context__, argparse.ArgumentTypeError | ValueError | TypeError
        ):
            self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")
        super().error(message)


def _version() -> str:
    try:
        return metadata.version("switchsim")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="switchsim",
        description="ISO 8583 acquiring-switch simulator: switch, payment HSM, terminal fleet.",
        epilog="Exit status: 0 ok, 1 the run failed, 2 bad usage or bad configuration.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setattr(args, ARGV_ATTR, tuple(sys.argv[1:] if argv is None else argv))
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: choose a command (switchsim -h lists them)", file=sys.stderr)
        return EXIT_USAGE
    prog: str = getattr(args, _PROG_ATTR, parser.prog)
    try:
        status = func(args)
        sys.stdout.flush()
        return status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`); point stdout at nothing so exit does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:
        if os.environ.get("SWITCHSIM_TRACEBACK"):
            raise
        status, text = explain(exc)
        print(f"{prog}: error: {text}", file=sys.stderr)
        return status


def explain(exc: Exception) -> tuple[int, str]:
    """The exit status for `exc` and the one line that tells the user about it."""
    text = _one_line(exc)
    if isinstance(exc, CliError):
        return exc.exit_status, text
    if isinstance(exc, _RUN_FAILED):
        return EXIT_FAILED, text
    if isinstance(exc, _BAD_INPUT):
        return EXIT_USAGE, text
    return EXIT_FAILED, (
        f"internal error ({type(exc).__name__}: {text}); this is a bug in switchsim, "
        "run again with SWITCHSIM_TRACEBACK=1 to see where"
    )


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        # "[Errno 2] No such file or directory: 'x'" reads better as "x: No such file or directory"
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
