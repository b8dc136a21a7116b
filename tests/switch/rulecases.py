"""The requests and one-rule sets the response-rule tests share, written by hand."""

from __future__ import annotations

from datetime import datetime

from specs.codec import codec_for
from specs.message import Message
from switch.rules import Action, ActionKind, Match, Rule
from switch.ruleset import RuleSet

CODEC = codec_for("cup-pos")
NOON = datetime(2024, 3, 1, 12, 0)
PAN = "6222021234567890123"

PURCHASE: dict[int, str] = {
    2: PAN,
    3: "000000",
    4: "000000001251",  # 12.51
    11: "000123",
    41: "00000764",
    42: "848100058126002",
    49: "156",
    60: "22000001000",  # 60.1 = 22, batch 000001, 60.3 = 000
}


def purchase(mti: str = "0200", **changes: str | None) -> Message:
    fields = dict(PURCHASE)
    for key, value in changes.items():
        number = int(key.removeprefix("f"))
        if value is None:
            fields.pop(number, None)
        else:
            fields[number] = value
    return CODEC.message(mti, fields)


def one(match: Match, name: str = "r") -> RuleSet:
    return RuleSet((Rule(name, match, Action(ActionKind.DROP)),))


def matches(match: Match, message: Message, now: datetime = NOON) -> bool:
    return one(match).evaluate(message, now) is not None
