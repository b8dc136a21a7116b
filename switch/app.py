"""Assembling a switch: store, HSM transport, engine and server from one `SwitchConfig`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from hsm_sim.client import Diagnostics, HsmClient
from hsm_sim.testkeys import DEFAULT_SEED, derive_imk_ac
from hsm_sim.transports.interface import HsmTransport
from hsm_sim.transports.observed import ObservedTransport
from hsm_sim.transports.url import transport_from_url
from specs.codec import codec_for
from specs.observer import NULL_OBSERVER, Observer
from switch import icparams
from switch.capture import Capture
from switch.cards import ChipKey, add_card
from switch.config import ConfigError, SwitchConfig
from switch.context import Services
from switch.engine import SwitchEngine
from switch.journalproc import JournalProcess
from switch.keyservice import KeyService
from switch.records import (
    DEFAULT_OPERATORS,
    AuditEvent,
    AuditRecord,
    CardStatus,
    Operator,
    Role,
    Terminal,
    TerminalId,
)
from switch.rulefile import load_rules, parse_rules
from switch.ruleset import RuleSet
from switch.server import SwitchServer
from switch.signedin import SignedInCount
from switch.sqlite_store import SqliteStore
from switch.store import Store
from switch.storeurl import open_store, parse_store_url, require_current


def build_services(
    config: SwitchConfig,
    store: Store,
    transport: HsmTransport | None = None,
    observer: Observer = NULL_OBSERVER,
    *,
    worker: int = 0,
) -> Services:
    """The services of a switch over ``store`` (open one with switch.storeurl.open_store)."""
    if isinstance(store, SqliteStore):
        store.observer = observer
    return Services(
        rules=rule_set(config),
        codec=codec_for(config.dialect),
        store=store,
        keys=KeyService(HsmClient(_observed(transport or transport_from_url(config.hsm), observer))),
        config=config,
        observer=observer,
        ic=icparams.merged(config.capks, config.aids, config.blacklist),
        worker=worker,
    )


def rule_sources(config: SwitchConfig) -> tuple[tuple[str, RuleSet], ...]:
    """The response rules `config` names, by where each set comes from: the config's own
    `[[rules]]` first, then the rules file (`--rules FILE`). Raises `ConfigError` naming the
    file, the rule and the key; a rule name used in both files is a mistake too."""
    sources: list[tuple[str, RuleSet]] = []
    if config.rules:
        sources.append((config.source, parse_rules(list(config.rules), config.source)))
    if config.rules_file:
        sources.append((config.rules_file, load_rules(config.rules_file)))
    if len(sources) == 2:
        first = {rule.name for rule in sources[0][1].rules}
        for index, rule in enumerate(sources[1][1].rules):
            if rule.name in first:
                where, problem = f"rules[{index}].name", f"{rule.name!r} is already in {config.source}"
                raise ConfigError(config.rules_file or "", where, problem)
    return tuple(sources)


def rule_set(config: SwitchConfig) -> RuleSet | None:
    """Every rule of `rule_sources`, in evaluation order; None when there is none."""
    rules = tuple(rule for _, rules in rule_sources(config) for rule in rules.rules)
    return RuleSet(rules) if rules else None


async def check_hsm(transport: HsmTransport) -> Diagnostics:
    """Ask the HSM for its diagnostics (NC) before anything depends on it: raises
    `HsmTransportError` when it cannot be reached and `HsmAnswerError` when it answers an error."""
    return await HsmClient(transport).diagnostics()


async def register_terminal(services: Services, merchant: str, terminal: str, tmk: bytes) -> Terminal:
    """Register (or re-register) a terminal: the clear TMK goes straight to the HSM and only
    its LMK-encrypted form is kept. Re-registration ends any session and resets operators."""
    tid = TerminalId(merchant, terminal)
    tmk_lmk, kcv = await services.keys.import_clear_key("002", tmk)
    previous = await services.store.get_terminal(tid)
    record = Terminal(
        id=tid,
        tmk_lmk=tmk_lmk,
        tmk_kcv=kcv,
        enabled=True,
        batch=previous.batch if previous else "000001",
        key_generation=previous.key_generation + 1 if previous else 0,
    )
    await services.store.put_terminal(record)
    await services.end_session(tid)
    for operator_id, password in DEFAULT_OPERATORS:
        await set_operator(services, tid, operator_id, password)
    await services.store.add_audit(
        AuditRecord(time.time(), AuditEvent.TERMINAL_REGISTERED, merchant, terminal, "", "cli", "ok", f"kcv {kcv}")
    )
    return record


async def set_operator(services: Services, tid: TerminalId, operator_id: str, password: str) -> Operator:
    pin_lmk = await services.keys.encrypt_password(password)
    operator = Operator(tid, operator_id, Role.for_operator(operator_id), pin_lmk)
    await services.store.put_operator(operator)
    await services.store.delete_operator_failures(tid, operator_id)  # counted while the id was unknown
    return operator


async def apply_declarations(services: Services) -> None:
    """Register what the config file declares, so a team's set-up lives in its own repository."""
    for declared in services.config.terminals:
        await register_terminal(services, declared.merchant, declared.terminal, declared.tmk)
    for op in services.config.operators:
        await set_operator(services, TerminalId(op.merchant, op.terminal), op.operator_id, op.password)
    for card in services.config.cards:
        chip = None
        if card.chip:
            chip = ChipKey(card.imk_ac or derive_imk_ac(DEFAULT_SEED, card.pan), card.psn)
        await add_card(
            services,
            card.pan,
            card.expiry,
            card.pin,
            card.balance,
            card.limit,
            card.service_code,
            CardStatus(card.status),
            chip=chip,
        )


