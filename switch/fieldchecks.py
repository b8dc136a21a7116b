"""Field checks: what a request may get wrong and still be served, each with its reason in words.

A host can answer a request whose 53 does not match the session's keys, whose batch (60.2) or
currency (49) is not the host's, whose 60.3 means nothing for the message, whose entry mode
(22) disagrees with the card data it carries, whose STAN went backwards, or a void naming one
transaction at 37 and another at 61: the request is still understood. By default the switch
answers it normally and keeps each finding as a warning with the exchange (`switchsim trace`
shows and counts them); with `[checks] strict = true` (or `serve --strict`) the first finding is
a refusal 30 with its reason. docs/diagnostics.md lists the checks and their reason texts.

Sans-I/O apart from the store lookups (the host's batch, the last transaction, a void's
original); never a value that is a secret: no PAN, track, PIN block or key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from specs.catalogue import MessageKind
from specs.catalogue_loader import catalogue_for
from specs.message import Message
from specs.response import ResponseCode
from switch.context import Exchange, Result, Services
from switch.records import SessionKeys, Terminal

_FINANCIAL_MTIS = frozenset({"0100", "0200", "0220", "0320", "0400", "0500"})
_REPEATS_STAN = frozenset({"reversal", "batch_upload"})  # these carry their original's STAN
_OPERATOR_KINDS = frozenset({"operator_signin", "password_change"})
_WITH_ORIGINAL = frozenset({"void", "refund"})
_SWIPED, _MANUAL, _FALLBACK = ("02", "90"), ("01",), ("80",)
_CHIP = ("05", "07", "95", "98")
_STAN_WRAP = 999_000  # a STAN above this followed by a small one has wrapped (999999 -> 000001)


class Check(StrEnum):
    """The field checks, by the name docs/diagnostics.md and `trace` use."""

    SECURITY_CONTROL = "security_control"  # 53 against 52 and the session's keys
    BATCH = "batch"  # 60.2 against the host's batch
    CURRENCY = "currency"  # 49 against [checks] currency
    NETWORK_CODE = "network_code"  # 60.3 of a request whose kind has none
    ENTRY_MODE = "entry_mode"  # 22 against 2/35/14/52/55
    STAN = "stan"  # a STAN lower than the terminal's last one
    ORIGINAL = "original"  # a void's or refund's 37/61.3 against the original at 61


@dataclass(frozen=True, slots=True)
class Finding:
    check: Check
    reason: str

    def __str__(self) -> str:
        return f"{self.check.value}: {self.reason}"


@dataclass(frozen=True, slots=True)
class _Request:
    services: Services
    message: Message
    kind: MessageKind
    terminal: Terminal
    session: SessionKeys | None


async def inspect(
    services: Services, ex: Exchange, kind: MessageKind, terminal: Terminal, session: SessionKeys | None
) -> list[Finding]:
    """Every finding of every check on a request about to be served, in the order of `Check`
    (the checks that read the store come last)."""
    request = _Request(services, ex.message, kind, terminal, session)
    found: list[Finding] = []
    for check, run in _CHECKS:
        found += [Finding(check, reason) for reason in run(request)]
    for check, look in _STORE_CHECKS:
        found += [Finding(check, reason) for reason in await look(request)]
    return found


def apply(services: Services, findings: list[Finding]) -> Result | None:
    """The refusal strict checking makes of the first finding, or None (serve, with warnings)."""
    if not findings or not services.config.strict_checks:
        return None
    first = findings[0]
    return Result(ResponseCode.FORMAT_ERROR, reason=f"strict check {first}", warnings=_texts(findings))


def with_warnings(result: Result, findings: list[Finding]) -> Result:
    if not findings:
        return result
    return result._replace(warnings=result.warnings + _texts(findings))


def _texts(findings: list[Finding]) -> tuple[str, ...]:
    return tuple(str(f) for f in findings)


# -- the checks ----------------------------------------------------------------------------------


def _key_length(key_lmk: str) -> int:
    return 8 if len(key_lmk) == 16 else 16 if len(key_lmk) == 33 else 24


def _security_control(r: _Request) -> list[str]:
    block, control = r.message.get(52), r.message.get(53)
    if block is None and control is None:
        return []
    if control is None:
        return ["52 (PIN block) without 53: 53 says how the block was made (format, algorithm)"]
    if block is None:
        return [f"53 = {control} without 52: there is no PIN block for it to describe"]
    found = []
    fmt, algorithm, tracks = control[0], control[1], control[2]
    if fmt not in "12":
        found.append(f"53.1 = {fmt}: the PIN block format is 1 (format 0 without the PAN) or 2 (with the PAN)")
    elif fmt == "2" and r.kind.name in _OPERATOR_KINDS:
        found.append("53.1 = 2 (format 0 with the PAN) on an operator password block, which has no PAN (1)")
    if r.session is not None:
        length = _key_length(r.session.pik_lmk)
        signin = f"sign-in {r.session.mode}"
        if algorithm == "6" and length == 8:
            found.append(f"53.2 = 6 (double-length 3DES) but the session's PIK is single-length ({signin})")
        elif algorithm == "0" and length > 8:
            found.append(f"53.2 = 0 (single DES) but the session's PIK is double-length ({signin})")
        elif algorithm not in "06":
            found.append(f"53.2 = {algorithm}: the algorithm is 0 (single DES) or 6 (double-length 3DES)")
        if tracks == "1" and r.session.tdk_lmk is None:
            found.append(f"53.3 = 1 (tracks encrypted with the TDK) but the session has no TDK ({signin})")
    return found


def _batch(r: _Request) -> list[str]:
    batch = r.message.sub("60.2")
    if r.message.mti not in _FINANCIAL_MTIS or batch is None or batch == r.terminal.batch:
        return []
    return [
        f"60.2 = {batch} is not the host's batch {r.terminal.batch} "
        "(the batch the last sign-in answer or settlement gave the terminal)"
    ]


def _currency(r: _Request) -> list[str]:
    currency = r.message.get(49)
    wanted = r.services.config.currency
    if currency is None or currency == wanted:
        return []
    return [f"49 = {currency} is not the switch's currency {wanted} ([checks] currency)"]


def _network_code(r: _Request) -> list[str]:
    catalogue = catalogue_for(r.message.dialect)
    if r.kind.network_codes or "." not in catalogue.network_code_field:
        return []
    code = catalogue.network_code(r.message)
    expected = catalogue.default_network_code
    if code is None or expected is None or code == expected:
        return []
    return [f"60.3 = {code} has no meaning in a {r.kind.name} (its requests send {expected})"]


def _entry_mode(r: _Request) -> list[str]:
    mode = r.message.get(22)
    if mode is None or r.message.mti not in _FINANCIAL_MTIS:
        return []
    has = {n: n in r.message for n in (2, 14, 35, 52, 55)}
    how, pin = mode[:2], mode[2:3]
    found = []
    if how in _SWIPED + _FALLBACK and not has[35]:
        found.append(f"22 = {mode} says the card was swiped, but there is no track 2 (35)")
    elif how in _MANUAL:
        if has[35]:
            found.append(f"22 = {mode} says the PAN was keyed, but the request carries track 2 (35)")
        if not has[2]:
            found.append(f"22 = {mode} says the PAN was keyed, but there is no PAN (2)")
        elif not has[14]:
            found.append(f"22 = {mode} says the PAN was keyed, but there is no expiry date (14)")
    elif how in _CHIP and not has[55]:
        found.append(f"22 = {mode} says the card was read by its chip, but there is no ICC data (55)")
    if pin == "1" and not has[52] and r.kind.name not in _REPEATS_STAN:
        found.append(f"22 = {mode} says a PIN was entered, but there is no PIN block (52)")
    elif pin == "2" and has[52]:
        found.append(f"22 = {mode} says no PIN was entered, but the request carries a PIN block (52)")
    return found


async def _stan(r: _Request) -> list[str]:
    stan = r.message.get(11)
    if r.message.mti not in _FINANCIAL_MTIS or r.kind.name in _REPEATS_STAN or not stan or not stan.isdigit():
        return []
    last = await r.services.store.last_transaction(r.terminal.id)
    if last is None or not last.stan.isdigit():
        return []
    new, old = int(stan), int(last.stan)
    if new >= old or (old > _STAN_WRAP and new < 1000):
        return []
    return [f"STAN {stan} went backwards: the terminal's last transaction had STAN {last.stan} ({last.kind.value})"]


async def _original(r: _Request) -> list[str]:
    if r.kind.name not in _WITH_ORIGINAL:
        return []
    batch, stan = r.message.sub("61.1"), r.message.sub("61.2")
    if not batch or not stan:
        return []
    original = await r.services.store.find_transaction(r.terminal.id, batch, stan)
    if original is None:
        return []  # answered 25 with its own reason
    found = []
    rrn = r.message.get(37)
    if rrn is not None and rrn != original.rrn:
        found.append(
            f"37 = {rrn} names another transaction than 61 (batch {batch}, STAN {stan}), whose RRN is {original.rrn}"
        )
    date = r.message.sub("61.3")
    if date and date != original.date:
        found.append(f"61.3 = {date} but the original (batch {batch}, STAN {stan}) is of {original.date}")
    return found


_CHECKS: tuple[tuple[Check, Callable[[_Request], list[str]]], ...] = (
    (Check.SECURITY_CONTROL, _security_control),
    (Check.BATCH, _batch),
    (Check.CURRENCY, _currency),
    (Check.NETWORK_CODE, _network_code),
    (Check.ENTRY_MODE, _entry_mode),
)
_STORE_CHECKS: tuple[tuple[Check, Callable[[_Request], Awaitable[list[str]]]], ...] = (
    (Check.STAN, _stan),
    (Check.ORIGINAL, _original),
)

#: Each check with what it looks at, for docs/diagnostics.md (tests/switch/test_fieldchecks.py
#: keeps the page and this table in step).
DESCRIPTIONS: dict[Check, str] = {
    Check.SECURITY_CONTROL: "53 against 52 (one without the other), 53.1 (format 1 or 2; 1 for operator "
    "passwords), 53.2 against the session PIK's length, 53.3 against the session's TDK",
    Check.BATCH: "60.2 of a financial request against the host's batch of the terminal",
    Check.CURRENCY: "49 against `[checks] currency` (default 156)",
    Check.NETWORK_CODE: "60.3 of a request whose kind has no network code (financial: 000)",
    Check.ENTRY_MODE: "22 against 35 (swiped), 2 and 14 (keyed), 55 (chip), 52 (PIN entered or not)",
    Check.STAN: "11 of a financial request against the terminal's last transaction (wrap at 999999 allowed)",
    Check.ORIGINAL: "37 and 61.3 of a void or refund against the original transaction 61 names",
}
