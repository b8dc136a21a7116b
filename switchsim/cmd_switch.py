"""`switchsim serve | terminal | operator | audit | trace`: run and administer the switch."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from rich.console import Console
from rich.table import Table

from hsm_sim.errors import HsmError
from hsm_sim.facade import HsmTransport
from hsm_sim.transport import HsmTransportError, close_transport, transport_from_url
from specs.codec import codec_for
from specs.errors import WireError
from specs.message import split_subfields
from specs.observer import Observer
from switch import admin
from switch.app import (
    RunningSwitch,
    build_services,
    check_hsm,
    register_terminal,
    rule_sources,
    serve_switch,
    set_operator,
)
from switch.cards import add_card
from switch.config import SwitchConfig, load_config
from switch.context import Services
from switch.records import CardStatus, TerminalId
from switch.rules import RuleSet
from switch.sqlite_store import SqliteStore
from switch.store import StoreError
from switchsim import argtypes, logs
from switchsim.errors import EXIT_OK, RunFailed, UsageError
from switchsim.metrics_options import add_metrics_options, start_metrics


def register(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the switch",
        description="Run the switch until SIGINT/SIGTERM. Exit 0 on a clean stop, 1 when it cannot start "
        "(port in use, HSM unreachable), 2 on bad usage or configuration.",
    )
    _common(serve)
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=argtypes.port, help="listen port, 0 to 65535 (default 5800; 0 picks one)")
    serve.add_argument("--dialect", help="dialect (default cup-pos)")
    serve.add_argument("--rules", dest="rules_file", metavar="FILE", help="response rules file (TOML [[rules]])")
    add_metrics_options(serve)
    serve.set_defaults(func=_serve)

    term = sub.add_parser("terminal", help="register and manage terminals")
    tsub = term.add_subparsers(dest="terminal_command", required=True, metavar="ACTION")
    add = tsub.add_parser("add", help="register a terminal with its TMK; prints the TMK check value")
    _common(add)
    _ids(add)
    add.add_argument(
        "--tmk", required=True, type=argtypes.des_key, help="terminal master key, 32 hex digits (test keys)"
    )
    add.set_defaults(func=_terminal_add)
    lst = tsub.add_parser("list", help="list terminals")
    _common(lst)
    lst.set_defaults(func=_terminal_list)
    for name, enabled in (("disable", False), ("enable", True)):
        p = tsub.add_parser(name, help=f"{name} a terminal")
        _common(p)
        _ids(p)
        p.set_defaults(func=_terminal_enable, enabled=enabled)

    op = sub.add_parser("operator", help="manage a terminal's operators")
    osub = op.add_subparsers(dest="operator_command", required=True, metavar="ACTION")
    for name, helptext in (
        ("add", "add an operator (or set its password)"),
        ("passwd", "set an operator's password"),
    ):
        p = osub.add_parser(name, help=helptext)
        _common(p)
        _ids(p)
        p.add_argument("--id", required=True, type=argtypes.operator_id, help="operator id, two digits")
        p.add_argument(
            "--password", required=True, type=argtypes.digits(4, 12, "a password", secret=True), help="4 to 12 digits"
        )
        p.set_defaults(func=_operator_set)
    p = osub.add_parser("list", help="list a terminal's operators")
    _common(p)
    _ids(p)
    p.set_defaults(func=_operator_list)
    for name in ("disable", "enable", "unlock"):
        p = osub.add_parser(name, help=f"{name} an operator")
        _common(p)
        _ids(p)
        p.add_argument("--id", required=True, type=argtypes.operator_id, help="operator id, two digits")
        p.set_defaults(func=_operator_state, action=name)

    card = sub.add_parser("card", help="test cards the switch authorises against")
    csub = card.add_subparsers(dest="card_command", required=True, metavar="ACTION")
    cadd = csub.add_parser("add", help="add (or replace) a test card; the PIN goes straight to the HSM")
    _common(cadd)
    cadd.add_argument("--pan", required=True, type=argtypes.digits(12, 19, "a PAN", secret=True), help="12-19 digits")
    cadd.add_argument("--expiry", required=True, type=argtypes.digits(4, 4, "an expiry (YYMM)"), help="YYMM")
    cadd.add_argument("--pin", required=True, type=argtypes.digits(4, 12, "a PIN", secret=True), help="4 to 12 digits")
    cadd.add_argument("--balance", type=argtypes.amount, default=0, help="minor units (fen)")
    cadd.add_argument("--limit", type=argtypes.amount, default=0, help="per-transaction limit in fen; 0 = none")
    cadd.add_argument("--service-code", type=argtypes.digits(3, 3, "a service code"), default="201")
    cadd.add_argument("--blocked", action="store_true")
    cadd.set_defaults(func=_card_add)
    clist = csub.add_parser("list", help="list test cards (PANs masked 6+4)")
    _common(clist)
    clist.set_defaults(func=_card_list)

    aud = sub.add_parser("audit", help="show the audit trail")
    _common(aud)
    aud.add_argument("--terminal", type=argtypes.terminal_id, help="only this terminal id (field 41)")
    aud.add_argument("--since", type=argtypes.iso_time, help="local ISO time, e.g. 2026-11-22T10:00:00")
    aud.add_argument("--json", action="store_true")
    aud.set_defaults(func=_audit)

    tr = sub.add_parser("trace", help="show a terminal's journal: every message in and out, masked")
    _common(tr)
    tr.add_argument("--terminal", required=True, type=argtypes.terminal_id, help="terminal id (field 41)")
    tr.add_argument("--last", type=argtypes.positive_int, default=20, help="how many messages (default 20)")
    tr.set_defaults(func=_trace)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML config file (examples/switch.toml shows every key)")
    p.add_argument("--db", help="SQLite store (default switchsim.db)")
    p.add_argument("--hsm", help="inproc | tcp://HOST:PORT | udp://HOST:PORT")


def _ids(p: argparse.ArgumentParser) -> None:
    p.add_argument("--merchant", required=True, type=argtypes.merchant_id, help="merchant id (field 42), 15 characters")
    p.add_argument("--terminal", required=True, type=argtypes.terminal_id, help="terminal id (field 41), 8 characters")


def _config(args: argparse.Namespace) -> SwitchConfig:
    config = load_config(args.config) if getattr(args, "config", None) else SwitchConfig()
    overrides = {
        k: getattr(args, k)
        for k in ("db", "hsm", "host", "port", "dialect", "rules_file")
        if getattr(args, k, None) is not None
    }
    return replace(config, **overrides)


def _run(args: argparse.Namespace, action: Callable[[Services], Awaitable[int]], *, create_store: bool = False) -> int:
    """Open the store and HSM, run one admin action, close. Only commands that register
    something may create a store; the others find a missing one an error."""
    config = _config(args)
    codec_for(config.dialect)  # a bad dialect is refused before the store is touched
    transport = transport_from_url(config.hsm)
    store = SqliteStore(config.db, create=create_store)

    async def go() -> int:
        services = build_services(config, store, transport)
        try:
            return await action(services)
        finally:
            services.store.close()
            await close_transport(transport)

    return asyncio.run(go())


def _tid(args: argparse.Namespace) -> TerminalId:
    return TerminalId(args.merchant, args.terminal)


def _known_terminal(services: Services, args: argparse.Namespace) -> TerminalId:
    tid = _tid(args)
    if services.store.get_terminal(tid) is None:
        raise StoreError(f"no terminal {tid}")
    return tid


def _terminal_add(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        tid = _tid(args)
        record = await register_terminal(services, tid.merchant, tid.terminal, args.tmk)
        print(f"registered {tid}: TMK check value {record.tmk_kcv}; operators 00, 99, 01 created")
        return EXIT_OK

    return _run(args, action, create_store=True)


def _terminal_list(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        table = Table("merchant", "terminal", "enabled", "batch", "TMK check value")
        for t in services.store.list_terminals():
            table.add_row(t.id.merchant, t.id.terminal, "yes" if t.enabled else "no", t.batch, t.tmk_kcv)
        Console().print(table)
        return EXIT_OK

    return _run(args, action)


def _terminal_enable(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        services.store.set_terminal_enabled(_tid(args), args.enabled)
        print(f"terminal {_tid(args)} {'enabled' if args.enabled else 'disabled'}")
        return EXIT_OK

    return _run(args, action)


def _operator_set(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        tid = _known_terminal(services, args)
        if services.store.get_operator(tid, args.id) is None:
            await set_operator(services, tid, args.id, args.password)
        else:
            await admin.set_password(services, tid, args.id, args.password)
        print(f"operator {args.id} on {tid} set")
        return EXIT_OK

    return _run(args, action)


def _operator_list(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        tid = _known_terminal(services, args)
        table = Table("operator", "role", "enabled", "locked", "failures")
        for o in services.store.list_operators(tid):
            table.add_row(o.operator_id, o.role.value, str(o.enabled), str(o.locked), str(o.failures))
        Console().print(table)
        return EXIT_OK

    return _run(args, action)


_DONE = {"disable": "disabled", "enable": "enabled", "unlock": "unlocked"}


def _operator_state(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        tid = _tid(args)
        if args.action == "unlock":
            admin.unlock_operator(services, tid, args.id)
        else:
            admin.set_operator_enabled(services, tid, args.id, args.action == "enable")
        print(f"operator {args.id} on {tid}: {_DONE[args.action]}")
        return EXIT_OK

    return _run(args, action)


def _card_add(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        status = CardStatus.BLOCKED if args.blocked else CardStatus.ACTIVE
        card = await add_card(
            services, args.pan, args.expiry, args.pin, args.balance, args.limit, args.service_code, status
        )
        print(f"card {card.pan_masked} added: balance {card.balance / 100:.2f}, status {card.status.value}")
        return EXIT_OK

    return _run(args, action, create_store=True)


def _card_list(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        table = Table("PAN", "expiry", "balance", "limit", "status", "wrong PINs")
        for c in services.store.list_cards():
            limit = f"{c.limit / 100:.2f}" if c.limit else "-"
            table.add_row(c.pan_masked, c.expiry, f"{c.balance / 100:.2f}", limit, c.status.value, str(c.pin_failures))
        Console().print(table)
        return EXIT_OK

    return _run(args, action)


def _audit(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        records = services.store.list_audit(args.terminal, args.since)
        if args.json:
            for r in records:
                print(json.dumps(_audit_obj(r)))
            return EXIT_OK
        table = Table("time", "event", "merchant", "terminal", "operator", "remote", "result", "reason")
        for r in records:
            when = dt.datetime.fromtimestamp(r.time).isoformat(timespec="seconds")
            table.add_row(when, r.event.value, r.merchant, r.terminal, r.operator, r.remote, r.result, r.reason)
        Console(width=160).print(table)
        return EXIT_OK

    return _run(args, action)


def _audit_obj(r: Any) -> dict[str, Any]:
    return {
        "time": dt.datetime.fromtimestamp(r.time, dt.UTC).isoformat(),
        "event": r.event.value,
        "merchant": r.merchant,
        "terminal": r.terminal,
        "operator": r.operator,
        "remote": r.remote,
        "result": r.result,
        "reason": r.reason,
    }


def _trace(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        for e in services.store.list_journal(args.terminal, args.last):
            when = dt.datetime.fromtimestamp(e.time).isoformat(timespec="milliseconds")
            arrow = "<-" if e.direction == "in" else "->"
            head = f"{when} {arrow} {e.mti} stan={e.stan or '-'} 39={e.response_code or '-'} {e.remote}"
            print(head)
            if e.error:
                print(f"    error: {e.error}")
            print(f"    {_with_subfields(services, e.masked_json)}")
        return EXIT_OK

    return _run(args, action)


def _with_subfields(services: Services, masked_json: str) -> str:
    """The journal keeps masked field values; subfields (60.1 ...) are derived for display."""
    try:
        record = json.loads(masked_json)
        dialect = services.codec.dialect
        subfields: dict[str, str] = {}
        for key, value in record.get("fields", {}).items():
            spec = dialect.fields.get(int(key))
            if spec is not None and spec.subfields and "*" not in value:
                subfields.update(split_subfields(int(key), value, dialect))
    except (ValueError, AttributeError, WireError):
        return masked_json
    if subfields:
        record["subfields"] = subfields
    return json.dumps(record)


def _serve(args: argparse.Namespace) -> int:
    # Everything a user wrote is checked before anything starts: config, rules, dialect, HSM
    # address, store (exit 2); then the HSM is asked for its diagnostics and the port is bound
    # (exit 1 when either fails).
    config = _config(args)
    sources = rule_sources(config)
    codec_for(config.dialect)
    transport = transport_from_url(config.hsm)
    store = SqliteStore(config.db)
    logs.configure("info")
    metrics = start_metrics(args, "switch")

    async def main() -> int:
        try:
            running = await _start(config, store, transport, metrics.observer)
        except BaseException:
            store.close()
            await close_transport(transport)
            raise
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        # Printed once a SIGTERM would stop the switch cleanly: a script may send one at once.
        print(_startup_line(config, running, sources), flush=True)
        await stop.wait()
        await running.close()
        print("switch stopped", flush=True)
        return EXIT_OK

    try:
        return asyncio.run(main())
    finally:
        metrics.close()


async def _start(
    config: SwitchConfig, store: SqliteStore, transport: HsmTransport, observer: Observer
) -> RunningSwitch:
    try:
        await check_hsm(transport)
    except (HsmTransportError, HsmError) as exc:
        raise RunFailed(f"HSM {config.hsm} is not usable: {exc}") from None
    try:
        return await serve_switch(config, store, transport, observer)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {config.host}: {exc.strerror}") from None
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise RunFailed(f"cannot listen on {config.host} port {config.port}: {reason}") from None


_NO_CONFIG = SwitchConfig().source


def _startup_line(config: SwitchConfig, running: RunningSwitch, sources: tuple[tuple[str, RuleSet], ...]) -> str:
    """What the switch runs with, in one line a script can read (`demo` takes the port from it)."""
    store = running.services.store
    rules = sum(len(rule_set) for _, rule_set in sources)
    origin = ", ".join(f"{len(rule_set)} from {name}" for name, rule_set in sources)
    parts = [
        f"switch listening on {config.host}:{running.port}",
        f"dialect={config.dialect}",
        f"store={config.db}",
        f"hsm={config.hsm}",
        f"config={config.source if config.source != _NO_CONFIG else '-'}",
        f"terminals={len(store.list_terminals())}",
        f"cards={len(store.list_cards())}",
        f"rules={rules}" + (f" ({origin})" if origin else ""),
    ]
    return " ".join(parts)