@dataclass
class RunningSwitch:
    services: Services
    server: SwitchServer
    port: int
    transport: HsmTransport
    signed_in: SignedInCount | None = None  # only with an observer

    async def close(self, timeout: float = 5.0) -> None:
        if self.signed_in is not None:
            await self.signed_in.close()
        await self.server.close(timeout)
        if self.server.capture is not None:
            self.server.capture.close()
        await self.transport.close()
        await self.services.journal.close()
        await self.services.store.close()


async def serve_switch(
    config: SwitchConfig,
    store: Store | None = None,
    transport: HsmTransport | None = None,
    observer: Observer = NULL_OBSERVER,
    *,
    worker: int = 0,
    journal_command: Sequence[str] | None = None,
    log_level: str = "info",
) -> RunningSwitch:
    """Start a switch on ``config.host:config.port`` (0 picks a free port) over ``store`` (by
    default the one ``config.db`` names); ``observer`` hears every exchange, connection, HSM
    command, store commit, rule fired and unreadable frame. A store whose schema is not this
    switchsim's is refused (`switchsim db upgrade` moves it).

    ``worker`` N (1-9) is one worker of `serve --workers` (switchsim/serve_workers.py): it shares
    the port with the others (SO_REUSEPORT), names itself in its RRNs, and leaves the config's
    declarations alone, which its supervisor applied once before starting the workers (a worker
    re-registering a terminal as it restarts would end that terminal's session).

    ``journal_command``: the journal is kept by a process that command starts (`serve` passes
    switchsim/journal_child.py; switch/journalproc.py), which opens ``config.db`` itself; without
    it, or when it cannot start, the switch keeps its journal in its own loop."""
    tls = config.tls.context() if config.tls is not None else None  # a bad file: before anything opens
    hsm = transport if transport is not None else transport_from_url(config.hsm)
    if store is None:
        store = await open_store(config.db, shared=bool(worker))
    await require_current(store, parse_store_url(config.db).shown)
    services = build_services(config, store, hsm, observer, worker=worker)
    await services.resume_rrns()
    if journal_command is not None:
        journal = await JournalProcess.start(
            journal_command,
            store_url=config.db,
            dialect=config.dialect,
            keep_raw=config.keep_raw,
            log_level=log_level,
            fallback=services.journal,
            observer=observer,
        )
        if journal is not None:
            services.journal = journal
    if not worker:
        await apply_declarations(services)
    server = SwitchServer(
        SwitchEngine(services),
        idle_timeout=config.idle_timeout,
        frame_timeout=config.frame_timeout,
        max_connections=config.max_connections,
        max_pipeline=config.max_pipeline,
        capture=Capture(config.capture, services.codec, keep_raw=config.keep_raw) if config.capture else None,
        observer=observer,
        reuse_port=worker > 0,
        tls=tls,
    )
    try:
        port = await server.start(config.host, config.port)
    except BaseException:
        await services.journal.close()
        raise
    counting = None if observer is NULL_OBSERVER else SignedInCount(store, observer, services.clock)
    return RunningSwitch(services, server, port, hsm, counting)


def _observed(transport: HsmTransport, observer: Observer) -> HsmTransport:
    """The HSM transport, timed command by command when someone listens (`serve --metrics-port`)."""
    return transport if observer is NULL_OBSERVER else ObservedTransport(transport, observer)
