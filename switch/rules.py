"""Response rules, the data: a rule says "when a request looks like this, answer with that code /
answer late / say nothing / hang up". Every part validates itself when built and names the key at
fault (`RuleError`), so a rule that exists is a rule that can be evaluated.

What each match key and action means, and the TOML a tester writes them in, is in
`switch/rulefile.py`; `switch/ruleset.py` decides which rule a request meets. This module holds
no I/O and no evaluation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from enum import Enum

MAX_DELAY_MS = 3_600_000

_DIGITS = re.compile(r"[0-9]+")
_CODE = re.compile(r"[0-9A-Z]{2}")
_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


class RuleError(ValueError):
    """A rule part that cannot be built: `key` is the offending key as it is written in TOML."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class ActionKind(Enum):
    RESPOND = "respond"  # answer with `code`, after `delay_ms` when given
    DELAY = "delay"  # handle normally, answer `delay_ms` late
    DROP = "drop"  # never answer
    CLOSE = "close"  # close the connection without answering
    SCRIPT = "script"  # handle normally, add an issuer script to a chip answer's field 55


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """Conditions on a request; None means "any". Validates itself (RuleError names the key)."""

    mti: str | None = None
    processing_code: str | None = None
    message_type: str | None = None
    amount_eq: int | None = None
    amount_min: int | None = None
    amount_max: int | None = None
    amount_last_digits: str | None = None
    pan_prefix: str | None = None  # may be a whole test PAN: masked in repr
    terminal: str | None = None
    merchant: str | None = None
    time_from: str | None = None
    time_to: str | None = None

    def __post_init__(self) -> None:
        _digits("mti", self.mti, 4, 4)
        _digits("processing_code", self.processing_code, 6, 6)
        _digits("message_type", self.message_type, 2, 2)
        _digits("amount_last_digits", self.amount_last_digits, 1, 12)
        _digits("pan_prefix", self.pan_prefix, 1, 19, show=False)
        _text("terminal", self.terminal, 8)
        _text("merchant", self.merchant, 15)
        for key in ("amount_eq", "amount_min", "amount_max"):
            value = getattr(self, key)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise RuleError(key, f"must be an integer amount in minor units, got {type(value).__name__}")
            if not 0 <= value <= 999_999_999_999:
                raise RuleError(key, f"must be 0 to 999999999999 (12 digits), got {value}")
        if self.amount_eq is not None and (self.amount_min is not None or self.amount_max is not None):
            raise RuleError("amount_eq", "cannot be combined with amount_min or amount_max")
        if self.amount_min is not None and self.amount_max is not None and self.amount_min > self.amount_max:
            raise RuleError("amount_min", f"{self.amount_min} is above amount_max {self.amount_max}")
        start, end = _minutes("time_from", self.time_from), _minutes("time_to", self.time_to)
        if (start is None) != (end is None):
            missing = "time_to" if end is None else "time_from"
            raise RuleError(missing, "time_from and time_to go together")
        if start is not None and start == end:
            raise RuleError("time_to", "equals time_from: leave both out to match at any time")

    @property
    def window(self) -> tuple[int, int] | None:
        """The time window as minutes of the day, [start, end); it wraps when start > end."""
        start, end = _minutes("time_from", self.time_from), _minutes("time_to", self.time_to)
        return (start, end) if start is not None and end is not None else None

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.pan_prefix is not None:
            # a BIN shows; digits past it may be a whole test PAN
            shown["pan_prefix"] = self.pan_prefix[:6] + "*" * (len(self.pan_prefix) - 6)
        inner = ", ".join(f"{k}={v!r}" for k, v in shown.items() if v is not None)
        return f"Match({inner})"


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    code: str | None = None  # field 39, for RESPOND
    delay_ms: int = 0  # for DELAY, and optionally RESPOND
    script: bytes = b""  # for SCRIPT: the encoded 71/72 template

    def __post_init__(self) -> None:
        if not isinstance(self.delay_ms, int) or isinstance(self.delay_ms, bool):
            raise RuleError("delay_ms", f"must be an integer, got {type(self.delay_ms).__name__}")
        if not 0 <= self.delay_ms <= MAX_DELAY_MS:
            raise RuleError("delay_ms", f"must be 0 to {MAX_DELAY_MS} ms, got {self.delay_ms}")
        if self.kind is ActionKind.RESPOND:
            if not isinstance(self.code, str) or not _CODE.fullmatch(self.code):
                raise RuleError("respond", f"must be a two-character response code (0-9, A-Z), got {self.code!r}")
            return
        if self.code is not None:
            raise RuleError("respond", f"a response code goes only with respond, not {self.kind.value}")
        if (self.kind is ActionKind.SCRIPT) != bool(self.script):
            raise RuleError("issuer_script", "an issuer script goes only with issuer_script")
        if self.kind is ActionKind.DELAY and self.delay_ms == 0:
            raise RuleError("delay_ms", "must be 1 or more")
        if self.kind in (ActionKind.DROP, ActionKind.CLOSE, ActionKind.SCRIPT) and self.delay_ms:
            raise RuleError("delay_ms", f"goes with respond or alone, not with {self.kind.value}")


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    match: Match
    action: Action


# -- validation helpers ------------------------------------------------------------------------


def _digits(key: str, value: object, low: int, high: int, *, show: bool = True) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not _DIGITS.fullmatch(value) or not low <= len(value) <= high:
        size = f"{low}" if low == high else f"{low} to {high}"
        got = f", got {value!r}" if show else ""
        raise RuleError(key, f"must be {size} digits{got}")


def _text(key: str, value: object, length: int) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise RuleError(key, f"must be text, got {type(value).__name__}")
    if len(value) != length:
        raise RuleError(key, f"must be {length} characters, got {len(value)}")


def _minutes(key: str, value: object) -> int | None:
    if value is None:
        return None
    found = _HHMM.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        raise RuleError(key, f'must be "HH:MM" (00:00 to 23:59), got {value!r}')
    return int(found[1]) * 60 + int(found[2])
