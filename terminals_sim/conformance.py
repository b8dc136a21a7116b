"""Named conformance checks against any host, in the dialect the target names (the default
dialect unless told). A check that needs a request kind the dialect's message catalogue does
not have (an iso87 host has no operators, no balance inquiry) is skipped with that reason.

Each check passes, fails with the reason, or is skipped with why; `write_junit` turns the
results into JUnit XML for CI. Every exchange uses a new TCP connection, so one check that
leaves a connection in a bad state cannot spoil the next. Reasons never hold key material.

The financial checks (docs/financial.md) use one test card (``ConformanceTarget.card``, by
default the first of ``testcards.DEFAULT_TEST_CARDS``); a host that answers 14 for it does not
know the card, and those checks are skipped with that reason. Their purchases are of 1.00 and
are reversed again, so a run leaves the card's balance as it found it.

The chip checks (docs/chip.md) play ``ConformanceTarget.chip_card`` (by default the shared chip
test card, its key derived from the fleet's seed): the ARPC in 91 verifies for a good ARQC, a
tampered ARQC is declined, and the IC downloads complete with every CA key's checksum right. A
host whose answer to a chip purchase carries no field 55 at all, or that does not serve the
downloads, does not do chip cards: those checks are skipped with that reason.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from hsm_sim.mac import cup_pos_mac
from specs.catalogue import DEFAULT_DIALECT, mac_input
from specs.catalogue_loader import catalogue_for
from specs.codec import Codec, codec_for
from specs.errors import SpecError, WireError
from specs.framing import decode_frame, encode_frame
from specs.message import Message
from specs.response import describe as describe_code
from specs.testcards import CHIP_CARD, DEFAULT_TEST_CARDS
from specs.tls import ClientTls
from specs.tlv import Tlv, build, parse
from terminals_sim import junit
from terminals_sim.connection import ExchangeFailed, exchange_once
from terminals_sim.financial import CardProfile, ReversalReason, Transaction
from terminals_sim.outcome import Failure, Kind, Outcome
from terminals_sim.terminal import TerminalProfile, VirtualTerminal
from terminals_sim.workingkeys import KeyCheckError, KeyMode, unwrap_working_keys

DEFAULT_TIMEOUT = 5.0
SUITE = "switchsim.conformance"
DEFAULT_CARD = CardProfile.of(DEFAULT_TEST_CARDS[0])
DEFAULT_CHIP_CARD = CardProfile.of(CHIP_CARD)
_CHECK_CENTS = 100  # what each check's purchase spends (and reverses)


class CheckStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: CheckStatus
    reason: str = ""
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ConformanceTarget:
    host: str
    port: int
    merchant: str
    terminal: str
    tmk: bytes = field(repr=False)
    operator: str = "01"
    password: str = field(default="0000", repr=False)
    wrong_password: str = field(default="9999", repr=False)
    timeout: float = DEFAULT_TIMEOUT
    card: CardProfile = DEFAULT_CARD
    dialect: str = DEFAULT_DIALECT
    chip_card: CardProfile = DEFAULT_CHIP_CARD
    tls: ClientTls | None = None  # conformance --tls: every exchange over TLS

    def __post_init__(self) -> None:
        try:
            catalogue_for(codec_for(self.dialect).dialect)
        except SpecError as exc:
            raise ValueError(f"dialect {self.dialect!r}: {exc.problem}") from None


class _CheckFailed(Exception):
    pass


class _CheckSkipped(Exception):
    pass


@dataclass
class _Run:
    target: ConformanceTarget
    terminal: VirtualTerminal
    tls: ssl.SSLContext | None = None  # built once from target.tls

    @property
    def codec(self) -> Codec:
        return codec_for(self.target.dialect)

    def stranger(self, *, merchant: str | None = None, terminal: str | None = None) -> VirtualTerminal:
        """A terminal the host should not know, continuing our STAN sequence."""
        base = self.terminal.profile
        return VirtualTerminal(replace(
            base,
            merchant=merchant or base.merchant,
            terminal=terminal or base.terminal,
            first_stan=(self.terminal.stan % 999_999) + 1,
        ))

    async def send(self, terminal: VirtualTerminal, frame: bytes) -> tuple[Outcome, Message | None]:
        """One exchange on a new connection; also the decoded answer for checks of its fields."""
        t = self.target
        fmt = self.codec.dialect.framing
        try:
            answer = await exchange_once(t.host, t.port, fmt, frame, t.timeout, self.tls)
        except ExchangeFailed as exc:
            return terminal.fail_pending(exc.failure, exc.detail), None
        outcome = terminal.receive(answer)
        try:
            message = self.codec.decode(answer.body, validate=False)
        except WireError:
            message = None
        return outcome, message

    async def ensure_signed_in(self) -> None:
        if self.terminal.signed_in:
            return
        outcome, _ = await self.send(self.terminal, self.terminal.start_signin(KeyMode.DOUBLE))
        if not outcome.ok:
            raise _CheckSkipped(f"needs a signed-in terminal, and sign-in 003 failed ({_say(outcome)})")

    async def ready_to_sell(self) -> None:
        """Signed in, and no reversal owed from an earlier check."""
        await self.ensure_signed_in()
        if self.terminal.reversal_due is not None:
            outcome, _ = await self.send(self.terminal, self.terminal.start_reversal())
            if self.terminal.reversal_due is not None:
                raise _CheckSkipped(f"a reversal owed from an earlier check was not answered ({_say(outcome)})")

    async def sell(self, frame: bytes, code: str) -> Outcome:
        """One card transaction that must answer ``code``; 14 means the host lacks the card."""
        outcome, _ = await self.send(self.terminal, frame)
        if outcome.response_code == "14" and code != "14":
            raise _CheckSkipped(f"the host does not know test card {self.target.card.masked_pan} (39 = 14)")
        _expect_code(outcome, code)
        return outcome

    async def balance(self) -> int:
        outcome = await self.sell(self.terminal.start_balance(), "00")
        if outcome.balance_cents is None:
            raise _CheckFailed("approved balance inquiry without a balance")
        return outcome.balance_cents

    async def purchase(self, cents: int = _CHECK_CENTS) -> Transaction:
        await self.sell(self.terminal.start_purchase(cents), "00")
        txn = self.terminal.last_transaction
        assert txn is not None  # an approved purchase is booked
        return txn

    async def reverse(self, txn: Transaction) -> Outcome:
        outcome, _ = await self.send(self.terminal, self.terminal.start_reversal(txn, ReversalReason.NO_ANSWER))
        return outcome


def _say(outcome: Outcome) -> str:
    if outcome.failure is not None:
        return f"{outcome.failure.value}: {outcome.detail}"
    return f"39 = {describe_code(outcome.response_code)}"


def _expect_code(outcome: Outcome, code: str) -> None:
    if outcome.failure is not None and outcome.failure is not Failure.UNEXPECTED_CODE:
        raise _CheckFailed(_say(outcome))
    if outcome.response_code != code:
        raise _CheckFailed(f"39 = {describe_code(outcome.response_code)}, expected {code}")


def _exchanges_keys(run: _Run) -> bool:
    signin = catalogue_for(run.target.dialect).get(Kind.SIGNIN.value)
    return signin is not None and bool(signin.key_layouts)


def _needs_key_signin(run: _Run) -> None:
    if not _exchanges_keys(run):
        raise _CheckSkipped(f"the {run.target.dialect} sign-in carries no working keys and names no terminal")


async def _signin(run: _Run, mode: KeyMode) -> None:
    _needs_key_signin(run)
    layout = catalogue_for(run.target.dialect).kind(Kind.SIGNIN.value).layout(mode.value)
    t = run.terminal
    outcome, message = await run.send(t, t.start_signin(mode))
    _expect_code(outcome, "00")
    assert message is not None  # an approved, well-formed answer was decoded
    raw = message.get(62)
    if raw is None:
        raise _CheckFailed("approved sign-in without field 62")
    try:
        unwrap_working_keys(layout, run.target.tmk, bytes.fromhex(raw), strict=True)
    except KeyCheckError as exc:
        raise _CheckFailed(exc.reason) from None


async def _check_signin_001(run: _Run) -> None:
    await _signin(run, KeyMode.SINGLE)


async def _check_signin_003(run: _Run) -> None:
    await _signin(run, KeyMode.DOUBLE)


async def _check_signin_004(run: _Run) -> None:
    await _signin(run, KeyMode.DOUBLE_TDK)


async def _check_key_rotation(run: _Run) -> None:
    _needs_key_signin(run)
    t = run.terminal
    outcome, _ = await run.send(t, t.start_signin(KeyMode.DOUBLE))
    _expect_code(outcome, "00")
    first = t.working_keys
    outcome, _ = await run.send(t, t.start_signin(KeyMode.DOUBLE))
    _expect_code(outcome, "00")
    second = t.working_keys
    assert first is not None and second is not None
    same = [name for name in ("PIK", "MAK") if getattr(first, name.lower()) == getattr(second, name.lower())]
    if same:
        raise _CheckFailed(f"a second sign-in returned the same {' and '.join(same)}")


async def _check_echo(run: _Run) -> None:
    outcome, _ = await run.send(run.terminal, run.terminal.start_echo())
    _expect_code(outcome, "00")


async def _check_operator_signin_wrong(run: _Run) -> None:
    await run.ensure_signed_in()
    t = run.terminal
    outcome, _ = await run.send(t, t.start_operator_signin(password=run.target.wrong_password))
    _expect_code(outcome, "55")


async def _check_operator_signin_right(run: _Run) -> None:
    await run.ensure_signed_in()
    t = run.terminal
    outcome, _ = await run.send(t, t.start_operator_signin())
    _expect_code(outcome, "00")


async def _check_signoff(run: _Run) -> None:
    await run.ensure_signed_in()
    outcome, _ = await run.send(run.terminal, run.terminal.start_signoff())
    _expect_code(outcome, "00")


async def _check_malformed_frame(run: _Run) -> None:
    """A sign-in whose body ends inside its last field (a whole frame, a broken message)."""
    codec = run.codec
    fmt = codec.dialect.framing
    whole = decode_frame(fmt, run.stranger().start_signin())
    frame = encode_frame(fmt, whole.body[:-2], tpdu=whole.tpdu, header=whole.header)
    t = run.target
    try:
        answer = await exchange_once(t.host, t.port, fmt, frame, t.timeout, run.tls)
    except ExchangeFailed as exc:
        if exc.failure is Failure.RESET:
            raise _CheckSkipped("the host closed the connection instead of answering 39 = 30") from None
        raise _CheckFailed(f"{exc.failure.value}: {exc.detail}") from None
    try:
        message = codec.decode(answer.body, validate=False)
    except WireError as exc:
        raise _CheckFailed(f"answer does not decode: {exc.describe()}") from None
    code = message.get(39)
    if code != "30":
        raise _CheckFailed(f"39 = {describe_code(code)}, expected 30 (format error)")


async def _check_unknown_terminal(run: _Run) -> None:
    _needs_key_signin(run)
    other = "99999999" if run.terminal.profile.terminal != "99999999" else "99999998"
    t = run.stranger(terminal=other)
    outcome, _ = await run.send(t, t.start_signin())
    _expect_code(outcome, "97")


async def _check_unknown_merchant(run: _Run) -> None:
    _needs_key_signin(run)
    profile = run.terminal.profile
    other = "999999999999999" if profile.merchant != "999999999999999" else "999999999999998"
    t = run.stranger(merchant=other)
    outcome, _ = await run.send(t, t.start_signin())
    _expect_code(outcome, "03")


async def _check_mac_answer(run: _Run) -> None:
    """The terminal refuses an approved answer whose 64 is missing or does not verify."""
    await run.ready_to_sell()
    await run.balance()


async def _check_mac_wrong(run: _Run) -> None:
    await run.ready_to_sell()
    await run.balance()  # the card is known and a right MAC is accepted
    codec = run.codec
    frame = decode_frame(codec.dialect.framing, run.terminal.start_balance())
    request = codec.decode(frame.body)
    flipped = f"{int(request[64], 16) ^ 1:016X}"
    body = codec.encode(request.replace(f64=flipped))
    t = run.terminal.profile
    outcome, _ = await run.send(run.terminal, encode_frame(codec.dialect.framing, body, tpdu=t.tpdu, header=t.header))
    _expect_code(outcome, "A0")


async def _check_pin_wrong(run: _Run) -> None:
    await run.ready_to_sell()
    card = run.target.card
    wrong = card.pin[:-1] + str((int(card.pin[-1]) + 1) % 10)
    await run.sell(run.terminal.start_purchase(_CHECK_CENTS, pin=wrong), "55")


async def _check_pin_right(run: _Run) -> None:
    await run.ready_to_sell()
    txn = await run.purchase()
    await run.reverse(txn)  # leave the balance as it was; judged by the reversal checks


async def _check_reversal(run: _Run) -> None:
    await run.ready_to_sell()
    before = await run.balance()
    txn = await run.purchase()
    during = await run.balance()
    if during != before - txn.amount_cents:
        raise _CheckFailed(f"balance went from {before} to {during} after a purchase of {txn.amount_cents}")
    _expect_code(await run.reverse(txn), "00")
    after = await run.balance()
    if after != before:
        raise _CheckFailed(f"balance {after} after the reversal, {before} before the purchase")


async def _check_reversal_repeated(run: _Run) -> None:
    await run.ready_to_sell()
    before = await run.balance()
    txn = await run.purchase()
    _expect_code(await run.reverse(txn), "00")
    outcome = await run.reverse(txn)
    if outcome.response_code != "00":
        raise _CheckFailed(f"a repeated reversal answered {_say(outcome)}, expected 39 = 00")
    after = await run.balance()
    if after != before:
        raise _CheckFailed(f"balance {after} after two reversals, {before} before the purchase")


async def _check_duplicate_stan(run: _Run) -> None:
    await run.ready_to_sell()
    first = await run.purchase()
    try:
        await run.sell(run.terminal.start_purchase(2 * _CHECK_CENTS, stan=int(first.stan)), "94")
    finally:
        second = run.terminal.last_transaction
        await run.reverse(first)
        if second is not None and second is not first and second.response_code == "00":
            await run.reverse(second)  # a host that took the repeat: give the money back too


async def _chip_sale(run: _Run, frame: bytes) -> tuple[Outcome, Message | None]:
    outcome, message = await run.send(run.terminal, frame)
    card = run.target.chip_card
    if outcome.response_code == "14":
        raise _CheckSkipped(f"the host does not know chip test card {card.masked_pan} (39 = 14)")
    if message is not None and 55 not in message and outcome.response_code is not None:
        raise _CheckSkipped(f"the host answered a chip purchase without field 55 (39 = {outcome.response_code}): "
                            "it does not serve chip cards")
    return outcome, message


async def _check_chip_arpc(run: _Run) -> None:
    await run.ready_to_sell()
    t = run.terminal
    outcome, _ = await _chip_sale(run, t.start_transaction(Kind.CHIP_PURCHASE, _CHECK_CENTS, run.target.chip_card))
    if outcome.response_code == "00" and outcome.failure is not None:
        raise _CheckFailed(outcome.detail)  # the card refused the ARPC: the terminal owes a reversal
    _expect_code(outcome, "00")
    txn = t.last_transaction
    assert txn is not None
    await run.reverse(txn)


async def _check_chip_tampered_arqc(run: _Run) -> None:
    await run.ready_to_sell()
    t = run.terminal
    codec = run.codec
    fmt = codec.dialect.framing
    frame = decode_frame(fmt, t.start_transaction(Kind.CHIP_PURCHASE, _CHECK_CENTS, run.target.chip_card))
    request = codec.decode(frame.body)
    objects = [Tlv(o.tag, bytes([o.value[0] ^ 0x01]) + o.value[1:]) if o.tag == "9F26" else o
               for o in parse(bytes.fromhex(request[55]), field="55")]
    keys = t.working_keys
    assert keys is not None
    tampered = request.replace(f55=build(objects).hex().upper(), f64=None)
    tampered = tampered.replace(f64=cup_pos_mac(keys.mak, mac_input(codec, tampered)).hex().upper())
    profile = t.profile
    wire = encode_frame(fmt, codec.encode(tampered), tpdu=profile.tpdu, header=profile.header)
    outcome, _ = await _chip_sale(run, wire)
    if outcome.response_code == "00":
        txn = t.last_transaction
        if txn is not None and t.reversal_due is None:
            await run.reverse(txn)
        raise _CheckFailed("a chip purchase whose ARQC (9F26) was altered was approved")
    if outcome.failure is not None and outcome.failure is not Failure.UNEXPECTED_CODE:
        raise _CheckFailed(_say(outcome))


async def _check_ic_download(run: _Run) -> None:
    await run.ensure_signed_in()
    t = run.terminal
    for which in (Kind.CAPK_DOWNLOAD, Kind.AID_DOWNLOAD):
        t.begin_download(which)
        while (kind := t.next_download) is not None:
            outcome, _ = await run.send(t, t.start(kind))
            if outcome.failure is None and outcome.response_code not in ("00", None) and kind in (
                    Kind.CAPK_LIST, Kind.AID_LIST):
                t.abandon_download()
                raise _CheckSkipped(f"the host does not serve the IC downloads ({kind.value}: 39 = "
                                    f"{outcome.response_code})")
            if not outcome.ok:
                t.abandon_download()
                raise _CheckFailed(f"{kind.value}: {_say(outcome)}")
    if not t.ic.capks or not t.ic.aids:
        raise _CheckFailed(f"the downloads ended with {len(t.ic.capks)} CA keys and {len(t.ic.aids)} AIDs")


CHECKS: tuple[tuple[str, str, Callable[[_Run], Awaitable[None]]], ...] = (
    ("signin_001", "sign-in 001: field 62 is 24 bytes, check values verify, 39/11/41/42 right",
     _check_signin_001),
    ("signin_003", "sign-in 003: field 62 is 40 bytes, check values verify, 39/11/41/42 right",
     _check_signin_003),
    ("signin_004", "sign-in 004: field 62 is 60 bytes with the TDK, check values verify",
     _check_signin_004),
    ("key_rotation", "a second sign-in returns a new PIK and a new MAK", _check_key_rotation),
    ("echo", "echo test 0820/301 answered 0830 with 39 = 00", _check_echo),
    ("operator_signin_wrong", "operator sign-in with a wrong password answered 55",
     _check_operator_signin_wrong),
    ("operator_signin_right", "operator sign-in with the right password answered 00, MAC verified",
     _check_operator_signin_right),
    ("signoff", "sign-off 0820/002 answered 0830 with 39 = 00", _check_signoff),
    ("malformed_frame", "a broken message answered 39 = 30 (skipped if the host closes instead)",
     _check_malformed_frame),
    ("unknown_terminal", "sign-in from an unregistered terminal answered 97", _check_unknown_terminal),
    ("unknown_merchant", "sign-in from an unknown merchant answered 03", _check_unknown_merchant),
    ("mac_answer", "an approved balance inquiry carries a field 64 that verifies under the MAK",
     _check_mac_answer),
    ("mac_wrong", "a balance inquiry with a wrong MAC answered A0", _check_mac_wrong),
    ("pin_wrong", "a purchase with a wrong PIN answered 55", _check_pin_wrong),
    ("pin_right", "a purchase with the right PIN answered 00 (then reversed)", _check_pin_right),
    ("reversal", "purchase 00, reversal 00, the balance inquiry shows the money back", _check_reversal),
    ("reversal_repeated", "a second reversal of the same purchase answered 00 and changed nothing",
     _check_reversal_repeated),
    ("duplicate_stan", "a purchase repeating a STAN of the batch answered 94", _check_duplicate_stan),
    ("chip_arpc", "a chip purchase (good ARQC) is approved with a 91 whose ARPC the card verifies (then reversed)",
     _check_chip_arpc),
    ("chip_tampered_arqc", "a chip purchase whose ARQC was altered is declined", _check_chip_tampered_arqc),
    ("ic_download", "CA key and IC parameter downloads complete, every CA key checksum (DF03) verifies",
     _check_ic_download),
)
CHECK_NAMES = tuple(name for name, _, _ in CHECKS)
# The request kinds each check sends: a dialect whose catalogue lacks one skips the check.
_SENDS: dict[str, tuple[Kind, ...]] = {
    "signin_001": (Kind.SIGNIN,),
    "signin_003": (Kind.SIGNIN,),
    "signin_004": (Kind.SIGNIN,),
    "key_rotation": (Kind.SIGNIN,),
    "echo": (Kind.ECHO,),
    "operator_signin_wrong": (Kind.SIGNIN, Kind.OPERATOR_SIGNIN),
    "operator_signin_right": (Kind.SIGNIN, Kind.OPERATOR_SIGNIN),
    "signoff": (Kind.SIGNIN, Kind.SIGNOFF),
    "malformed_frame": (Kind.SIGNIN,),
    "unknown_terminal": (Kind.SIGNIN,),
    "unknown_merchant": (Kind.SIGNIN,),
    "mac_answer": (Kind.SIGNIN, Kind.BALANCE),
    "mac_wrong": (Kind.SIGNIN, Kind.BALANCE),
    "pin_wrong": (Kind.SIGNIN, Kind.PURCHASE),
    "pin_right": (Kind.SIGNIN, Kind.PURCHASE, Kind.REVERSAL),
    "reversal": (Kind.SIGNIN, Kind.BALANCE, Kind.PURCHASE, Kind.REVERSAL),
    "reversal_repeated": (Kind.SIGNIN, Kind.BALANCE, Kind.PURCHASE, Kind.REVERSAL),
    "duplicate_stan": (Kind.SIGNIN, Kind.PURCHASE, Kind.REVERSAL),
    "chip_arpc": (Kind.SIGNIN, Kind.CHIP_PURCHASE, Kind.CHIP_REVERSAL),
    "chip_tampered_arqc": (Kind.SIGNIN, Kind.CHIP_PURCHASE),
    "ic_download": (Kind.SIGNIN, Kind.CAPK_LIST, Kind.CAPK_RECORD, Kind.CAPK_DONE, Kind.AID_LIST, Kind.AID_RECORD,
                    Kind.AID_DONE),
}


async def run_conformance(target: ConformanceTarget, only: frozenset[str] | None = None) -> list[CheckResult]:
    """Run the checks in order (or those named in ``only``) and return one result each."""
    profile = TerminalProfile(
        merchant=target.merchant,
        terminal=target.terminal,
        tmk=target.tmk,
        operator=target.operator,
        password=target.password,
        card=target.card,
        dialect=target.dialect,
    )
    run = _Run(target, VirtualTerminal(profile), target.tls.context() if target.tls is not None else None)
    catalogue = catalogue_for(target.dialect)
    results: list[CheckResult] = []
    for name, _description, check in CHECKS:
        if only is not None and name not in only:
            continue
        started = time.monotonic()
        missing = [kind.value for kind in _SENDS[name] if catalogue.get(kind.value) is None]
        try:
            if missing:
                raise _CheckSkipped(f"the {catalogue.name} message catalogue has no {', '.join(missing)}")
            await check(run)
        except _CheckFailed as exc:
            status, reason = CheckStatus.FAILED, str(exc)
        except _CheckSkipped as exc:
            status, reason = CheckStatus.SKIPPED, str(exc)
        else:
            status, reason = CheckStatus.PASSED, ""
        if run.terminal.awaiting is not None:  # a check that stopped half-way
            run.terminal.fail_pending(Failure.PROTOCOL)
        results.append(CheckResult(name, status, reason, time.monotonic() - started))
    return results


def describe(name: str) -> str:
    return next(d for n, d, _ in CHECKS if n == name)


def write_junit(results: list[CheckResult], path: Path, *, target: str = "", dialect: str = DEFAULT_DIALECT) -> None:
    """JUnit XML (junit.py): one testsuite, one testcase per check (failure / skipped elements)."""
    cases = [
        junit.Case(
            classname=f"{SUITE}.{dialect}",
            name=r.name,
            seconds=r.seconds,
            failure=r.reason if r.status is CheckStatus.FAILED else None,
            failure_type="ConformanceFailure",
            failure_text=f"{describe(r.name)}\n{r.reason}",
            skipped=r.reason if r.status is CheckStatus.SKIPPED else None,
        )
        for r in results
    ]
    junit.write_junit(path, SUITE, cases, properties={"target": target} if target else None)
