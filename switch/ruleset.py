"""Which response rule a request meets: the first, in file order, whose every condition holds.

`RuleSet.evaluate` runs for every request when rules are loaded, so the rules are compiled once:
a plan per MTI a rule names, the equality conditions as one getter and a tuple compare, and only
the facts some rule needs (amount, PAN, message type, minute of the day) computed per request.
A request no rule matches is handled normally; the engine carries a rule's action out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter

from specs.errors import CodecError
from specs.message import Message
from specs.track2 import parse_track2
from switch.rules import Rule

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
    window = match.window
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
