"""``switchsim hsm``: run the software HSM, send it one host command, print its reference."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from hsm_sim.client import Answer, HsmClient
from hsm_sim.errors import ErrorCode, HsmError
from hsm_sim.hostframe import DEFAULT_HEADER_LENGTH, check_header_length
from hsm_sim.lmk import Lmk
from hsm_sim.server import DEFAULT_PORT, HsmServerConfig, serve_hsm
from hsm_sim.transports.interface import DEFAULT_TIMEOUT, HsmTransportError
from hsm_sim.transports.url import transport_from_url
from specs.observer import Observer
from switchsim import argtypes, logs
from switchsim.errors import EXIT_OK, EXIT_USAGE, RunFailed, UsageError
from switchsim.metrics_options import add_metrics_options, start_metrics
from switchsim.tls_options import add_server_tls_options, server_tls


def register(subparsers: Any) -> None:
    hsm = subparsers.add_parser(
        "hsm",
        help="software payment HSM (payShield-style host commands)",
        description="Run the software HSM, send it a host command, or print its reference.",
    )
    sub = hsm.add_subparsers(dest="hsm_command", metavar="ACTION")
    hsm.set_defaults(func=lambda _args: _usage(hsm, "choose an action: serve, send, reference"))

    serve = sub.add_parser("serve", help="listen for host commands until SIGINT/SIGTERM")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port",
        type=argtypes.port,
        default=DEFAULT_PORT,
        help=f"TCP port, 0 for any free one (default {DEFAULT_PORT})",
    )
    serve.add_argument(
        "--udp-port",
        type=argtypes.port,
        default=None,
        metavar="PORT",
        help="also answer host commands over UDP on this port (not with TLS: UDP has none)",
    )
    serve.add_argument(
        "--header-length",
        type=_header_length,
        default=DEFAULT_HEADER_LENGTH,
        metavar="N",
        help=f"message header length echoed back (default {DEFAULT_HEADER_LENGTH})",
    )
    serve.add_argument("--lmk", metavar="FILE", help="LMK set (TOML or JSON); default: the public Thales test LMK")
    serve.add_argument(
        "--test-mode", action="store_true", help="enable test-only commands (such as NG, which returns a clear PIN)"
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="log level on stderr; debug logs every command (default info)",
    )
    add_metrics_options(serve)
    add_server_tls_options(serve)
    serve.set_defaults(func=_serve)

    send = sub.add_parser("send", help="send one host command and print the answer")
    send.add_argument(
        "--to",
        default=f"tcp://127.0.0.1:{DEFAULT_PORT}",
        metavar="URL",
        help="tcp://HOST:PORT, udp://HOST:PORT, tls://HOST:PORT[?ca=FILE&cert=FILE&key=FILE] or inproc "
        f"(default tcp://127.0.0.1:{DEFAULT_PORT})",
    )
    send.add_argument(
        "--header-length",
        type=_header_length,
        default=DEFAULT_HEADER_LENGTH,
        metavar="N",
        help=f"message header length (default {DEFAULT_HEADER_LENGTH})",
    )
    send.add_argument(
        "--timeout",
        type=argtypes.positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds to wait for the answer (default {DEFAULT_TIMEOUT:g})",
    )
    send.add_argument("command", metavar="COMMAND", help="the host command after the header, e.g. NC or BU...")
    send.set_defaults(func=_send)

    reference = sub.add_parser("reference", help="print the host-command reference")
    reference.set_defaults(func=_reference)


def _header_length(text: str) -> int:
    try:
        return check_header_length(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _usage(parser: argparse.ArgumentParser, message: str) -> int:
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


# --- serve --------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    lmk: Lmk | None = None
    if args.lmk:
        try:
            lmk = Lmk.load(args.lmk)
        except HsmError as exc:
            raise UsageError(exc.reason) from None
    config = HsmServerConfig(
        host=args.host,
        port=args.port,
        udp_port=args.udp_port,
        header_length=args.header_length,
        lmk=lmk,
        test_mode=args.test_mode,
        tls=server_tls(args),
    )
    logs.configure(args.log_level)
    metrics = start_metrics(args, "hsm")
    try:
        return asyncio.run(_serve_until_signal(config, metrics.observer))
    finally:
        metrics.close()


async def _serve_until_signal(config: HsmServerConfig, observer: Observer) -> int:
    try:
        hsm = await serve_hsm(config, observer=observer)
    except OSError as exc:
        where = f"{config.host} port {config.port}"
        if config.udp_port is not None:
            where += f" (UDP {config.udp_port})"
        raise RunFailed(f"cannot listen on {where}: {exc.strerror or exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"HSM listening on {hsm.tcp_url}", flush=True)
    if hsm.udp_url is not None:
        print(f"HSM listening on {hsm.udp_url}", flush=True)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await hsm.close()
    print("HSM stopped", flush=True)
    return EXIT_OK


# --- send ---------------------------------------------------------------------------------


def _send(args: argparse.Namespace) -> int:
    try:
        message = args.command.encode("ascii")
    except UnicodeEncodeError:
        raise UsageError("COMMAND must be ASCII text") from None
    if len(message) < 2 or not message[:2].isalnum():
        raise UsageError("COMMAND needs at least a 2-character command code (letters and digits)")
    try:
        transport = transport_from_url(args.to, header_length=args.header_length, pool_size=1, timeout=args.timeout)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    logs.configure("warning")

    async def ask() -> Answer:
        client = HsmClient(transport)
        try:
            return await client.send(message)
        finally:
            await client.close()

    try:
        parts = asyncio.run(ask())
    except HsmTransportError as exc:
        raise RunFailed(str(exc)) from None
    print(f"response code  {parts.response_code}")
    print(f"error code     {parts.error_code}  {parts.error_description}")
    print(f"fields         {_printable(parts.fields)}")
    if parts.error_code != ErrorCode.NO_ERROR:
        # The answer is printed in full above; the status tells a script the command failed.
        raise RunFailed(f"the HSM answered error code {parts.error_code} ({parts.error_description})")
    return EXIT_OK


def _printable(data: bytes) -> str:
    """Printable ASCII as is, anything else as \\xNN, so a trailer or binary field is visible."""
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02X}" for b in data)


# --- reference ----------------------------------------------------------------------------


def _reference(_args: argparse.Namespace) -> int:
    from hsm_sim.reference import render_reference  # only this action needs the renderer

    text = render_reference()
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK
