"""Financial scenario steps, and the fleet selling over real sockets (127.0.0.1, port 0)
against the contract-built fake host."""

from __future__ import annotations

from dataclasses import replace

import pytest

from specs.testcards import GOOD_CARD, SIXTEEN_DIGIT_CARD
from terminals_sim.financial import CHIP_KINDS
from terminals_sim.fleet import FleetConfig, run_fleet
from terminals_sim.outcome import Kind
from terminals_sim.scenario import ScenarioError, Step, load_scenario, parse_scenario
from tests.terminals_sim.fakehost import provisioned_host, serve_fake_host


def _config(port: int, scenario_text: str, **kw: object) -> FleetConfig:
    args: dict[str, object] = {"host": "127.0.0.1", "port": port, "terminals": 1,
                               "scenario": parse_scenario(scenario_text, "t"), "random_seed": 5,
                               "timeout": 2.0, "exchanges": 50}
    args.update(kw)
    return FleetConfig(**args)  # type: ignore[arg-type]


# -- scenario files -----------------------------------------------------------------------


def test_retail_day_is_built_in_and_sells_as_the_issue_asks() -> None:
    scenario = load_scenario("retail-day")
    kinds = [s.kind for s in scenario.setup]
    assert kinds[:2] == [Kind.SIGNIN, Kind.OPERATOR_SIGNIN]
    assert {Kind.PURCHASE, Kind.BALANCE, Kind.VOID, Kind.REFUND, Kind.PREAUTH, Kind.COMPLETION} <= set(kinds)
    assert [s.force_reversal for s in scenario.setup].count(True) == 2  # a magnetic and a chip purchase
    chip = {Kind.IC_DOWNLOAD, Kind.CHIP_PURCHASE, Kind.CONTACTLESS_PURCHASE, Kind.CHIP_REFUND, Kind.CHIP_VOID}
    assert chip <= set(kinds)
    assert {s.kind for s in scenario.mix} == {Kind.PURCHASE, Kind.CHIP_PURCHASE, Kind.CONTACTLESS_PURCHASE,
                                             Kind.BALANCE}
    assert [s.kind for s in scenario.teardown] == [Kind.SETTLEMENT, Kind.SIGNOFF]
    assert (scenario.operator, scenario.password) == ("00", "123456")
    assert scenario.setup[2].amount == (8800, 8800)
    assert scenario.setup[3].card is not None and scenario.setup[3].card.pan == SIXTEEN_DIGIT_CARD.pan
    assert scenario.card.pan == GOOD_CARD.pan
    assert scenario.mix[0].amount == (100, 50000)


def test_chip_steps_and_chip_cards_parse() -> None:
    scenario = parse_scenario(
        'chip_card = "6200000000000000004"\n'
        '[[cards]]\npan = "6200000000000000004"\nexpiry = "2912"\npin = "4321"\nchip = true\npsn = "02"\n'
        'imk_ac = "F0C34A8124CEE0A91A0B034AA97D6EAC"\n'
        '[[cards]]\npan = "6200000000000000012"\nexpiry = "2912"\npin = "4321"\nservice_code = "201"\n'
        'entry = "fallback"\n'
        '[[setup]]\nstep = "ic_download"\n[[setup]]\nstep = "contactless_purchase"\namount = "9.90"\n'
        '[[setup]]\nstep = "chip_void"\n[[setup]]\nstep = "purchase"\namount = "1.00"\n'
        'card = "6200000000000000012"\n', "t")
    assert [s.kind for s in scenario.setup] == [Kind.IC_DOWNLOAD, Kind.CONTACTLESS_PURCHASE, Kind.CHIP_VOID,
                                                Kind.PURCHASE]
    chip = scenario.chip_card.chip
    assert chip is not None and chip.psn == "02" and scenario.chip_card.service_code == "220"
    fallback = scenario.setup[3].card
    assert fallback is not None and fallback.fallback and fallback.chip is None


