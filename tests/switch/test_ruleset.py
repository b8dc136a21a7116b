"""RuleSet.evaluate: every match key, time windows, first match wins, and never raising.
Expected outcomes are worked by hand from the rule and the message."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specs.codec import codec_for
from specs.message import Message
from switch.rules import Action, ActionKind, Match, Rule
from switch.ruleset import RuleSet
from tests.specs.strategies import messages
from tests.switch.rulecases import CODEC, NOON, PAN, PURCHASE, matches, purchase

# -- each match key ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("match", "hit", "miss"),
    [
        (Match(mti="0200"), purchase("0200"), purchase("0100")),
        (Match(processing_code="000000"), purchase(), purchase(f3="310000")),
        (Match(message_type="22"), purchase(), purchase(f60="23000001000")),
        (Match(amount_eq=1251), purchase(), purchase(f4="000000001250")),
        (Match(amount_eq=1251), purchase(), purchase(f4=None)),
        (Match(amount_min=1251), purchase(), purchase(f4="000000001250")),
        (Match(amount_max=1251), purchase(), purchase(f4="000000001252")),
        (Match(amount_min=1000, amount_max=2000), purchase(f4="000000002000"), purchase(f4="000000002001")),
        (Match(amount_min=1000, amount_max=2000), purchase(f4="000000001000"), purchase(f4="000000000999")),
        (Match(amount_last_digits="51"), purchase(), purchase(f4="000000001215")),
        (Match(amount_last_digits="51"), purchase(), purchase(f4=None)),
        (Match(amount_last_digits="000000001251"), purchase(), purchase(f4="000000011251")),
        (Match(pan_prefix="622202"), purchase(), purchase(f2="6222031234567890123")),
        (Match(pan_prefix="622202"), purchase(), purchase(f2=None)),
        (Match(terminal="00000764"), purchase(), purchase(f41="00000765")),
        (Match(merchant="848100058126002"), purchase(), purchase(f42="848100058126003")),
    ],
)
def test_match_key_holds_on_its_field_only(match: Match, hit: Message, miss: Message) -> None:
    assert matches(match, hit)
    assert not matches(match, miss)


def test_match_pan_prefix_reads_track2_up_to_the_separator_when_field2_is_absent() -> None:
    pan16 = "6222021234567890"
    from_track = purchase(f2=None, f35=pan16 + "D2512101")
    assert matches(Match(pan_prefix="622202"), from_track)
    assert matches(Match(pan_prefix=pan16), from_track)
    # the expiry after D is not part of the PAN
    assert not matches(Match(pan_prefix=pan16 + "2"), from_track)


def test_match_pan_prefix_prefers_field2_over_track2() -> None:
    both = purchase(f35="4000001234567899D2512101")
    assert matches(Match(pan_prefix="622202"), both)
    assert not matches(Match(pan_prefix="400000"), both)


@pytest.mark.parametrize("separator", ["=", "D"])
def test_match_pan_prefix_reads_an_ascii_track2_with_either_separator(separator: str) -> None:
    pan16 = "6222021234567890"
    codec = codec_for("iso87-ascii")
    message = codec.message("0200", {3: "000000", 4: "1251", 11: "1", 35: pan16 + separator + "2512101"})
    assert matches(Match(pan_prefix="622202"), message)
    assert matches(Match(pan_prefix=pan16), message)
    assert not matches(Match(pan_prefix=pan16 + "2"), message)


def test_match_pan_prefix_misses_a_track2_without_separator() -> None:
    assert not matches(Match(pan_prefix="622202"), purchase(f2=None, f35=PAN))


def test_match_message_type_misses_when_field60_is_malformed() -> None:
    # Message.build skips the codec's checks, as a decode with validate=False would
    short60 = Message.build(CODEC.dialect, "0200", {**PURCHASE, 60: "2200"})
    assert not matches(Match(message_type="22"), short60)
    assert matches(Match(mti="0200"), short60)


def test_match_amount_misses_a_non_numeric_amount() -> None:
    odd = Message.build(CODEC.dialect, "0200", {**PURCHASE, 4: "00000000_251"})
    assert not matches(Match(amount_min=0), odd)
    assert not matches(Match(amount_eq=251), odd)


def test_match_empty_matches_every_request() -> None:
    assert matches(Match(), purchase())
    assert matches(Match(), purchase("0800", f4=None, f2=None))


# -- time windows ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hour", "minute", "inside"),
    [(9, 0, True), (16, 59, True), (17, 0, False), (8, 59, False), (0, 0, False)],
)
def test_time_window_within_a_day_includes_start_excludes_end(hour: int, minute: int, inside: bool) -> None:
    now = datetime(2024, 3, 1, hour, minute, 30)
    assert matches(Match(time_from="09:00", time_to="17:00"), purchase(), now) is inside


@pytest.mark.parametrize(
    ("hour", "minute", "inside"),
    [
        (22, 0, True),
        (23, 59, True),
        (0, 0, True),
        (5, 59, True),
        (6, 0, False),
        (12, 0, False),
        (21, 59, False),
    ],
)
def test_time_window_wraps_midnight(hour: int, minute: int, inside: bool) -> None:
    now = datetime(2024, 3, 1, hour, minute, 59)
    assert matches(Match(time_from="22:00", time_to="06:00"), purchase(), now) is inside


@pytest.fixture
def shanghai_time() -> Iterator[None]:
    # POSIX TZ string: UTC+8 without needing tzdata
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "CST-8")
        time.tzset()
        yield
    time.tzset()


@pytest.mark.usefixtures("shanghai_time")
def test_time_window_reads_an_aware_now_in_local_time() -> None:
    window = Match(time_from="22:00", time_to="23:00")
    # 14:30 UTC is 22:30 in UTC+8
    assert matches(window, purchase(), datetime(2024, 3, 1, 14, 30, tzinfo=UTC))
    assert not matches(window, purchase(), datetime(2024, 3, 1, 22, 30, tzinfo=UTC))


# -- combinations and order --------------------------------------------------------------------


def test_combination_needs_every_condition() -> None:
    match = Match(
        mti="0200",
        processing_code="000000",
        message_type="22",
        amount_last_digits="51",
        pan_prefix="622202",
        terminal="00000764",
        time_from="08:00",
        time_to="20:00",
    )
    assert matches(match, purchase())
    for spoiled in (
        purchase("0220"),
        purchase(f3="200000"),
        purchase(f60="25000001000"),
        purchase(f4="000000001250"),
        purchase(f2="4000001234567899"),
        purchase(f41="00000001"),
    ):
        assert not matches(match, spoiled)
    assert not matches(match, purchase(), datetime(2024, 3, 1, 20, 0))


def test_amount_range_with_other_keys() -> None:
    match = Match(mti="0200", amount_min=1000, amount_max=5000, amount_last_digits="1")
    assert matches(match, purchase(f4="000000004001"))
    assert not matches(match, purchase(f4="000000004000"))
    assert not matches(match, purchase(f4="000000005001"))


def _rule(name: str, **match: Any) -> Rule:
    return Rule(name, Match(**match), Action(ActionKind.RESPOND, "05"))


def test_evaluate_first_matching_rule_wins() -> None:
    rules = RuleSet(
        (
            _rule("first", terminal="00000001"),
            _rule("second", mti="0200"),
            _rule("third", mti="0200", amount_eq=1251),
        )
    )
    assert rules.evaluate(purchase(), NOON) == rules.rules[1]
    assert rules.evaluate(purchase(f41="00000001"), NOON) == rules.rules[0]
    assert rules.evaluate(purchase("0100"), NOON) is None


def test_evaluate_keeps_file_order_across_rules_with_and_without_mti() -> None:
    rules = RuleSet(
        (
            _rule("any mti, big amounts", amount_min=100_000),
            _rule("purchases", mti="0200", processing_code="000000"),
            _rule("any mti, terminal 764", terminal="00000764"),
            _rule("pre-auths", mti="0100"),
        )
    )
    names = [r.name for r in rules.rules]
    assert rules.evaluate(purchase(f4="000000100000"), NOON) == rules.rules[0]
    assert rules.evaluate(purchase(), NOON) == rules.rules[1]
    assert rules.evaluate(purchase("0400"), NOON) == rules.rules[2]
    assert rules.evaluate(purchase("0100"), NOON) == rules.rules[2]
    assert rules.evaluate(purchase("0100", f41="00000001"), NOON) == rules.rules[3]
    assert rules.evaluate(purchase("0400", f41="00000001"), NOON) is None
    assert names == ["any mti, big amounts", "purchases", "any mti, terminal 764", "pre-auths"]


def test_evaluate_empty_ruleset_matches_nothing() -> None:
    assert RuleSet().evaluate(purchase(), NOON) is None
    assert len(RuleSet()) == 0


# -- never raises ------------------------------------------------------------------------------

EVERY_KEY = RuleSet(
    (
        _rule("a", mti="0200", processing_code="000000", message_type="22", amount_eq=1251),
        _rule("b", amount_min=5, amount_max=10, amount_last_digits="7", pan_prefix="62"),
        _rule("c", terminal="00000764", merchant="848100058126002", time_from="22:00", time_to="06:00"),
        _rule("d", message_type="00", pan_prefix="4", amount_last_digits="00"),
        _rule("e", mti="0100", amount_min=0, time_from="01:00", time_to="02:00"),
    )
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    message=st.one_of(
        messages(CODEC),
        messages(CODEC).map(lambda m: Message.build(m.dialect, "0200", m.fields)),
        messages(CODEC).map(lambda m: Message.build(m.dialect, "0100", m.fields)),
    ),
    now=st.datetimes(),
)
def test_evaluate_never_raises_on_any_cup_pos_message(message: Message, now: datetime) -> None:
    found = EVERY_KEY.evaluate(message, now)
    assert found is None or found in EVERY_KEY.rules
