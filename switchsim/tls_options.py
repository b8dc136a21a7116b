"""The TLS options: ``--tls-cert``, ``--tls-key``, ``--tls-client-ca`` for the servers (``serve``,
``hsm serve``) and ``--tls``, ``--tls-ca``, ``--tls-cert``, ``--tls-key`` for the clients
(``fleet``, ``conformance``), turned into specs/tls.py's options.

The files are read here, when the command line is, so a missing or unusable one is refused
(exit 2, naming the file and why) before anything is opened, started or written.
"""

from __future__ import annotations

import argparse

from specs.tls import ClientTls, ServerTls
from switchsim.errors import UsageError


def add_server_tls_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("TLS (specs/tls.py: TLS 1.2 or later)")
    group.add_argument(
        "--tls-cert", metavar="FILE", help="listen over TLS with this PEM certificate (intermediates after it)"
    )
    group.add_argument(
        "--tls-key", metavar="FILE", help="its PEM private key, unencrypted (default: in the --tls-cert file)"
    )
    group.add_argument(
        "--tls-client-ca",
        metavar="FILE",
        help="mutual TLS: every client must show a certificate this CA signed; one without is refused",
    )


def server_tls(args: argparse.Namespace) -> ServerTls | None:
    """The server's TLS from its options, its files checked; None without ``--tls-cert``."""
    if args.tls_cert is None:
        given = [name for name, value in (("--tls-key", args.tls_key), ("--tls-client-ca", args.tls_client_ca))
                 if value is not None]
        if given:
            raise UsageError(f"{' and '.join(given)} {'needs' if len(given) == 1 else 'need'} --tls-cert")
        return None
    tls = ServerTls(cert=args.tls_cert, key=args.tls_key, client_ca=args.tls_client_ca)
    tls.context()
    return tls


def add_client_tls_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("TLS (specs/tls.py: TLS 1.2 or later; the host's certificate and name verified)")
    group.add_argument("--tls", action="store_true", help="connect over TLS (implied by the options below)")
    group.add_argument(
        "--tls-ca",
        metavar="FILE",
        help="the CA the host's certificate must chain to (default: the system's trust store)",
    )
    group.add_argument(
        "--tls-cert", metavar="FILE", help="the PEM certificate to show a host that asks for one (mutual TLS)"
    )
    group.add_argument(
        "--tls-key", metavar="FILE", help="its PEM private key, unencrypted (default: in the --tls-cert file)"
    )


def client_tls(args: argparse.Namespace) -> ClientTls | None:
    """The client's TLS from its options, its files checked; None when TLS is off."""
    if not (args.tls or args.tls_ca or args.tls_cert or args.tls_key):
        return None
    if args.tls_key is not None and args.tls_cert is None:
        raise UsageError("--tls-key needs --tls-cert")
    tls = ClientTls(ca=args.tls_ca, cert=args.tls_cert, key=args.tls_key)
    tls.context()
    return tls


def client_tls_argv(args: argparse.Namespace) -> list[str]:
    """The client options again, for a child process that runs the same command (fleet --processes)."""
    if not (args.tls or args.tls_ca or args.tls_cert or args.tls_key):
        return []
    argv = ["--tls"]
    for option, value in (("--tls-ca", args.tls_ca), ("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if value is not None:
            argv += [option, value]
    return argv
