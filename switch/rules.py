"""Response rules: tester-written data that steers how the switch answers a request.

A rule says "when a request looks like this, answer with that code / answer late / say nothing /
hang up". Rules are evaluated in file order and the first whose every condition holds wins; a
request no rule matches is handled normally. This module only decides (`RuleSet.evaluate`); the
switch engine carries the action out. No I/O here besides reading the rules file.

Format (TOML), either a standalone file (`switchsim serve --rules FILE`, which may hold nothing
but `[[rules]]`) or the same `[[rules]]` array inside the switch config:

    [[rules]]
    name = "decline amounts ending in 51"
    match = { mti = "0200", processing_code = "000000", amount_last_digits = "51" }
    action = { respond = "51" }

    [[rules]]
    name = "host too slow for terminal 00000764"
    match = { terminal = "00000764", mti = "0200" }
    action = { delay_ms = 35000 }

    [[rules]]
    name = "swallow pre-auths"
    match = { mti = "0100" }
    action = { drop = true }

Every rule has a `name` (unique, shown in logs and errors), a `match` table and an `action`
table, nothing else. `match = {}` matches every request.

match keys (all optional; a rule matches when every key given holds):
    mti                 "0200"        4 digits, the request MTI
    processing_code     "000000"      6 digits, field 3
    message_type        "22"          2 digits, field 60.1
    amount_eq           100           field 4 equals this, in minor units (100 = 1.00)
    amount_min          100           field 4 >= this (inclusive)
    amount_max          99999         field 4 <= this (inclusive); not with amount_eq
    amount_last_digits  "51"          1-12 digits field 4 ends with (000000001251 ends with 51)
    pan_prefix          "622202"      1-19 digits; the PAN is field 2, else field 35 up to its
                                      separator (D, or = or D in ASCII dialects)
    terminal            "00000764"    8 characters, field 41
    merchant            "848100058126002"  15 characters, field 42
    time_from, time_to  "22:00"       local wall-clock window [from, to), minute precision,
                                      both or neither; from > to wraps midnight ("22:00" to
                                      "06:00" is 22:00:00 up to 05:59:59); from = to is refused
A condition on a field the request does not carry (or carries malformed, such as a field 60 too
short for 60.1 or a track 2 without a separator) does not hold.

action, exactly one of:
    respond = "51"                answer with this field 39 (two of 0-9 A-Z)
    respond = "00", delay_ms = N  the same, N ms late
    delay_ms = N                  handle the request normally, answer N ms late
    drop = true                   never answer (the terminal times out and reverses)
    close = true                  close the connection without answering
delay_ms is 1 to 3,600,000 (an hour), to catch seconds written as milliseconds twice over.

A mistake is a `switch.config.ConfigError` naming file, rule and key:
`rules.toml: rules[1] (host too slow).match.terminal: must be 8 characters, got 7`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import Enum
from operator import itemgetter
from pathlib import Path
from typing import Any

from specs.errors import CodecError
from specs.message import Message
from specs.track2 import parse_track2
from switch.config import ConfigError

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
        if self.kind is ActionKind.DELAY and self.delay_ms == 0:
            raise RuleError("delay_ms", "must be 1 or more")
        if self.kind in (ActionKind.DROP, ActionKind.CLOSE) and self.delay_ms:
            raise RuleError("delay_ms", f"goes with respond or alone, not with {self.kind.value}")


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    match: Match
    action: Action


# -- evaluation --------------------------------------------------------------------------------

# The facts equality conditions compare, computed once per evaluate, by position.
_PROCESSING_CODE, _MESSAGE_TYPE, _TERMINAL, _MERCHANT, _AMOUNT = range(5)
_EQUALITY_SLOTS = (
    ("processing_code", _PROCESSING_CODE),
    ("message_type", _MESSAGE_TYPE),
    ("terminal", _TERMINAL),
    ("merchant", _MERCHANT),
    ("amount_eq", _AMOUNT),
)


def _nothing_to_compare(facts: Sequence[object]) -> None:
    return None


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A rule as the hot loop wants it: the equality conditions as one C-level getter and a
    tuple compare, the rarer range/suffix/prefix/window conditions apart."""

    rule: Rule
    get_equal: Callable[[Sequence[object]], object]
    expected: object
    has_others: bool
    amount_range: tuple[int, int | None] | None
    amount_suffix: str | None
    pan_prefix: str | None
    window: tuple[int, int] | None  # minutes of the day, [start, end), wraps when start > end

    def others_hold(self, amount: int | None, amount_text: str | None, pan: str | None, minute: int | None) -> bool:
        if self.amount_range is not None:
            low, high = self.amount_range
            if amount is None or amount < low or (high is not None and amount > high):
                return False
        if self.amount_suffix is not None and (amount_text is None or not amount_text.endswith(self.amount_suffix)):
            return False
        if self.pan_prefix is not None and (pan is None or not pan.startswith(self.pan_prefix)):
            return False
        if self.window is not None:
            if minute is None:
                return False
            start, end = self.window
            inside = start <= minute < end if start < end else (minute >= start or minute < end)
            if not inside:
                return False
        return True


