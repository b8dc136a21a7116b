"""The fleet runner: thousands of virtual terminals in one asyncio process.

Each terminal is one task that runs its scenario (setup steps, a weighted mix until the run
ends, teardown) over its own connection habit. A global token bucket caps the rate of
exchanges (``rate``), terminals start at ``connect_rate`` per second, and the run ends after
``duration`` seconds or ``exchanges`` exchanges, whichever comes first. The host's follow-up
requests (39 = A0, header processing requirement 3/1/2) are obeyed at once, as real terminals do.

Selling follows the terminal's rules: a reversal it owes goes out right after the request that
lost its answer and, until answered, before every later financial request; a batch upload the
host asked for is finished before the next sale; a full batch is settled first. A chip sale
whose answer carried issuer scripts is followed by its script result advice (0620); the IC
downloads (``ic_download`` and the host's processing requirements 4, 5, 7) run their list,
record and end requests until the download is complete (docs/chip.md).

Every exchange and connection is also told to the fleet's ``Observer`` (specs/observer.py:
Prometheus metrics, the Locust adapter). A driver reaches the host only through ``transmit``
and waits only through ``pause``, so a shell other than asyncio (terminals_sim/locustfile.py)
can drive the same steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import accumulate

from specs.catalogue import DEFAULT_DIALECT
from specs.catalogue_loader import catalogue_for
from specs.codec import codec_for
from specs.errors import SpecError, WireError
from specs.framing import Frame
from specs.observer import NULL_OBSERVER, Observer
from specs.tls import ClientTls
from terminals_sim.chipcard import ChipProfile
from terminals_sim.connection import ExchangeFailed, HostConnection, open_connection
from terminals_sim.financial import CHIP_KINDS, FINANCIAL_KINDS, SHAPES, TRANSACTION_KINDS, CardProfile
from terminals_sim.icload import COMPOSITE, DOWNLOADS
from terminals_sim.outcome import Failure, Kind, Outcome
from terminals_sim.provision import (
    DEFAULT_FIRST_TERMINAL,
    DEFAULT_MERCHANT_PREFIX,
    DEFAULT_SEED,
    PlannedTerminal,
    provision_plan,
)
from terminals_sim.scenario import ConnectionHabit, Scenario, Step
from terminals_sim.stats import RunStats, Snapshot
from terminals_sim.terminal import TerminalProfile, TerminalProtocolError, VirtualTerminal
from terminals_sim.transitions import State

DEFAULT_TIMEOUT = 5.0
_APPROVED = frozenset({"00"})
_REFUSED_PAUSE = 0.2
# Requests that need working keys, and those that need an operator signed in: a terminal
# whose sign-in was lost does that first, as a real one would, instead of failing locally.
_NEEDS_OPERATOR = frozenset({Kind.OPERATOR_SIGNOUT, Kind.PASSWORD_CHANGE})
# What a step the fleet adds on its own is judged against when the scenario does not say:
# a host may answer a reversal of something it never saw 25 (docs/financial.md, Reversals).
_DEFAULT_EXPECT = {Kind.REVERSAL: frozenset({"00", "25"}), Kind.SCRIPT_ADVICE: frozenset({"00", "25"})}
_PREREQUISITE_CENTS = 100  # a purchase or pre-auth made so that a void/refund/completion has one
_OWED = frozenset({Kind.REVERSAL, Kind.BATCH_UPLOAD, Kind.SCRIPT_ADVICE})


def _wire_kinds(kind: Kind) -> tuple[Kind, ...]:
    """The catalogue kinds a scenario step sends: itself, or a download's requests."""
    if kind in COMPOSITE:
        parts = [DOWNLOADS[which] for which in COMPOSITE[kind]]
        return tuple(k for d in parts for k in (d.list, d.record, d.done) if k is not None)
    return (kind,)


