"""Loading response rules from TOML, with errors that name file, rule and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from switch.config import ConfigError
from switch.rulefile import load_rules, parse_rules
from switch.rules import Action, ActionKind, Match, Rule
from tests.switch.rulecases import NOON, PAN, purchase

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
