"""The rule parts validate themselves: an action's parts must agree, a match shows no PAN, and
a time window is minutes of the day."""

from __future__ import annotations

from typing import Any

import pytest

from switch.rules import Action, ActionKind, Match, RuleError
from tests.switch.rulecases import PAN

# -- actions and the data model ----------------------------------------------------------------


def test_action_kinds_hold_code_and_delay() -> None:
    assert Action(ActionKind.RESPOND, "A0", 2500).delay_ms == 2500
    assert Action(ActionKind.DELAY, delay_ms=35000).code is None


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"kind": ActionKind.RESPOND}, "respond"),
        ({"kind": ActionKind.RESPOND, "code": "5"}, "respond"),
        ({"kind": ActionKind.RESPOND, "code": "a0"}, "respond"),
        ({"kind": ActionKind.DROP, "code": "51"}, "respond"),
        ({"kind": ActionKind.DELAY}, "delay_ms"),
        ({"kind": ActionKind.CLOSE, "delay_ms": 10}, "delay_ms"),
        ({"kind": ActionKind.RESPOND, "code": "00", "delay_ms": -1}, "delay_ms"),
        ({"kind": ActionKind.RESPOND, "code": "00", "delay_ms": 3_600_001}, "delay_ms"),
    ],
)
def test_action_refuses_inconsistent_parts(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(RuleError) as caught:
        Action(**kwargs)
    assert caught.value.key == key


def test_match_repr_masks_a_long_pan_prefix() -> None:
    shown = repr(Match(pan_prefix=PAN, mti="0200"))
    assert PAN not in shown and "622202" in shown and "0200" in shown


def test_match_window_is_minutes_of_the_day_or_none() -> None:
    assert Match(time_from="22:00", time_to="06:30").window == (22 * 60, 6 * 60 + 30)
    assert Match(time_from="00:00", time_to="00:01").window == (0, 1)
    assert Match().window is None


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"time_from": "22:00"}, "time_to"),
        ({"time_to": "06:00"}, "time_from"),
        ({"time_from": "07:00", "time_to": "07:00"}, "time_to"),
        ({"time_from": "24:00", "time_to": "01:00"}, "time_from"),
        ({"mti": "020"}, "mti"),
        ({"amount_eq": 5, "amount_max": 9}, "amount_eq"),
        ({"amount_min": 9, "amount_max": 5}, "amount_min"),
        ({"terminal": "0000076"}, "terminal"),
    ],
)
def test_match_refuses_what_cannot_be_evaluated(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(RuleError) as caught:
        Match(**kwargs)
    assert caught.value.key == key