@dataclass(frozen=True, slots=True)
class _Plan:
    """The rules that can match one MTI, in order, and which costly facts they need."""

    rules: tuple[_Compiled, ...]
    message_type: bool
    amount: bool
    pan: bool
    minute: bool


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    _by_mti: Mapping[str, _Plan] = field(init=False, repr=False, compare=False)
    _any_mti: _Plan = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rules = tuple(self.rules)
        object.__setattr__(self, "rules", rules)
        compiled = [_compile(rule) for rule in rules]
        mtis = {rule.match.mti for rule in rules if rule.match.mti is not None}
        # One plan per MTI a rule names: a request only walks the rules that can match its MTI.
        by_mti = {mti: _plan([c for c in compiled if c.rule.match.mti in (None, mti)]) for mti in mtis}
        object.__setattr__(self, "_by_mti", by_mti)
        object.__setattr__(self, "_any_mti", _plan([c for c in compiled if c.rule.match.mti is None]))

    def __len__(self) -> int:
        return len(self.rules)

    def evaluate(self, message: Message, now: datetime) -> Rule | None:
        """The first rule whose conditions all hold for `message` at local time `now`, or None.

        `now` is read only when a rule has a time window; an aware datetime is converted to
        the local zone first. Never raises on a decoded message, whatever its content.
        """
        plan = self._by_mti.get(message.mti, self._any_mti)
        if not plan.rules:
            return None
        values = message.fields
        amount_text = values.get(4)
        amount = _amount(amount_text) if plan.amount else None
        pan = _pan(values) if plan.pan else None
        minute = _minute_of_day(now) if plan.minute else None
        facts = (
            values.get(3),
            _message_type(message) if plan.message_type else None,
            values.get(41),
            values.get(42),
            amount,
        )
        for compiled in plan.rules:
            if compiled.get_equal(facts) != compiled.expected:
                continue
            if not compiled.has_others or compiled.others_hold(amount, amount_text, pan, minute):
                return compiled.rule
        return None


def _compile(rule: Rule) -> _Compiled:
    match = rule.match
    slots = [(slot, getattr(match, key)) for key, slot in _EQUALITY_SLOTS if getattr(match, key) is not None]
    get_equal: Callable[[Sequence[object]], object]
    expected: object
    if not slots:
        get_equal, expected = _nothing_to_compare, None
    elif len(slots) == 1:
        get_equal, expected = itemgetter(slots[0][0]), slots[0][1]
    else:
        get_equal = itemgetter(*(slot for slot, _ in slots))
        expected = tuple(value for _, value in slots)
    ranged = match.amount_min is not None or match.amount_max is not None
    start, end = _minutes("time_from", match.time_from), _minutes("time_to", match.time_to)
    window = (start, end) if start is not None and end is not None else None
    return _Compiled(
        rule=rule,
        get_equal=get_equal,
        expected=expected,
        has_others=ranged or match.amount_last_digits is not None or match.pan_prefix is not None or window is not None,
        amount_range=(match.amount_min or 0, match.amount_max) if ranged else None,
        amount_suffix=match.amount_last_digits,
        pan_prefix=match.pan_prefix,
        window=window,
    )


def _plan(rules: Sequence[_Compiled]) -> _Plan:
    def uses(key: str) -> bool:
        return any(getattr(c.rule.match, key) is not None for c in rules)

    return _Plan(
        rules=tuple(rules),
        message_type=uses("message_type"),
        amount=uses("amount_eq") or uses("amount_min") or uses("amount_max"),
        pan=uses("pan_prefix"),
        minute=uses("time_from"),
    )


def _message_type(message: Message) -> str | None:
    try:
        return message.sub("60.1")
    except CodecError:
        return None  # a field 60 too short to hold its subfields has no message type


def _amount(text: str | None) -> int | None:
    # isascii+isdigit: int() would also take " 12", "1_000" and non-ASCII digits
    if text is None or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def _pan(values: Mapping[int, str]) -> str | None:
    pan = values.get(2)
    if pan is not None:
        return pan
    track = values.get(35)
    parts = parse_track2(track) if track is not None else None
    return parts.pan if parts is not None else None


