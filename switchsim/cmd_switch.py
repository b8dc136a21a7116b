"""`switchsim serve | terminal | operator | audit | trace`: run and administer the switch."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from rich.console import Console
from rich.table import Table

from specs.errors import SpecError, WireError
from specs.message import split_subfields
from switch import admin
from switch.app import build_services, register_terminal, serve_switch, set_operator
from switch.cards import add_card
from switch.config import ConfigError, SwitchConfig, load_config
from switch.context import Services
from switch.keyservice import HsmFailure
from switch.records import CardStatus, TerminalId
from switch.store import StoreError
from switchsim import logs

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the switch")
    _common(serve)
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 5800; 0 picks one)")
    serve.add_argument("--dialect", help="dialect (default cup-pos)")
    serve.add_argument("--rules", dest="rules_file", help="response rules file (TOML [[rules]])")
    serve.set_defaults(func=_serve)

    term = sub.add_parser("terminal", help="register and manage terminals")
    tsub = term.add_subparsers(dest="terminal_command", required=True)
    add = tsub.add_parser("add", help="register a terminal with its TMK; prints the TMK check value")
    _common(add)
    _ids(add)
    add.add_argument("--tmk", required=True, help="terminal master key, 32 hex digits (test keys)")
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
    osub = op.add_subparsers(dest="operator_command", required=True)
    for name, helptext in (
        ("add", "add an operator (or set its password)"),
        ("passwd", "set an operator's password"),
    ):
        p = osub.add_parser(name, help=helptext)
        _common(p)
        _ids(p)
        p.add_argument("--id", required=True, help="operator id, two digits")
        p.add_argument("--password", required=True, help="4 to 12 digits")
        p.set_defaults(func=_operator_set)
    p = osub.add_parser("list", help="list a terminal's operators")
    _common(p)
    _ids(p)
    p.set_defaults(func=_operator_list)
    for name in ("disable", "enable", "unlock"):
        p = osub.add_parser(name, help=f"{name} an operator")
        _common(p)
        _ids(p)
        p.add_argument("--id", required=True)
        p.set_defaults(func=_operator_state, action=name)

    card = sub.add_parser("card", help="test cards the switch authorises against")
    csub = card.add_subparsers(dest="card_command", required=True)
    cadd = csub.add_parser("add", help="add (or replace) a test card; the PIN goes straight to the HSM")
    _common(cadd)
    cadd.add_argument("--pan", required=True)
    cadd.add_argument("--expiry", required=True, help="YYMM")
    cadd.add_argument("--pin", required=True, help="4 to 12 digits")
    cadd.add_argument("--balance", type=int, default=0, help="minor units (fen)")
    cadd.add_argument("--limit", type=int, default=0, help="per-transaction limit in fen; 0 = none")
    cadd.add_argument("--service-code", default="201")
    cadd.add_argument("--blocked", action="store_true")
    cadd.set_defaults(func=_card_add)
    clist = csub.add_parser("list", help="list test cards (PANs masked 6+4)")
    _common(clist)
    clist.set_defaults(func=_card_list)

    aud = sub.add_parser("audit", help="show the audit trail")
    _common(aud)
    aud.add_argument("--terminal")
    aud.add_argument("--since", help="ISO time, e.g. 2026-11-22T10:00:00")
    aud.add_argument("--json", action="store_true")
    aud.set_defaults(func=_audit)

    tr = sub.add_parser("trace", help="show a terminal's journal: every message in and out, masked")
    _common(tr)
    tr.add_argument("--terminal", required=True)
    tr.add_argument("--last", type=int, default=20)
    tr.set_defaults(func=_trace)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML config file")
    p.add_argument("--db", help="SQLite store (default switchsim.db)")
    p.add_argument("--hsm", help="inproc | tcp://HOST:PORT | udp://HOST:PORT")


def _ids(p: argparse.ArgumentParser) -> None:
    p.add_argument("--merchant", required=True, help="merchant id (field 42), 15 characters")
    p.add_argument("--terminal", required=True, help="terminal id (field 41), 8 characters")


def _config(args: argparse.Namespace) -> SwitchConfig:
    config = load_config(args.config) if getattr(args, "config", None) else SwitchConfig()
    overrides = {
        k: getattr(args, k) for k in ("db", "hsm", "host", "port", "dialect") if getattr(args, k, None) is not None
    }
    return replace(config, **overrides)


def _run(args: argparse.Namespace, action: Callable[[Services], Awaitable[int]]) -> int:
    """Open the store and HSM, run one admin action, close; every expected failure exits 2."""

    async def go() -> int:
        services = build_services(_config(args))
        try:
            return await action(services)
        finally:
            services.store.close()

    try:
        return asyncio.run(go())
    except (ConfigError, SpecError, StoreError, HsmFailure, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _tid(args: argparse.Namespace) -> TerminalId:
    if len(args.merchant) != 15 or len(args.terminal) != 8:
        raise ValueError("merchant ids are 15 characters and terminal ids 8")
    return TerminalId(args.merchant, args.terminal)


def _terminal_add(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        tid = _tid(args)
        try:
            tmk = bytes.fromhex(args.tmk)
        except ValueError:
            tmk = b""
        if len(tmk) not in (8, 16, 24):
            raise ValueError("--tmk must be 16, 32 or 48 hex digits")
        record = await register_terminal(services, tid.merchant, tid.terminal, tmk)
        print(f"registered {tid}: TMK check value {record.tmk_kcv}; operators 00, 99, 01 created")
        return EXIT_OK

    return _run(args, action)


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
        tid = _tid(args)
        if services.store.get_terminal(tid) is None:
            raise StoreError(f"no terminal {tid}")
        if not (len(args.id) == 2 and args.id.isdigit()):
            raise ValueError("--id is two digits")
        if not (args.password.isdigit() and 4 <= len(args.password) <= 12):
            raise ValueError("--password is 4 to 12 digits")
        if services.store.get_operator(tid, args.id) is None:
            await set_operator(services, tid, args.id, args.password)
        else:
            await admin.set_password(services, tid, args.id, args.password)
        print(f"operator {args.id} on {tid} set")
        return EXIT_OK

    return _run(args, action)


def _operator_list(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        table = Table("operator", "role", "enabled", "locked", "failures")
        for o in services.store.list_operators(_tid(args)):
            table.add_row(o.operator_id, o.role.value, str(o.enabled), str(o.locked), str(o.failures))
        Console().print(table)
        return EXIT_OK

    return _run(args, action)


def _operator_state(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        tid = _tid(args)
        if args.action == "unlock":
            admin.unlock_operator(services, tid, args.id)
        else:
            admin.set_operator_enabled(services, tid, args.id, args.action == "enable")
        print(f"operator {args.id} on {tid}: {args.action}d")
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

    return _run(args, action)


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
        since = dt.datetime.fromisoformat(args.since).timestamp() if args.since else None
        records = services.store.list_audit(args.terminal, since)
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
    try:
        config = _config(args)
    except (ConfigError, SpecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.configure("info")

    async def main() -> int:
        running = await serve_switch(config)
        print(
            f"switch listening on {config.host}:{running.port} dialect={config.dialect} hsm={config.hsm}",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await running.close()
        print("switch stopped", flush=True)
        return EXIT_OK

    try:
        return asyncio.run(main())
    except (ConfigError, SpecError, StoreError, HsmFailure, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
