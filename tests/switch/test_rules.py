"""Response rules: every match key, first match wins, time windows, and loading with errors that
name file, rule and key. Expected outcomes are worked by hand from the rule and the message."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specs.codec import codec_for
from specs.message import Message
from switch.config import ConfigError
from switch.rules import Action, ActionKind, Match, Rule, RuleError, RuleSet, load_rules, parse_rules
from tests.specs.strategies import messages

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


# -- the TOML format ---------------------------------------------------------------------------

EXAMPLE = """
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

[[rules]]
name = "late bad MAC at night"
match = { mti = "0400", time_from = "23:30", time_to = "00:30", amount_min = 1, amount_max = 99 }
action = { respond = "A0", delay_ms = 1500 }

[[rules]]
name = "hang up on one BIN"
action = { close = true }
[rules.match]
pan_prefix = "400000"
"""


def test_load_rules_reads_every_action_kind(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(EXAMPLE)
    rules = load_rules(path)
    assert [r.action for r in rules.rules] == [
        Action(ActionKind.RESPOND, "51"),
        Action(ActionKind.DELAY, delay_ms=35000),
        Action(ActionKind.DROP),
        Action(ActionKind.RESPOND, "A0", 1500),
        Action(ActionKind.CLOSE),
    ]
    assert rules.rules[0].match == Match(mti="0200", processing_code="000000", amount_last_digits="51")
    assert rules.rules[3].match == Match(mti="0400", time_from="23:30", time_to="00:30", amount_min=1, amount_max=99)
    assert rules.rules[4].match == Match(pan_prefix="400000")
    # 12.51 ends in 51: the first rule, though the second also matches
    assert rules.evaluate(purchase(), NOON) == rules.rules[0]
    assert rules.evaluate(purchase(f4="000000001250"), NOON) == rules.rules[1]
    assert rules.evaluate(purchase("0100"), NOON) == rules.rules[2]


def test_parse_rules_takes_the_array_of_a_switch_config() -> None:
    import tomllib

    config = tomllib.loads('[server]\nport = 0\n\n[[rules]]\nname = "x"\nmatch = {}\naction = { close = true }\n')
    rules = parse_rules(config["rules"], "switch.toml")
    assert rules.rules == (Rule("x", Match(), Action(ActionKind.CLOSE)),)


def test_load_rules_empty_file_is_an_empty_ruleset(tmp_path: Path) -> None:
    path = tmp_path / "none.toml"
    path.write_text("# no rules today\n")
    assert len(load_rules(path)) == 0


R = '[[rules]]\nname = "n"\n'
OK_ACTION = 'action = { respond = "05" }\n'
OK_MATCH = 'match = { mti = "0200" }\n'


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("[server]\nport = 1\n", "top level", "unknown keys ['server']"),
        ("rules = 5\n", "rules", "array of tables"),
        ("rules = [1]\n", "rules[0]", "must be a table"),
        ("[[rules]]\n" + OK_MATCH + OK_ACTION, "rules[0].name", "non-empty text"),
        ('[[rules]]\nname = " "\n' + OK_MATCH + OK_ACTION, "rules[0].name", "non-empty text"),
        (R + OK_MATCH + OK_ACTION + R + OK_MATCH + OK_ACTION, "rules[1].name", "already rules[0]"),
        (R + OK_MATCH + OK_ACTION + "colour = 1\n", "rules[0] (n).colour", "unknown key"),
        (R + OK_ACTION, "rules[0] (n).match", "must be a table"),
        (R + 'match = "0200"\n' + OK_ACTION, "rules[0] (n).match", "must be a table"),
        (R + OK_MATCH, "rules[0] (n).action", "must be a table"),
        (R + "match = { amount = 5 }\n" + OK_ACTION, "rules[0] (n).match.amount", "unknown match key"),
        (R + 'match = { mti = "200" }\n' + OK_ACTION, "rules[0] (n).match.mti", "4 digits"),
        (R + "match = { mti = 200 }\n" + OK_ACTION, "rules[0] (n).match.mti", "4 digits"),
        (R + 'match = { processing_code = "00000A" }\n' + OK_ACTION, "rules[0] (n).match.processing_code", "6"),
        (R + 'match = { message_type = "2" }\n' + OK_ACTION, "rules[0] (n).match.message_type", "2 digits"),
        (R + 'match = { amount_eq = "100" }\n' + OK_ACTION, "rules[0] (n).match.amount_eq", "integer"),
        (R + "match = { amount_eq = 1.5 }\n" + OK_ACTION, "rules[0] (n).match.amount_eq", "integer"),
        (R + "match = { amount_min = true }\n" + OK_ACTION, "rules[0] (n).match.amount_min", "integer"),
        (R + "match = { amount_max = -1 }\n" + OK_ACTION, "rules[0] (n).match.amount_max", "0 to"),
        (R + "match = { amount_min = 1000000000000 }\n" + OK_ACTION, "rules[0] (n).match.amount_min", "12"),
        (
            R + "match = { amount_eq = 5, amount_max = 9 }\n" + OK_ACTION,
            "rules[0] (n).match.amount_eq",
            "cannot be combined",
        ),
        (
            R + "match = { amount_min = 10, amount_max = 9 }\n" + OK_ACTION,
            "rules[0] (n).match.amount_min",
            "above amount_max",
        ),
        (R + 'match = { amount_last_digits = "" }\n' + OK_ACTION, "rules[0] (n).match.amount_last_digits", "1"),
        (
            R + 'match = { amount_last_digits = "1234567890123" }\n' + OK_ACTION,
            "rules[0] (n).match.amount_last_digits",
            "1 to 12 digits",
        ),
        (R + 'match = { pan_prefix = "62x" }\n' + OK_ACTION, "rules[0] (n).match.pan_prefix", "1 to 19"),
        (R + 'match = { terminal = "0000764" }\n' + OK_ACTION, "rules[0] (n).match.terminal", "8 characters"),
        (R + "match = { terminal = 764 }\n" + OK_ACTION, "rules[0] (n).match.terminal", "text"),
        (R + 'match = { merchant = "8481" }\n' + OK_ACTION, "rules[0] (n).match.merchant", "15 characters"),
        (R + 'match = { time_from = "22:00" }\n' + OK_ACTION, "rules[0] (n).match.time_to", "go together"),
        (R + 'match = { time_to = "06:00" }\n' + OK_ACTION, "rules[0] (n).match.time_from", "go together"),
        (
            R + 'match = { time_from = "24:00", time_to = "06:00" }\n' + OK_ACTION,
            "rules[0] (n).match.time_from",
            "HH:MM",
        ),
        (
            R + 'match = { time_from = "22:00", time_to = "6:00" }\n' + OK_ACTION,
            "rules[0] (n).match.time_to",
            "HH:MM",
        ),
        (
            R + "match = { time_from = 22:00:00, time_to = 06:00:00 }\n" + OK_ACTION,
            "rules[0] (n).match.time_from",
            "HH:MM",
        ),
        (
            R + 'match = { time_from = "22:00", time_to = "22:00" }\n' + OK_ACTION,
            "rules[0] (n).match.time_to",
            "equals time_from",
        ),
        (R + OK_MATCH + "action = {}\n", "rules[0] (n).action", "needs one of"),
        (R + OK_MATCH + "action = { answer = '05' }\n", "rules[0] (n).action.answer", "unknown action key"),
        (R + OK_MATCH + "action = { respond = '5' }\n", "rules[0] (n).action.respond", "two-character"),
        (R + OK_MATCH + "action = { respond = 51 }\n", "rules[0] (n).action.respond", "two-character"),
        (R + OK_MATCH + "action = { drop = false }\n", "rules[0] (n).action.drop", "must be true"),
        (R + OK_MATCH + "action = { close = 'yes' }\n", "rules[0] (n).action.close", "must be true"),
        (
            R + OK_MATCH + "action = { respond = '05', drop = true }\n",
            "rules[0] (n).action.drop",
            "cannot be combined with respond",
        ),
        (
            R + OK_MATCH + "action = { drop = true, close = true }\n",
            "rules[0] (n).action.close",
            "cannot be combined with drop",
        ),
        (R + OK_MATCH + "action = { delay_ms = 0 }\n", "rules[0] (n).action.delay_ms", "1 or more"),
        (R + OK_MATCH + "action = { delay_ms = 1.5 }\n", "rules[0] (n).action.delay_ms", "whole number"),
        (R + OK_MATCH + "action = { delay_ms = 3600001 }\n", "rules[0] (n).action.delay_ms", "3600000"),
        (
            R + OK_MATCH + "action = { drop = true, delay_ms = 10 }\n",
            "rules[0] (n).action.delay_ms",
            "not with drop",
        ),
    ],
)
def test_load_rules_errors_name_file_rule_and_key(tmp_path: Path, text: str, where: str, problem: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {where}: ")) as caught:
        load_rules(path)
    assert problem in str(caught.value)


def test_load_rules_error_in_a_later_rule_names_its_index_and_name(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(EXAMPLE + '\n[[rules]]\nname = "typo"\nmatch = { mti = "02000" }\n' + OK_ACTION)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: rules[5] (typo).match.mti: must be 4 digits")):
        load_rules(path)


def test_load_rules_pan_prefix_error_does_not_echo_the_digits(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(R + f'match = {{ pan_prefix = "{PAN}0" }}\n' + OK_ACTION)
    with pytest.raises(ConfigError, match=re.escape("match.pan_prefix: must be 1 to 19 digits")) as caught:
        load_rules(path)
    assert PAN not in str(caught.value)


def test_load_rules_unreadable_or_not_toml_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=re.escape(f"{missing}: file: ")):
        load_rules(missing)
    broken = tmp_path / "broken.toml"
    broken.write_text("[[rules]\n")
    with pytest.raises(ConfigError, match=re.escape(f"{broken}: file: not valid TOML")):
        load_rules(broken)


def test_parse_rules_names_its_source() -> None:
    with pytest.raises(ConfigError, match=re.escape("switch.toml: rules[0] (n).action: needs one of")):
        parse_rules([{"name": "n", "match": {}, "action": {}}], "switch.toml")


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