def test_financial_step_options_parse() -> None:
    scenario = parse_scenario(
        'card = "6200000000000000004"\n'
        '[[cards]]\npan = "6200000000000000004"\nexpiry = "2912"\npin = "4321"\nentry = "manual"\n'
        '[[setup]]\nstep = "purchase"\namount = "0.01"\nwrong_pin = true\nexpect = ["55"]\n'
        '[[setup]]\nstep = "refund"\nwith_pin = true\nforce_reversal = true\n', "t")
    assert scenario.card.entry.value == "01" and scenario.card.expiry == "2912"
    purchase, refund = scenario.setup
    assert (purchase.amount, purchase.wrong_pin, purchase.expect) == ((1, 1), True, frozenset({"55"}))
    assert (refund.amount, refund.with_pin, refund.force_reversal) == (None, True, True)


@pytest.mark.parametrize(("text", "problem"), [
    ('[[setup]]\nstep = "purchase"\n', "needs an amount"),
    ('[[setup]]\nstep = "purchase"\namount = 12\n', "as strings"),
    ('[[setup]]\nstep = "purchase"\namount = "1.234"\n', "two decimals"),
    ('[[setup]]\nstep = "purchase"\namount = ["5.00", "1.00"]\n', "low <= high"),
    ('[[setup]]\nstep = "void"\namount = "1.00"\n', "takes no amount"),
    ('[[setup]]\nstep = "echo"\namount = "1.00"\n', "only go with card transactions"),
    ('[[setup]]\nstep = "balance"\nforce_reversal = true\n', "moves money"),
    ('[[setup]]\nstep = "void"\nwrong_pin = true\n', "needs a PIN"),
    ('[[setup]]\nstep = "reversal"\n', "force_reversal = true"),
    ('[[setup]]\nstep = "batch_upload"\n', "not a step"),
    ('[[setup]]\nstep = "balance"\ncard = "4111111111111111"\n', "not the PAN of a test card"),
    ('operator = 0\n[[setup]]\nstep = "signin"\n', "operator"),
    ('[[cards]]\npan = "12"\nexpiry = "3012"\npin = "1234"\n[[setup]]\nstep = "signin"\n', "12 to 19 digits"),
    ('[[setup]]\nstep = "chip_purchase"\n', "needs an amount"),
    ('[[setup]]\nstep = "chip_void"\namount = "1.00"\n', "takes no amount"),
    ('[[setup]]\nstep = "chip_purchase"\namount = "1.00"\ncard = "6222021234567890123"\n', "needs a chip card"),
    ('[[setup]]\nstep = "capk_list"\n', "a part of a download"),
    ('[[setup]]\nstep = "script_advice"\n', "on its own after issuer scripts"),
    ('chip_card = "6222021234567890123"\n[[setup]]\nstep = "signin"\n', "not a chip card"),
    ('[[cards]]\npan = "6200000000000000004"\nexpiry = "3012"\npin = "1234"\nchip = true\nimk_ac = "12"\n'
     '[[setup]]\nstep = "signin"\n', "imk_ac must be 32 hex digits"),
    ('[[cards]]\npan = "6200000000000000004"\nexpiry = "3012"\npin = "1234"\npsn = "01"\n'
     '[[setup]]\nstep = "signin"\n', "go with chip = true"),
])
def test_bad_financial_steps_are_named(text: str, problem: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.toml")
    assert problem in str(info.value)
    assert "4111111111111111" not in str(info.value)


# -- the fleet selling --------------------------------------------------------------------


async def test_retail_day_against_the_fake_host_settles_balanced() -> None:
    host = provisioned_host(2)
    server, port = await serve_fake_host(host)
    # The fake host answers the magnetic contract only: the day without its chip steps (the
    # chip day runs against the switch in test_financial_e2e.py).
    day = load_scenario("retail-day")
    scenario = replace(day, think_ms=(0.0, 0.0), setup=_magnetic(day.setup), mix=_magnetic(day.mix))
    try:
        result = await run_fleet(FleetConfig("127.0.0.1", port, 2, scenario, duration=0.3, random_seed=1))
    finally:
        server.close()
    stats = result.stats
    assert dict(stats.problems) == {} and result.expectations_held
    for kind in (Kind.VOID, Kind.REFUND, Kind.PREAUTH, Kind.COMPLETION, Kind.REVERSAL, Kind.SETTLEMENT,
                 Kind.SIGNOFF):
        assert stats.by_kind[kind].ok == 2, kind
    assert Kind.BATCH_UPLOAD not in stats.by_kind  # the totals agreed
    # each terminal's forced purchase of 45.00 reached the host and was reversed there
    reversed_ = [e for e in host.bank.journal if e.reversed]
    assert [(e.kind, e.amount) for e in reversed_] == [("purchase", 4500)] * 2
    assert set(host.bank.batches.values()) == {"000124"}  # both batches closed


def _magnetic(steps: tuple[Step, ...]) -> tuple[Step, ...]:
    return tuple(s for s in steps if s.kind not in CHIP_KINDS and s.kind is not Kind.IC_DOWNLOAD)


async def test_a_lost_answer_is_reversed_and_the_balance_restored() -> None:
    host = provisioned_host(1, swallow={"0200": 1})
    server, port = await serve_fake_host(host)
    text = ('[[setup]]\nstep = "signin"\n[[setup]]\nstep = "purchase"\namount = "45.00"\nexpect = ["00"]\n'
            '[[setup]]\nstep = "balance"\n')
    try:
        result = await run_fleet(_config(port, text, timeout=0.3))
    finally:
        server.close()
    by_kind = result.stats.by_kind
    assert by_kind[Kind.PURCHASE].failures == 1 and by_kind[Kind.REVERSAL].ok == 1
    reversal = next(m for m in host.seen if m.mti == "0400")
    purchase = next(m for m in host.seen if m.mti == "0200" and m[3] == "000000")
    assert (reversal[11], reversal[4], reversal[39]) == (purchase[11], "000000004500", "98")
    assert host.bank.accounts[GOOD_CARD.pan].balance == GOOD_CARD.balance_cents
    assert by_kind[Kind.BALANCE].ok == 1


async def test_a_settlement_answered_95_is_followed_by_a_batch_upload() -> None:
    host = provisioned_host(1)
    host.bank.settle_wrong = True
    server, port = await serve_fake_host(host)
    text = ('[[setup]]\nstep = "signin"\n[[setup]]\nstep = "purchase"\namount = "1.00"\n'
            '[[setup]]\nstep = "purchase"\namount = "2.00"\n'
            '[[teardown]]\nstep = "settlement"\nexpect = ["95"]\n[[teardown]]\nstep = "purchase"\namount = "3.00"\n')
    try:
        result = await run_fleet(_config(port, text))
    finally:
        server.close()
    assert dict(result.stats.problems) == {}
    uploads = [(m[11], m[4]) for m in host.seen if m.mti == "0320"]
    purchases = [(m[11], m[4]) for m in host.seen if m.mti == "0200"]
    assert uploads == purchases[:2]
    assert purchases[2][1] == "000000000300"
    assert host.seen[-1].sub("60.2") == "000124"  # the terminal moved its batch on


async def test_void_without_a_purchase_makes_one_first() -> None:
    host = provisioned_host(1)
    server, port = await serve_fake_host(host)
    text = ('operator = "00"\npassword = "123456"\n[[setup]]\nstep = "operator_signin"\n'
            '[[setup]]\nstep = "void"\n[[setup]]\nstep = "purchase"\namount = "1.00"\nwrong_pin = true\n'
            'expect = ["55"]\n')
    try:
        result = await run_fleet(_config(port, text))
    finally:
        server.close()
    assert dict(result.stats.problems) == {}
    assert [m.sub("60.1") for m in host.seen if m.mti == "0200"] == ["22", "23", "22"]
    assert result.stats.by_kind[Kind.PURCHASE].response_codes == {"00": 1, "55": 1}
