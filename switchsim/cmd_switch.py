"""`switchsim serve | terminal | operator | card | audit`: run and administer the switch (`trace`:
switchsim/cmd_trace.py)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import structlog
from rich.console import Console
from rich.table import Table

from hsm_sim.errors import HsmError
from hsm_sim.testkeys import DEFAULT_SEED, derive_imk_ac
from hsm_sim.transports.interface import HsmTransport, HsmTransportError
from hsm_sim.transports.url import transport_from_url
from specs.codec import codec_for
from specs.observer import Observer
from switch import admin, terminalview
from switch.app import (
    RunningSwitch,
    apply_declarations,
    build_services,
    check_hsm,
    register_terminal,
    rule_sources,
    serve_switch,
    set_operator,
)
from switch.cards import ChipKey, add_card, pin_locked, unlock_card
from switch.config import SwitchConfig, load_config
from switch.context import MAX_WORKERS, Services
from switch.records import CardStatus, TerminalId
from switch.ruleset import RuleSet
from switch.store import Store, StoreError
from switch.storeurl import StoreUrl, open_store, parse_store_url, require_current
from switch.terminalview import session_state
from switchsim import argtypes, logs
from switchsim.cli import ARGV_ATTR
from switchsim.errors import EXIT_OK, RunFailed, UsageError
from switchsim.journal_child import COMMAND as JOURNAL_COMMAND
from switchsim.metrics_options import add_metrics_options, shared_metrics, start_metrics
from switchsim.serve_workers import (
    WORKER_OPTION,
    Supervisor,
    check_workers,
    in_memory,
    listen_error,
    reserve_port,
    startup_errors_to_supervisor,
    stop_when_supervisor_goes,
)
from switchsim.tls_options import add_server_tls_options, server_tls


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
    serve.add_argument(
        "--strict",
        dest="strict_checks",
        action="store_true",
        default=None,
        help="refuse (39 = 30) what the field checks find, instead of a warning ([checks] strict)",
    )
    serve.add_argument(
        "--capture", metavar="FILE.pcap", help="write every frame in and out to a pcap file (masked unless --keep-raw)"
    )
    serve.add_argument(
        "--keep-raw",
        dest="keep_raw",
        action="store_true",
        default=None,
        help="test labs only: the journal and --capture keep frames unmasked (PAN, tracks, PIN blocks, keys)",
    )
    serve.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="the least severe log line written (default info)",
    )
    serve.add_argument(
        "--log-exchanges",
        choices=("on", "off"),
        help="one log line per approved exchange (default on; off for load runs: declines, refusals "
        "and errors are still logged)",
    )
    serve.add_argument(
        "--journal-process",
        choices=("auto", "on", "off"),
        default="auto",
        help="mask, format and write the journal in a process beside each switch process, off its loop; "
        "auto (the default): where a core is left for it, fewer workers than cores; off: in the loop "
        "(a :memory: store always is)",
    )
    serve.add_argument(
        "--workers",
        type=argtypes.positive_int,
        default=1,
        metavar="N",
        help=f"run N switch processes on one port, sharing the store (1 to {MAX_WORKERS}; Linux, SO_REUSEPORT; "
        "default 1: this process alone)",
    )
    # Set by the supervisor of --workers on each worker's command line (switchsim/serve_workers.py).
    serve.add_argument(WORKER_OPTION, dest="as_worker", type=int, default=0, help=argparse.SUPPRESS)
    add_metrics_options(serve)
    add_server_tls_options(serve)
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
    lst = tsub.add_parser("list", help="list terminals, with their session state")
    _common(lst)
    lst.add_argument("--merchant", type=argtypes.merchant_id, help="only this merchant id (field 42)")
    lst.set_defaults(func=_terminal_list)
    show = tsub.add_parser("show", help="a terminal's registration, session keys' check values, last refusals")
    _common(show)
    _ids(show)
    show.set_defaults(func=_terminal_show)
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
    cadd.add_argument(
        "--chip", action="store_true", help="a chip card: its ARQCs are verified and answered with 91 (docs/chip.md)"
    )
    cadd.add_argument(
        "--imk-ac",
        type=argtypes.double_key,
        help="the chip card's IMK-AC in clear, 32 hex digits; it goes straight to the HSM (default: derived from "
        "the fleet's seed, as the shared chip test cards' are)",
    )
    cadd.add_argument(
        "--psn", type=argtypes.digits(2, 2, "a PAN sequence number"), default="01", help="2 digits (default 01)"
    )
    cadd.set_defaults(func=_card_add)
    clist = csub.add_parser("list", help="list test cards (PANs masked 6+4)")
    _common(clist)
    clist.set_defaults(func=_card_list)
    cunlock = csub.add_parser("unlock", help="clear a card's wrong PINs (a locked card answers 75 until then)")
    _common(cunlock)
    cunlock.add_argument(
        "--pan", required=True, type=argtypes.digits(12, 19, "a PAN", secret=True), help="12-19 digits"
    )
    cunlock.set_defaults(func=_card_unlock)

    aud = sub.add_parser("audit", help="show the audit trail")
    _common(aud)
    aud.add_argument("--terminal", type=argtypes.terminal_id, help="only this terminal id (field 41)")
    aud.add_argument("--since", type=argtypes.iso_time, help="local ISO time, e.g. 2026-11-22T10:00:00")
    aud.add_argument("--json", action="store_true")
    aud.set_defaults(func=_audit)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML config file (examples/switch.toml shows every key)")
    p.add_argument(
        "--store",
        "--db",
        dest="db",
        metavar="URL",
        help="the store: a SQLite file (a path or sqlite:///ABS/PATH) or postgresql://USER@HOST:PORT/DB "
        "(default switchsim.db)",
    )
    p.add_argument("--hsm", help="inproc | tcp://HOST:PORT | udp://HOST:PORT")


def _ids(p: argparse.ArgumentParser) -> None:
    p.add_argument("--merchant", required=True, type=argtypes.merchant_id, help="merchant id (field 42), 15 characters")
    p.add_argument("--terminal", required=True, type=argtypes.terminal_id, help="terminal id (field 41), 8 characters")


def _config(args: argparse.Namespace) -> SwitchConfig:
    config = load_config(args.config) if getattr(args, "config", None) else SwitchConfig()
    overrides = {
        k: getattr(args, k)
        for k in ("db", "hsm", "host", "port", "dialect", "rules_file", "strict_checks", "keep_raw", "capture")
        if getattr(args, k, None) is not None
    }
    if getattr(args, "log_exchanges", None) is not None:
        overrides["log_exchanges"] = args.log_exchanges == "on"
    return replace(config, **overrides)


def _run(args: argparse.Namespace, action: Callable[[Services], Awaitable[int]], *, create_store: bool = False) -> int:
    """Open the store and HSM, run one admin action, close. Only commands that register
    something may create a store; the others find a missing one an error."""
    config = _config(args)
    codec_for(config.dialect)  # a bad dialect is refused before the store is touched
    parse_store_url(config.db)  # and so is a store URL that names no store
    transport = transport_from_url(config.hsm)

    async def go() -> int:
        try:
            store = await open_store(config.db, create=create_store)
        except BaseException:
            await transport.close()
            raise
        services = build_services(config, store, transport)
        try:
            return await action(services)
        finally:
            await services.store.close()
            await transport.close()

    return asyncio.run(go())


def _tid(args: argparse.Namespace) -> TerminalId:
    return TerminalId(args.merchant, args.terminal)


async def _known_terminal(services: Services, args: argparse.Namespace) -> TerminalId:
    tid = _tid(args)
    if await services.store.get_terminal(tid) is None:
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
        table = Table("merchant", "terminal", "enabled", "batch", "TMK check value", "session")
        now = services.clock()
        for t in await services.store.list_terminals():
            if args.merchant is not None and t.id.merchant != args.merchant:
                continue
            session = await services.store.get_session(t.id)
            state = session_state(session if session and session.key_generation == t.key_generation else None, now)
            table.add_row(t.id.merchant, t.id.terminal, "yes" if t.enabled else "no", t.batch, t.tmk_kcv, state)
        Console().print(table)
        return EXIT_OK

    return _run(args, action)


def _when(moment: float | None) -> str:
    return "-" if moment is None else dt.datetime.fromtimestamp(moment).isoformat(timespec="seconds")


def _terminal_show(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        view = await terminalview.show(services, _tid(args))
        t, s = view.terminal, view.session
        print(f"terminal {t.id}: {'enabled' if t.enabled else 'disabled'}, registration {t.key_generation}")
        print(f"  TMK check value   {t.tmk_kcv}")
        print(f"  batch             {t.batch}")
        if s is None:
            print("  session           signed off")
        else:
            state = "expired" if view.expired else "live"
            print(f"  session           {state}, signed in {_when(s.signed_in_at)} with 60.3 = {s.mode}")
            print(f"  key generation    {s.generation if s.generation is not None else '?'}")
            print(f"  PIK check value   {s.pik_check}")
            print(f"  MAK check value   {s.mak_check}")
            print(f"  TDK check value   {s.tdk_check or '- (no TDK in this key mode)'}")
            print(f"  operator          {s.operator or '- (none signed in)'}")
            print(f"  keys expire       {_when(s.expires_at)}")
        print(f"  last seen         {_when(view.last_seen)}")
        print(f"  last refusals     {len(view.refusals) or 'none'}")
        for e in view.refusals:
            print(f"    {_when(e.time)} {e.mti} stan={e.stan or '-'} 39={e.response_code} {e.reason}")
        return EXIT_OK

    return _run(args, action)


def _terminal_enable(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        await services.store.set_terminal_enabled(_tid(args), args.enabled)
        print(f"terminal {_tid(args)} {'enabled' if args.enabled else 'disabled'}")
        return EXIT_OK

    return _run(args, action)


def _operator_set(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        tid = await _known_terminal(services, args)
        if await services.store.get_operator(tid, args.id) is None:
            await set_operator(services, tid, args.id, args.password)
        else:
            await admin.set_password(services, tid, args.id, args.password)
        print(f"operator {args.id} on {tid} set")
        return EXIT_OK

    return _run(args, action)


def _operator_list(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        tid = await _known_terminal(services, args)
        table = Table("operator", "role", "enabled", "locked", "failures")
        for o in await services.store.list_operators(tid):
            table.add_row(o.operator_id, o.role.value, str(o.enabled), str(o.locked), str(o.failures))
        Console().print(table)
        return EXIT_OK

    return _run(args, action)


_DONE = {"disable": "disabled", "enable": "enabled", "unlock": "unlocked"}


def _operator_state(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        tid = _tid(args)
        if args.action == "unlock":
            await admin.unlock_operator(services, tid, args.id)
        else:
            await admin.set_operator_enabled(services, tid, args.id, args.action == "enable")
        print(f"operator {args.id} on {tid}: {_DONE[args.action]}")
        return EXIT_OK

    return _run(args, action)


def _card_add(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        status = CardStatus.BLOCKED if args.blocked else CardStatus.ACTIVE
        if args.imk_ac is not None and not args.chip:
            raise UsageError("--imk-ac goes with --chip")
        chip = ChipKey(args.imk_ac or derive_imk_ac(DEFAULT_SEED, args.pan), args.psn) if args.chip else None
        card = await add_card(
            services, args.pan, args.expiry, args.pin, args.balance, args.limit, args.service_code, status, chip=chip
        )
        kind = f", chip (PSN {card.psn}, IMK-AC kept under the LMK only)" if card.chip else ""
        print(f"card {card.pan_masked} added: balance {card.balance / 100:.2f}, status {card.status.value}{kind}")
        return EXIT_OK

    return _run(args, action, create_store=True)


def _card_list(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        table = Table("PAN", "expiry", "balance", "limit", "status", "PIN", "wrong PINs", "chip")
        for c in await services.store.list_cards():
            limit = f"{c.limit / 100:.2f}" if c.limit else "-"
            pin = "locked" if pin_locked(services, c) else "ok"
            chip = (f"PSN {c.psn}" + (f", ATC {c.atc:04X}" if c.atc >= 0 else "")) if c.chip else "-"
            balance = f"{c.balance / 100:.2f}"
            table.add_row(c.pan_masked, c.expiry, balance, limit, c.status.value, pin, str(c.pin_failures), chip)
        Console(width=140).print(table)
        return EXIT_OK

    return _run(args, action)


def _card_unlock(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        card = await unlock_card(services, args.pan)
        print(f"card {card.pan_masked}: PIN unlocked ({card.pin_failures} wrong PINs cleared)")
        return EXIT_OK

    return _run(args, action)


def _audit(args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        records = await services.store.list_audit(args.terminal, args.since)
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


def _serve(args: argparse.Namespace) -> int:
    # Everything a user wrote is checked before anything starts: config, rules, dialect, HSM
    # address, store (exit 2); then the HSM is asked for its diagnostics and the port is bound
    # (exit 1 when either fails).
    worker = args.as_worker  # 0, or this process is worker N of a supervisor (--workers)
    listening = startup_errors_to_supervisor() if worker else (lambda: None)
    config = replace(_config(args), tls=server_tls(args))
    sources = rule_sources(config)
    codec_for(config.dialect)
    store_url = parse_store_url(config.db)
    transport = transport_from_url(config.hsm)
    if not worker:
        check_workers(config, args.workers)
    logs.configure(args.log_level)
    if worker:
        structlog.contextvars.bind_contextvars(worker=worker)  # every log line names its worker
    if config.keep_raw and not worker:
        print(KEEP_RAW_WARNING, file=sys.stderr, flush=True)
    if args.workers > 1 and not worker:
        return _supervise(args, config, transport)
    # A worker counts for its supervisor, which serves the sum of all workers on the port.
    metrics = start_metrics(args, "switch", shard=bool(worker) and args.metrics_port is not None)

    async def main() -> int:
        store: Store | None = None
        try:
            # A worker's store is shared with the other workers: nothing it holds is cached.
            store = await open_store(config.db, shared=bool(worker))
            wanted = journal_process_wanted(args.journal_process, args.workers, _cores(), in_memory(config.db))
            journal = JOURNAL_COMMAND if wanted else None
            running = await _start(config, store, transport, metrics.observer, worker, journal, args.log_level)
        except BaseException:
            if store is not None:
                await store.close()
            await transport.close()
            raise
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        if worker:
            stop_when_supervisor_goes(loop, stop.set)
        # Printed once a SIGTERM would stop the switch cleanly: a script may send one at once.
        print(await _startup_line(config, store_url, running, sources), flush=True)
        listening()
        await stop.wait()
        await running.close()
        print("switch stopped", flush=True)
        return EXIT_OK

    try:
        return asyncio.run(main())
    finally:
        metrics.close()


def journal_process_wanted(choice: str, workers: int, cores: int, memory: bool) -> bool:
    """`serve --journal-process`: whether each switch process hands its journal to a process of
    its own (docs/store.md). It takes work off the loop onto a core the loop cannot use, so
    `auto` runs it only where one is left: with as many workers as cores, every core already
    runs a loop, and the process would only add the hand-over (on 2 cores, 0800s with 2 workers:
    10,689/s without it, 8,289/s with it, one run each of bench/workers.py). No other process can open a
    `:memory:` store."""
    if memory or choice == "off":
        return False
    return choice == "on" or workers < cores


def _cores() -> int:
    """The cores this process may run on (its affinity, where the system says)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


