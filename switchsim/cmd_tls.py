"""``switchsim tls make-test-ca DIR``: a test CA and certificates for TLS test set-ups
(switchsim/testca.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from switchsim import argtypes
from switchsim.errors import EXIT_OK, EXIT_USAGE, UsageError
from switchsim.testca import DEFAULT_DAYS, DEFAULT_NAMES, make_test_ca


def register(subparsers: Any) -> None:
    tls = subparsers.add_parser("tls", help="TLS test material", description="TLS test material.")
    sub = tls.add_subparsers(dest="tls_command", metavar="ACTION")
    tls.set_defaults(func=lambda _args: _usage(tls))
    make = sub.add_parser(
        "make-test-ca",
        help="write a test CA, a server and a client certificate into DIR",
        description="Write ca.pem, server.pem, server.key, client.pem and client.key into DIR (made if missing): "
        "a throw-away CA for test set-ups, never a production PKI. The server certificate names "
        f"{', '.join(DEFAULT_NAMES)} and every --name.",
    )
    make.add_argument("directory", type=Path, metavar="DIR")
    make.add_argument(
        "--name",
        action="append",
        default=[],
        metavar="HOST",
        help="another IP address or DNS name the server certificate names (repeatable)",
    )
    make.add_argument(
        "--days", type=argtypes.positive_int, default=DEFAULT_DAYS, help=f"validity (default {DEFAULT_DAYS})"
    )
    make.add_argument("--force", action="store_true", help="replace the files if DIR has them already")
    make.set_defaults(func=_make_test_ca)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: choose an action: make-test-ca", file=sys.stderr)
    return EXIT_USAGE


def _make_test_ca(args: argparse.Namespace) -> int:
    try:
        made = make_test_ca(args.directory, args.name, days=args.days, force=args.force)
    except FileExistsError as exc:
        raise UsageError(str(exc)) from None
    d = made.directory
    print(f"test CA written to {d} (valid until {made.not_after:%Y-%m-%d}); the server certificate names "
          f"{', '.join(made.names)}")
    print(f"  servers:  --tls-cert {d / 'server.pem'} --tls-key {d / 'server.key'}"
          f"  [--tls-client-ca {d / 'ca.pem'}]")
    print(f"  clients:  --tls-ca {d / 'ca.pem'}  [--tls-cert {d / 'client.pem'} --tls-key {d / 'client.key'}]")
    return EXIT_OK
