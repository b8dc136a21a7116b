"""The CLI's exit-status rule and the two errors a subcommand raises to use it.

0   the command did what was asked;
1   the run failed: a port in use, an HSM unreachable, a host that failed its checks, an HSM
    that answered an error code;
2   bad usage or bad configuration: a mistyped option, a value out of range, a config, rules
    or scenario file with a mistake, a store that is missing or is not a store.

`switchsim.cli.main` is the one place exceptions become a status and one stderr line
(`switchsim <command>: error: ...`); it also knows which library errors mean which status, so a
subcommand may let a `ConfigError` or a `StoreError` through and need not catch it by name.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A failure the user is told about in one line; `exit_status` is what the process exits with."""

    exit_status = EXIT_FAILED


class UsageError(CliError):
    """Bad usage or bad configuration (exit 2)."""

    exit_status = EXIT_USAGE


class RunFailed(CliError):
    """The command was right but the run failed (exit 1)."""

    exit_status = EXIT_FAILED