async def _start(
    config: SwitchConfig,
    store: Store,
    transport: HsmTransport,
    observer: Observer,
    worker: int = 0,
    journal: Sequence[str] | None = None,
    log_level: str = "info",
) -> RunningSwitch:
    await _check_hsm(config, transport)
    try:
        return await serve_switch(
            config, store, transport, observer, worker=worker, journal_command=journal, log_level=log_level
        )
    except OSError as exc:
        raise listen_error(config.host, config.port, exc) from None


async def _check_hsm(config: SwitchConfig, transport: HsmTransport) -> None:
    try:
        await check_hsm(transport)
    except (HsmTransportError, HsmError) as exc:
        raise RunFailed(f"HSM {config.hsm} is not usable: {exc}") from None


def _supervise(args: argparse.Namespace, config: SwitchConfig, transport: HsmTransport) -> int:
    """``serve --workers N``: the HSM checked and the config's declarations registered once,
    here; the port reserved; then the workers, each a ``serve`` of its own (switchsim/serve_workers.py)."""

    async def declare() -> None:
        store: Store | None = None
        try:
            await _check_hsm(config, transport)
            store = await open_store(config.db)
            await require_current(store, parse_store_url(config.db).shown)
            await apply_declarations(build_services(config, store, transport))
        finally:
            if store is not None:
                await store.close()  # before the workers open it
            await transport.close()

    asyncio.run(declare())
    reserved = reserve_port(config.host, config.port)
    try:
        port = int(reserved.getsockname()[1])
        with shared_metrics(args) as metrics:
            env = metrics.env(os.environ) if metrics is not None else dict(os.environ)
            on_exit = metrics.process_dead if metrics is not None else (lambda _pid: None)
            supervisor = Supervisor(getattr(args, ARGV_ATTR), args.workers, port, env, on_exit)
            asyncio.run(supervisor.run(lambda line: print(line, flush=True)))
    finally:
        reserved.close()
    return EXIT_OK