def _minute_of_day(now: datetime) -> int:
    if now.tzinfo is not None:
        now = now.astimezone()
    return now.hour * 60 + now.minute


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


# -- loading -----------------------------------------------------------------------------------

_MATCH_KEYS = frozenset(f.name for f in fields(Match))
_ACTION_KEYS = ("respond", "delay_ms", "drop", "close")


def load_rules(path: str | Path) -> RuleSet:
    """A standalone rules file: nothing but a `[[rules]]` array."""
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(source, "file", exc.strerror or "cannot read") from None
    except UnicodeDecodeError:
        raise ConfigError(source, "file", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "file", f"not valid TOML: {exc}") from None
    unknown = set(data) - {"rules"}
    if unknown:
        raise ConfigError(source, "top level", f"unknown keys {sorted(unknown)}: a rules file holds only [[rules]]")
    return parse_rules(data.get("rules", []), source)


def parse_rules(data: list[Any], source: str = "<rules>") -> RuleSet:
    """The `[[rules]]` array of a rules file or of the switch config, as parsed TOML."""
    if not isinstance(data, list):
        raise ConfigError(source, "rules", "must be an array of tables ([[rules]])")
    seen: dict[str, int] = {}
    rules = []
    for index, raw in enumerate(data):
        rule = _rule(source, index, raw)
        if rule.name in seen:
            raise ConfigError(source, f"rules[{index}].name", f"{rule.name!r} is already rules[{seen[rule.name]}]")
        seen[rule.name] = index
        rules.append(rule)
    return RuleSet(tuple(rules))


def _rule(source: str, index: int, raw: object) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(source, where, "must be a table with name, match and action")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(source, f"{where}.name", "must be non-empty text")
    where = f"{where} ({name})"
    unknown = sorted(set(raw) - {"name", "match", "action"})
    if unknown:
        raise ConfigError(source, f"{where}.{unknown[0]}", "unknown key (a rule has name, match and action)")
    for key in ("match", "action"):
        if not isinstance(raw.get(key), dict):
            raise ConfigError(source, f"{where}.{key}", 'must be a table, e.g. match = { mti = "0200" }')
    try:
        return Rule(name, _match(raw["match"]), _action(raw["action"]))
    except _PartError as exc:
        key = f".{exc.error.key}" if exc.error.key else ""
        raise ConfigError(source, f"{where}.{exc.part}{key}", exc.error.problem) from None


class _PartError(Exception):
    def __init__(self, part: str, error: RuleError) -> None:
        super().__init__(part, error)
        self.part = part
        self.error = error


def _match(raw: Mapping[str, Any]) -> Match:
    unknown = sorted(set(raw) - _MATCH_KEYS)
    if unknown:
        known = ", ".join(sorted(_MATCH_KEYS))
        raise _PartError("match", RuleError(unknown[0], f"unknown match key (known: {known})"))
    try:
        return Match(**raw)
    except RuleError as exc:
        raise _PartError("match", exc) from None


def _action(raw: Mapping[str, Any]) -> Action:
    try:
        return _build_action(raw)
    except RuleError as exc:
        raise _PartError("action", exc) from None


def _build_action(raw: Mapping[str, Any]) -> Action:
    unknown = sorted(set(raw) - set(_ACTION_KEYS))
    if unknown:
        raise RuleError(unknown[0], f"unknown action key (known: {', '.join(_ACTION_KEYS)})")
    for flag in ("drop", "close"):
        if flag in raw and raw[flag] is not True:
            raise RuleError(flag, f"must be true (leave {flag} out otherwise)")
    chosen = [key for key in ("respond", "drop", "close") if key in raw]
    if len(chosen) > 1:
        raise RuleError(chosen[1], f"cannot be combined with {chosen[0]}: an action does one thing")
    delay = raw.get("delay_ms", 0)
    if "delay_ms" in raw and (not isinstance(delay, int) or isinstance(delay, bool) or delay < 1):
        raise RuleError("delay_ms", f"must be a whole number of milliseconds, 1 or more, got {delay!r}")
    if not chosen:
        if "delay_ms" not in raw:
            raise RuleError("", "needs one of respond, delay_ms, drop, close")
        return Action(ActionKind.DELAY, delay_ms=delay)
    kind = {"respond": ActionKind.RESPOND, "drop": ActionKind.DROP, "close": ActionKind.CLOSE}[chosen[0]]
    return Action(kind, code=raw.get("respond"), delay_ms=delay)
