"""Cost of one response-rules decision (`RuleSet.evaluate`) per request, beside an empty RuleSet.

usage: python bench/rules.py [--n 50000]

The request is a cup-pos 0200 purchase with PIN (12.34, terminal 00000764, 60.1 = 22). The
budget is well under 10 us for 20 rules that do not match, since the switch pays it on every
request. Cases:
  empty                 no rules: what calling evaluate costs at all (the baseline)
  20 other MTIs         20 rules on 0100/0400/0500/0800: the 0200 skips them by MTI
  20 mixed, no match    a plausible tester file: codes, terminals, amounts, BINs, a night window
  20 worst, no match    every rule passes MTI, 3, 60.1, terminal and merchant and fails only on
                        its last condition, so every fact (60.1, PAN, time) is computed
  20 mixed, 20th hits   the mixed file plus the one rule that matches, at the end
Each figure is the best of 5 timed loops (other work on a shared machine only adds time).
"""

from __future__ import annotations

import argparse
from datetime import datetime

from harness import CUP_PURCHASE_0200, per_call_us

from specs.codec import codec_for
from switch.rules import Action, ActionKind, Match, Rule
from switch.ruleset import RuleSet

PURCHASE = {**CUP_PURCHASE_0200, 4: "000000001234"}
NOW = datetime(2024, 3, 1, 12, 0)
DECLINE = Action(ActionKind.RESPOND, "51")


def rule(name: str, **match: object) -> Rule:
    return Rule(name, Match(**match), DECLINE)  # type: ignore[arg-type]


def other_mtis() -> list[Rule]:
    mtis = ("0100", "0400", "0500", "0800")
    return [rule(f"other {i}", mti=mtis[i % 4], amount_last_digits=f"{i:02d}") for i in range(20)]


def mixed() -> list[Rule]:
    rules = [
        rule("decline 51", mti="0200", processing_code="000000", amount_last_digits="51"),
        rule("expired 54", mti="0200", processing_code="000000", amount_last_digits="54"),
        rule("slow terminal", mti="0200", terminal="00000999"),
        rule("swallow pre-auths", mti="0100"),
        rule("refunds fail", mti="0220", processing_code="200000"),
        rule("big amounts", mti="0200", amount_min=10_000_000),
        rule("exact 99.99", amount_eq=9999),
        rule("foreign BIN", pan_prefix="400000"),
        rule("night", mti="0200", time_from="23:00", time_to="05:00"),
        rule("other merchant", merchant="848100058126999"),
        rule("balance down", mti="0200", processing_code="310000"),
        rule("voids", mti="0200", message_type="23"),
        rule("reversals", mti="0400", amount_last_digits="98"),
        rule("settlement", mti="0500"),
        rule("small amounts", mti="0200", amount_max=10),
        rule("completion", mti="0200", message_type="20", amount_min=100),
        rule("amex", pan_prefix="37"),
        rule("terminal 1", terminal="00000001", mti="0200"),
        rule("terminal 2", terminal="00000002", mti="0200"),
        rule("bad MAC late", mti="0200", amount_last_digits="77", time_from="09:00", time_to="10:00"),
    ]
    assert len(rules) == 20
    return rules


def worst() -> list[Rule]:
    same = {
        "mti": "0200",
        "processing_code": "000000",
        "message_type": "22",
        "terminal": "00000764",
        "merchant": "848100058126002",
    }
    tails: list[dict[str, object]] = [
        {"amount_last_digits": "99"},
        {"pan_prefix": "400000"},
        {"time_from": "22:00", "time_to": "06:00"},
        {"amount_min": 5000, "amount_max": 9000},
    ]
    return [rule(f"worst {i}", **same, **tails[i % 4]) for i in range(20)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50000)
    args = parser.parse_args()
    message = codec_for("cup-pos").message("0200", PURCHASE)
    hit = rule("the one", mti="0200", terminal="00000764", amount_eq=1234)
    cases = {
        "empty": (RuleSet(), None),
        "20 other MTIs": (RuleSet(tuple(other_mtis())), None),
        "20 mixed, no match": (RuleSet(tuple(mixed())), None),
        "20 worst, no match": (RuleSet(tuple(worst())), None),
        "20 mixed, 20th hits": (RuleSet((*mixed()[:19], hit)), hit),
    }
    print(f"{'rules':<22} {'us/evaluate':>12} {'minus empty':>12}")
    baseline = 0.0
    for label, (rules, expected) in cases.items():
        found = rules.evaluate(message, NOW)
        assert found == expected, f"{label}: expected {expected}, got {found}"
        us = per_call_us(lambda rules=rules: rules.evaluate(message, NOW), args.n)  # type: ignore[misc]
        baseline = baseline or us
        print(f"{label:<22} {us:>12.2f} {us - baseline:>12.2f}")


if __name__ == "__main__":
    main()