_NO_CONFIG = SwitchConfig().source
KEEP_RAW_WARNING = (
    "switchsim serve: warning: --keep-raw: the journal (and a --capture) keep every frame unmasked, "
    "PANs, tracks, PIN blocks and keys included; for a test lab only"
)


async def _startup_line(
    config: SwitchConfig, store_url: StoreUrl, running: RunningSwitch, sources: tuple[tuple[str, RuleSet], ...]
) -> str:
    """What the switch runs with, in one line a script can read (`demo` takes the port from it);
    the store's URL with any password masked."""
    store = running.services.store
    rules = sum(len(rule_set) for _, rule_set in sources)
    origin = ", ".join(f"{len(rule_set)} from {name}" for name, rule_set in sources)
    parts = [
        f"switch listening on {config.host}:{running.port}",
        f"dialect={config.dialect}",
        f"store={store_url.shown}",
        f"hsm={config.hsm}",
        f"config={config.source if config.source != _NO_CONFIG else '-'}",
        f"terminals={len(await store.list_terminals())}",
        f"cards={len(await store.list_cards())}",
        f"rules={rules}" + (f" ({origin})" if origin else ""),
    ]
    if config.strict_checks:  # said only when not the default, so the usual line stays as it was
        parts.append("checks=strict")
    if config.tls is not None:
        parts.append("tls=mutual" if config.tls.mutual else "tls=on")
    if config.keep_raw:
        parts.append("raw=kept")
    if config.capture:
        parts.append(f"capture={config.capture}")
    return " ".join(parts)
