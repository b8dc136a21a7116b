"""An in-memory pair: the virtual terminal (terminals_sim) against the switch engine, no sockets.

Every frame the terminal builds goes through the switch's framer into `SwitchEngine.handle`
(an in-process HSM, a SQLite store in a temporary file), and the engine's answer back to the
terminal, which judges it (answer MTI, echoed fields, MAC, check values). Both sides read the
same message catalogue, one to build and judge, the other to route and answer, so a kind they
disagree on fails here in milliseconds. For sockets, see tests/terminals_sim/test_switch_e2e.py.

    async with open_pair(tmp_path / "switch.db") as pair:
        assert (await pair.step(Kind.SIGNIN)).ok
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.testkeys import DEFAULT_SEED, derive_imk_ac
from hsm_sim.transports.inproc import InProcTransport
from specs.framing import decode_frame
from specs.testcards import DEFAULT_TEST_CARDS, GOOD_CARD
from switch.app import build_services, register_terminal
from switch.cards import ChipKey, add_card
from switch.config import SwitchConfig
from switch.context import Services
from switch.engine import SwitchEngine
from switch.records import CardStatus
from switch.sqlite_store import SqliteStore
from terminals_sim.financial import CardProfile
from terminals_sim.outcome import Failure, Kind, Outcome
from terminals_sim.terminal import TerminalProfile, VirtualTerminal
from terminals_sim.workingkeys import KeyMode

MERCHANT = "848100058126002"
TERMINAL = "00000764"
TMK = bytes.fromhex("11" * 16)  # the published test TMK (docs/cup-pos.md, "Field 62")
SUPERVISOR, SUPERVISOR_PASSWORD = "00", "123456"  # a registered terminal's default supervisor


@dataclass
class Pair:
    """One switch engine and a terminal talking to it; `terminal_like` adds more terminals."""

    engine: SwitchEngine
    terminal: VirtualTerminal
    outcomes: list[Outcome] = field(default_factory=list)  # every exchange's, in order

    @property
    def services(self) -> Services:
        return self.engine.services

    async def answer(self, frame: bytes) -> bytes | None:
        """The engine's answer to one request frame (None: it answers nothing)."""
        request = decode_frame(self.engine.codec.dialect.framing, frame)
        return (await self.engine.handle(request, "pair")).wire

    async def send(self, frame: bytes, terminal: VirtualTerminal | None = None) -> Outcome:
        """The request to the switch and its answer to the terminal that built it."""
        terminal = terminal or self.terminal
        wire = await self.answer(frame)
        if wire is None:
            outcome = terminal.fail_pending(Failure.RESET, "the switch answered nothing")
        else:
            outcome = terminal.receive(wire)
        self.outcomes.append(outcome)
        return outcome

    async def step(self, kind: Kind, terminal: VirtualTerminal | None = None) -> Outcome:
        """A scenario step: the request for ``kind`` with what the terminal holds."""
        terminal = terminal or self.terminal
        return await self.send(terminal.start(kind), terminal)

    async def transaction(
        self, kind: Kind, amount_cents: int | None, terminal: VirtualTerminal | None = None,
        card: CardProfile | None = None,
    ) -> Outcome:
        terminal = terminal or self.terminal
        return await self.send(terminal.start_transaction(kind, amount_cents, card), terminal)

    async def lose(self, frame: bytes, terminal: VirtualTerminal | None = None) -> Outcome:
        """The switch decides the request, but its answer never reaches the terminal."""
        terminal = terminal or self.terminal
        await self.answer(frame)
        outcome = terminal.fail_pending(Failure.TIMEOUT, "answer lost on purpose")
        self.outcomes.append(outcome)
        return outcome

    def terminal_like(self, **profile: object) -> VirtualTerminal:
        """Another virtual terminal with the first one's profile, changed by ``profile``."""
        return VirtualTerminal(replace(self.terminal.profile, **profile))  # type: ignore[arg-type]

    def kinds(self) -> set[Kind]:
        return {outcome.kind for outcome in self.outcomes}


@asynccontextmanager
async def open_pair(
    db: Path,
    *,
    dialect: str = "cup-pos",
    key_mode: KeyMode = KeyMode.DOUBLE,
    parameters: dict[str, str] | None = None,
    rules: tuple[dict[str, object], ...] = (),
) -> AsyncIterator[Pair]:
    """A switch that knows the published test terminal and the shared test cards (a chip one's
    IMK-AC derived from the fleet's seed, as `fleet --provision` registers it), and that terminal
    signed off, with the supervisor as its operator and the good card in its reader."""
    config = SwitchConfig(db=str(db), dialect=dialect, parameters=parameters or {}, rules=rules)
    store = SqliteStore(str(db))
    try:
        services = build_services(config, store, InProcTransport(Dispatcher(reraise_bugs=True)))
        await register_terminal(services, MERCHANT, TERMINAL, TMK)
        for card in DEFAULT_TEST_CARDS:
            await add_card(
                services,
                card.pan,
                card.expiry,
                card.pin,
                card.balance_cents,
                card.limit_cents,
                card.service_code,
                CardStatus(card.status.value),
                chip=ChipKey(derive_imk_ac(DEFAULT_SEED, card.pan), card.psn) if card.chip else None,
            )
        profile = TerminalProfile(
            MERCHANT,
            TERMINAL,
            TMK,
            key_mode=key_mode,
            operator=SUPERVISOR,
            password=SUPERVISOR_PASSWORD,
            card=CardProfile.of(GOOD_CARD),
            dialect=dialect,
        )
        yield Pair(SwitchEngine(services, reraise_bugs=True), VirtualTerminal(profile))
    finally:
        await store.close()