@dataclass(frozen=True, slots=True)
class FleetConfig:
    host: str
    port: int
    terminals: int
    scenario: Scenario
    seed: str = DEFAULT_SEED
    merchant_prefix: str = DEFAULT_MERCHANT_PREFIX
    first_terminal: int = DEFAULT_FIRST_TERMINAL
    connect_rate: float | None = None  # terminals started per second; None: all at once
    duration: float | None = None  # seconds
    exchanges: int | None = None  # total exchanges
    rate: float | None = None  # global cap on exchanges per second
    timeout: float = DEFAULT_TIMEOUT
    accept_mirror: bool = False  # bench mode against a bare echo host
    random_seed: int | None = None
    operator: str = "01"
    password: str = field(default="0000", repr=False)
    dialect: str = DEFAULT_DIALECT  # what the terminals speak: its message catalogue has every step
    tls: ClientTls | None = None  # fleet --tls: every connection over TLS

    def __post_init__(self) -> None:
        try:
            catalogue = catalogue_for(codec_for(self.dialect).dialect)
        except SpecError as exc:
            raise ValueError(f"dialect {self.dialect!r}: {exc.problem}") from None
        steps = (*self.scenario.setup, *self.scenario.mix, *self.scenario.teardown)
        missing = sorted({k.value for s in steps for k in _wire_kinds(s.kind) if catalogue.get(k.value) is None})
        if missing:
            raise ValueError(
                f"scenario {self.scenario.name}: {', '.join(missing)} not in the {catalogue.name} message catalogue"
            )
        if self.terminals < 1:
            raise ValueError("need at least one terminal")
        if self.duration is None and self.exchanges is None:
            raise ValueError("give a duration or a number of exchanges")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("duration must be positive")
        if self.exchanges is not None and self.exchanges < 1:
            raise ValueError("exchanges must be at least 1")
        for name in ("connect_rate", "rate"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")


class TokenBucket:
    """A global rate cap shared by every terminal: reservations may run the bucket negative,
    and a caller then waits for its own token, so waiters are served in arrival order."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 20)
        self._tokens = self.burst
        self._last = time.monotonic()

    async def acquire(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1
        if self._tokens < 0:
            await asyncio.sleep(-self._tokens / self.rate)


@dataclass
class FleetResult:
    stats: RunStats
    started_at: float  # Unix time
    duration_s: float
    config: FleetConfig

    @property
    def expectations_held(self) -> bool:
        return self.stats.failed == 0 and self.stats.exchanges > 0


class _Stop(Exception):
    """The run's exchange budget is spent."""


class TerminalDriver:
    """One virtual terminal's task: its scenario over its connection habit."""

    def __init__(self, fleet: Fleet, profile: TerminalProfile) -> None:
        self.fleet = fleet
        self.terminal = VirtualTerminal(profile)
        self.conn: HostConnection | None = None

    async def run(self, delay: float) -> None:
        fleet = self.fleet
        scenario = fleet.config.scenario
        try:
            if delay > 0:
                await asyncio.sleep(delay)
            for step in scenario.setup:
                if fleet.stopping:
                    break
                await self.step(step)
            mix = scenario.mix
            if mix:
                cum = list(accumulate(s.weight for s in mix))
                low, high = scenario.think_ms
                rng = fleet.rng
                while not fleet.stopping:
                    if high > 0:
                        await asyncio.sleep(rng.uniform(low, high) / 1000.0)
                        if fleet.stopping:
                            break
                    await self.step(rng.choices(mix, cum_weights=cum)[0])
            for step in scenario.teardown:
                await self.step(step, teardown=True)
        except _Stop:
            pass
        finally:
            self.drop_connection("end")

    async def step(self, step: Step, *, teardown: bool = False, depth: int = 0) -> None:
        """One scenario step, after what it needs (sign-in, operator) and before what the host
        asks for next (its follow-up)."""
        terminal = self.terminal
        kind = step.kind
        auto = self.fleet.expect
        if terminal.state is State.SIGNED_OUT and kind not in (Kind.SIGNIN, Kind.ECHO):
            if kind is Kind.SIGNOFF:
                return  # nothing to sign off from
            await self.step(Step(Kind.SIGNIN, expect=auto(Kind.SIGNIN)), teardown=teardown, depth=depth + 1)
            if not terminal.signed_in:
                return  # the failed sign-in is counted; this step cannot be built without keys
        if kind in _NEEDS_OPERATOR and terminal.state is not State.OPERATOR_IN:
            operator = Step(Kind.OPERATOR_SIGNIN, expect=auto(Kind.OPERATOR_SIGNIN))
            await self.step(operator, teardown=teardown, depth=depth + 1)
            if not terminal.operator_signed_in:
                return
        if kind in COMPOSITE:
            for which in COMPOSITE[kind]:
                if not await self.download(which, step, teardown):
                    break
            return
        if kind in FINANCIAL_KINDS and kind not in _OWED and not await self.prepare_sale(step, teardown, depth):
            return
        outcome = await self.exchange(kind, step.expect, teardown, step)
        if kind in FINANCIAL_KINDS and kind not in _OWED:
            await self.pay_debts(teardown, depth)
        follow = outcome.follow_up.kind
        # Bounded: a host that asks for the same thing in every answer must not loop us.
        if follow is not None and follow is not kind and depth < 2:
            await self.step(Step(follow, expect=auto(follow)), teardown=teardown, depth=depth + 1)

    async def download(self, which: Kind, step: Step, teardown: bool) -> bool:
        """One IC download, request after request; False when one of them failed."""
        terminal = self.terminal
        terminal.begin_download(which)
        while (kind := terminal.next_download) is not None:
            outcome = await self.exchange(kind, step.expect, teardown)
            if not outcome.ok:
                terminal.abandon_download()
                return False
        return True

    async def pay_debts(self, teardown: bool, depth: int) -> bool:
        """Send the reversal owed, the script result advices owed, and finish a batch upload
        under way; True when nothing is left owing."""
        terminal = self.terminal
        auto = self.fleet.expect
        if terminal.reversal_due is not None:
            await self.step(Step(Kind.REVERSAL, expect=auto(Kind.REVERSAL)), teardown=teardown, depth=depth + 1)
            if terminal.reversal_due is not None:
                return False
        while (advice := terminal.advice_due) is not None:
            await self.step(Step(Kind.SCRIPT_ADVICE, expect=auto(Kind.SCRIPT_ADVICE)), teardown=teardown,
                            depth=depth + 1)
            if terminal.advice_due is advice:
                return False
        while terminal.uploading:
            before = terminal.ledger.next_upload_item
            await self.step(Step(Kind.BATCH_UPLOAD, expect=auto(Kind.BATCH_UPLOAD)), teardown=teardown,
                            depth=depth + 1)
            if terminal.uploading and terminal.ledger.next_upload_item == before:
                return False  # this item got no usable answer: try again before the next sale
        return True

    async def prepare_sale(self, step: Step, teardown: bool, depth: int) -> bool:
        """What has to happen before a financial step can go: debts paid, an original to refer
        to, room in the batch. False when the step cannot go."""
        terminal = self.terminal
        auto = self.fleet.expect
        if not await self.pay_debts(teardown, depth):
            return False
        kind = step.kind
        if kind not in TRANSACTION_KINDS:
            return True
        if terminal.batch_full:
            await self.step(Step(Kind.SETTLEMENT, expect=auto(Kind.SETTLEMENT)), teardown=teardown, depth=depth + 1)
            if terminal.batch_full:
                return False
        original = SHAPES[kind].original
        if original is not None and terminal.ledger.latest_original(kind) is None:
            amount = step.amount or (_PREREQUISITE_CENTS, _PREREQUISITE_CENTS)
            # Judged against 00 whatever the scenario expects of its own purchases: only an
            # approved one can be voided, refunded or completed.
            first = Step(original, expect=_APPROVED, amount=amount, card=step.card)
            await self.step(first, teardown=teardown, depth=depth + 1)
            return terminal.ledger.latest_original(kind) is not None
        return True

    def request(self, kind: Kind, step: Step | None) -> bytes:
        """The frame for ``kind``, with what the scenario step says about a card transaction."""
        terminal = self.terminal
        if step is None or kind not in TRANSACTION_KINDS:
            return terminal.start(kind)
        amount = None
        if step.amount is not None:
            low, high = step.amount
            amount = low if low == high else self.fleet.rng.randint(low, high)
        card = self.fleet.own(step.card)
        if card is None and kind in CHIP_KINDS and not self.has_original(kind):
            card = self.fleet.own(self.fleet.config.scenario.chip_card)
        pin = None
        if step.wrong_pin:
            read = card or terminal.profile.card
            if read is not None and read.pin:
                pin = read.pin[:-1] + str((int(read.pin[-1]) + 1) % 10)
        return terminal.start_transaction(kind, amount, card, with_pin=step.with_pin, pin=pin)

    def has_original(self, kind: Kind) -> bool:
        """A void or refund reads the card of its original, which the batch knows."""
        return SHAPES[kind].original is not None and self.terminal.ledger.latest_original(kind) is not None

    async def exchange(self, kind: Kind, expect: frozenset[str], teardown: bool, step: Step | None = None) -> Outcome:
        fleet = self.fleet
        fleet.reserve(teardown)
        if fleet.bucket is not None:
            await fleet.bucket.acquire()
        started = time.monotonic()
        try:
            frame = self.request(kind, step)
        except (TerminalProtocolError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, TerminalProtocolError) else str(exc)
            outcome = Outcome(kind=kind, response_code=None, failure=Failure.PROTOCOL, detail=reason)
            fleet.stats.record(outcome, None, started)
            fleet.observer.exchange_done(kind.value, "", 0.0, Failure.PROTOCOL.value, reason)
            return outcome
        try:
            answer = await self.transmit(frame)
        except ExchangeFailed as exc:
            self.drop_connection(exc.failure.value)
            outcome = self.terminal.fail_pending(exc.failure, exc.detail)
        else:
            if step is not None and step.force_reversal:
                outcome = self.set_aside(kind, answer)
            else:
                outcome = self.terminal.receive(answer)
            if fleet.per_exchange:
                self.drop_connection("per_exchange")
        now = time.monotonic()
        outcome = outcome.as_unexpected(expect)
        fleet.stats.record(outcome, now - started, now)
        failure = outcome.failure
        fleet.observer.exchange_done(kind.value, outcome.response_code or "", now - started,
                                     failure.value if failure is not None else "", outcome.detail)
        if failure is Failure.REFUSED:
            # A refused connect fails at once: pause, as a terminal would, rather than spin.
            await self.pause(_REFUSED_PAUSE)
        return outcome

    async def transmit(self, frame: bytes) -> Frame:
        """Send one request over the connection habit and wait for its answer; ExchangeFailed
        when none can be trusted."""
        conn = await self.connection()
        return await conn.exchange(frame, self.fleet.config.timeout)

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def set_aside(self, kind: Kind, answer: Frame) -> Outcome:
        """force_reversal: count what the host answered, but let the terminal take the request
        as unanswered, so that it owes a reversal."""
        self.terminal.fail_pending(Failure.TIMEOUT, "answer set aside (force_reversal)")
        try:
            code = self.fleet.codec.decode(answer.body, validate=False).get(39)
        except WireError as exc:
            return Outcome(kind=kind, response_code=None, failure=Failure.PROTOCOL,
                           detail=f"undecodable answer: {exc.describe()}")
        return Outcome(kind=kind, response_code=code, detail="answer set aside (force_reversal)")

    async def connection(self) -> HostConnection:
        if self.conn is not None and self.conn.usable:
            return self.conn
        self.drop_connection()
        fleet = self.fleet
        cfg = fleet.config
        self.conn = await open_connection(cfg.host, cfg.port, fleet.fmt, cfg.timeout, fleet.tls)
        fleet.stats.connection_opened()
        fleet.observer.connection_opened()
        return self.conn

    def drop_connection(self, reason: str = "closed") -> None:
        """Close the connection, if any; ``reason`` (a failure kind, per_exchange, end) is what
        the observer hears."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None
            self.fleet.stats.connection_closed()
            self.fleet.observer.connection_closed(reason)


class Fleet:
    """One run: create with a config, ``await run()``."""

    def __init__(
        self,
        config: FleetConfig,
        on_tick: Callable[[Snapshot], None] | None = None,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self.config = config
        self.observer = observer
        self.codec = codec_for(config.dialect)
        self.fmt = self.codec.dialect.framing
        self.tls = config.tls.context() if config.tls is not None else None  # one for every terminal
        self.rng = random.Random(config.random_seed)
        self.bucket = TokenBucket(config.rate) if config.rate else None
        self.per_exchange = config.scenario.connection is ConnectionHabit.PER_EXCHANGE
        self.stopping = False
        self.issued = 0
        self.on_tick = on_tick
        self.stats = RunStats(time.monotonic())
        self._cards: dict[str, CardProfile] = {}  # the run's cards by PAN, keyed to its seed
        # The codes each kind is judged against: what the scenario says for that step.
        expect: dict[Kind, frozenset[str]] = {}
        for step in (*config.scenario.setup, *config.scenario.mix, *config.scenario.teardown):
            expect[step.kind] = expect.get(step.kind, frozenset()) | step.expect
        self._expect = expect

    def reserve(self, teardown: bool) -> None:
        limit = self.config.exchanges
        if limit is not None and self.issued >= limit:
            self.stopping = True
            raise _Stop
        if self.stopping and not teardown:
            raise _Stop
        self.issued += 1
        if limit is not None and self.issued >= limit:
            self.stopping = True

    def own(self, card: CardProfile | None) -> CardProfile | None:
        """``card`` as this run plays it: a shared chip test card's key derived from the run's
        seed (the switch derives the same), one card object (one ATC) per PAN."""
        if card is None or card.chip is None or not card.chip.seeded or self.config.seed == DEFAULT_SEED:
            return card
        found = self._cards.get(card.pan)
        if found is None:
            chip = ChipProfile.derived(card.pan, card.chip.psn, self.config.seed)
            found = self._cards[card.pan] = replace(card, chip=chip)
        return found

    def expect(self, kind: Kind) -> frozenset[str]:
        """What a step the fleet adds on its own (prerequisite, follow-up) is judged against:
        whatever the scenario accepts for that kind anywhere, else 00."""
        return self._expect.get(kind) or _DEFAULT_EXPECT.get(kind, _APPROVED)

    def profiles(self) -> list[TerminalProfile]:
        cfg = self.config
        plan = provision_plan(cfg.terminals, cfg.seed, cfg.merchant_prefix, cfg.first_terminal)
        return [self.profile(p) for p in plan]

    def profile(self, p: PlannedTerminal) -> TerminalProfile:
        """The virtual terminal of one planned identity, as this run's scenario wants it."""
        cfg = self.config
        return TerminalProfile(
            merchant=p.merchant,
            terminal=p.terminal,
            tmk=p.tmk,
            key_mode=cfg.scenario.key_mode,
            operator=cfg.scenario.operator or cfg.operator,
            password=cfg.scenario.password or cfg.password,
            card=self.own(cfg.scenario.card),
            first_stan=self.rng.randint(1, 900_000),
            accept_mirror=cfg.accept_mirror,
            dialect=cfg.dialect,
        )

    async def run(self) -> FleetResult:
        cfg = self.config
        started_at = time.time()
        self.stats = RunStats(time.monotonic(), wall_start=started_at, timeout_s=cfg.timeout)
        drivers = [TerminalDriver(self, p) for p in self.profiles()]
        rate = cfg.connect_rate
        tasks = [
            asyncio.create_task(d.run(i / rate if rate else 0.0)) for i, d in enumerate(drivers)
        ]
        ticker = asyncio.create_task(self._tick())
        stopper = asyncio.create_task(self._stop_after(cfg.duration)) if cfg.duration else None
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for helper in (ticker, stopper):
                if helper is not None:
                    helper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await helper
            for driver in drivers:
                driver.drop_connection("end")
        duration = time.monotonic() - self.stats.start
        if self.on_tick is not None:
            self.on_tick(self.stats.snapshot(time.monotonic()))
        return FleetResult(self.stats, started_at, duration, cfg)

    async def _stop_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.stopping = True

    async def _tick(self) -> None:
        if self.on_tick is None:
            return
        while True:
            await asyncio.sleep(0.25)
            self.on_tick(self.stats.snapshot(time.monotonic()))


async def run_fleet(
    config: FleetConfig, on_tick: Callable[[Snapshot], None] | None = None, observer: Observer = NULL_OBSERVER
) -> FleetResult:
    return await Fleet(config, on_tick, observer).run()
