"""Named conformance checks against any host that speaks the cup-pos dialect.

Each check passes, fails with the reason, or is skipped with why; `write_junit` turns the
results into JUnit XML for CI. Every exchange uses a new TCP connection, so one check that
leaves a connection in a bad state cannot spoil the next. Reasons never hold key material.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from specs.codec import codec_for
from specs.errors import WireError
from specs.framing import encode_frame
from specs.message import Message
from terminals_sim.connection import ExchangeFailed, exchange_once
from terminals_sim.outcome import Failure, Outcome
from terminals_sim.terminal import TerminalProfile, VirtualTerminal
from terminals_sim.workingkeys import KeyCheckError, KeyMode, unwrap_working_keys

DEFAULT_TIMEOUT = 5.0
SUITE = "switchsim.conformance"


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


class _CheckFailed(Exception):
    pass


class _CheckSkipped(Exception):
    pass


@dataclass
class _Run:
    target: ConformanceTarget
    terminal: VirtualTerminal

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
        fmt = codec_for("cup-pos").dialect.framing
        try:
            answer = await exchange_once(t.host, t.port, fmt, frame, t.timeout)
        except ExchangeFailed as exc:
            return terminal.fail_pending(exc.failure, exc.detail), None
        outcome = terminal.receive(answer)
        try:
            message = codec_for("cup-pos").decode(answer.body, validate=False)
        except WireError:
            message = None
        return outcome, message

    async def ensure_signed_in(self) -> None:
        if self.terminal.signed_in:
            return
        outcome, _ = await self.send(self.terminal, self.terminal.start_signin(KeyMode.DOUBLE))
        if not outcome.ok:
            raise _CheckSkipped(f"needs a signed-in terminal, and sign-in 003 failed ({_say(outcome)})")


def _say(outcome: Outcome) -> str:
    if outcome.failure is not None:
        return f"{outcome.failure.value}: {outcome.detail}"
    return f"39 = {outcome.response_code}"


def _expect_code(outcome: Outcome, code: str) -> None:
    if outcome.failure is not None and outcome.failure is not Failure.UNEXPECTED_CODE:
        raise _CheckFailed(_say(outcome))
    if outcome.response_code != code:
        raise _CheckFailed(f"39 = {outcome.response_code}, expected {code}")


async def _signin(run: _Run, mode: KeyMode) -> None:
    t = run.terminal
    outcome, message = await run.send(t, t.start_signin(mode))
    _expect_code(outcome, "00")
    assert message is not None  # an approved, well-formed answer was decoded
    raw = message.get(62)
    if raw is None:
        raise _CheckFailed("approved sign-in without field 62")
    try:
        unwrap_working_keys(mode, run.target.tmk, bytes.fromhex(raw), strict=True)
    except KeyCheckError as exc:
        raise _CheckFailed(exc.reason) from None


async def _check_signin_001(run: _Run) -> None:
    await _signin(run, KeyMode.SINGLE)


async def _check_signin_003(run: _Run) -> None:
    await _signin(run, KeyMode.DOUBLE)


async def _check_signin_004(run: _Run) -> None:
    await _signin(run, KeyMode.DOUBLE_TDK)


async def _check_key_rotation(run: _Run) -> None:
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
    """A sign-in whose body ends inside field 63 (a whole frame, a broken message)."""
    codec = codec_for("cup-pos")
    profile = run.terminal.profile
    fields = {11: "000001", 41: profile.terminal, 42: profile.merchant, 60: "00000001003", 63: "001"}
    body = codec.encode(codec.message("0800", fields))[:-2]
    frame = encode_frame(codec.dialect.framing, body, tpdu=profile.tpdu, header=profile.header)
    t = run.target
    try:
        answer = await exchange_once(t.host, t.port, codec.dialect.framing, frame, t.timeout)
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
        raise _CheckFailed(f"39 = {code}, expected 30 (format error)")


async def _check_unknown_terminal(run: _Run) -> None:
    other = "99999999" if run.terminal.profile.terminal != "99999999" else "99999998"
    t = run.stranger(terminal=other)
    outcome, _ = await run.send(t, t.start_signin())
    _expect_code(outcome, "97")


async def _check_unknown_merchant(run: _Run) -> None:
    profile = run.terminal.profile
    other = "999999999999999" if profile.merchant != "999999999999999" else "999999999999998"
    t = run.stranger(merchant=other)
    outcome, _ = await run.send(t, t.start_signin())
    _expect_code(outcome, "03")


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
)
CHECK_NAMES = tuple(name for name, _, _ in CHECKS)


async def run_conformance(target: ConformanceTarget, only: frozenset[str] | None = None) -> list[CheckResult]:
    """Run the checks in order (or those named in ``only``) and return one result each."""
    profile = TerminalProfile(
        merchant=target.merchant,
        terminal=target.terminal,
        tmk=target.tmk,
        operator=target.operator,
        password=target.password,
    )
    run = _Run(target, VirtualTerminal(profile))
    results: list[CheckResult] = []
    for name, _description, check in CHECKS:
        if only is not None and name not in only:
            continue
        started = time.monotonic()
        try:
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


def write_junit(results: list[CheckResult], path: Path, *, target: str = "") -> None:
    """JUnit XML: one testsuite, one testcase per check (failure / skipped elements)."""
    suite = ET.Element(
        "testsuite",
        name=SUITE,
        tests=str(len(results)),
        failures=str(sum(r.status is CheckStatus.FAILED for r in results)),
        skipped=str(sum(r.status is CheckStatus.SKIPPED for r in results)),
        errors="0",
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    if target:
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="target", value=target)
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"{SUITE}.cup-pos", name=r.name,
                             time=f"{r.seconds:.3f}")
        if r.status is CheckStatus.FAILED:
            failure = ET.SubElement(case, "failure", message=r.reason, type="ConformanceFailure")
            failure.text = f"{describe(r.name)}\n{r.reason}"
        elif r.status is CheckStatus.SKIPPED:
            ET.SubElement(case, "skipped", message=r.reason)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)

