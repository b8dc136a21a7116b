"""The selling terminal against the real switch (in-process HSM, temporary SQLite store, the
shared test cards) over sockets on 127.0.0.1: retail-day, a real late answer reversed, and the
financial conformance checks."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from specs.codec import codec_for
from specs.testcards import GOOD_CARD
from terminals_sim.conformance import CheckStatus, ConformanceTarget, run_conformance
from terminals_sim.connection import ExchangeFailed, exchange_once
from terminals_sim.fleet import FleetConfig, run_fleet
from terminals_sim.outcome import Failure, Kind, Outcome
from terminals_sim.provision import provision_plan
from terminals_sim.scenario import load_scenario
from terminals_sim.terminal import TerminalProfile, VirtualTerminal
from tests.terminals_sim.fakehost import MERCHANT, TERMINAL, TMK
from tests.terminals_sim.test_financial_conformance import FINANCIAL
from tests.terminals_sim.test_switch_e2e import FLEET, _switch
from tests.terminals_sim.test_terminal import request_of

FMT_TIMEOUT = 2.0


async def _send(port: int, t: VirtualTerminal, frame: bytes, timeout: float = FMT_TIMEOUT) -> Outcome:
    try:
        answer = await exchange_once("127.0.0.1", port, codec_for("cup-pos").dialect.framing, frame, timeout)
    except ExchangeFailed as exc:
        return t.fail_pending(exc.failure, exc.detail)
    return t.receive(answer)


async def _terminal(port: int, merchant: str, terminal: str, tmk: bytes) -> VirtualTerminal:
    t = VirtualTerminal(TerminalProfile(merchant, terminal, tmk, card=load_scenario("retail-day").card))
    assert (await _send(port, t, t.start_signin())).ok
    return t


async def _balance(port: int, t: VirtualTerminal) -> int:
    outcome = await _send(port, t, t.start_balance())
    assert outcome.ok and outcome.balance_cents is not None, outcome
    return outcome.balance_cents


async def test_retail_day_against_the_switch_settles_balanced(tmp_path: Path) -> None:
    running = await _switch(tmp_path)
    scenario = replace(load_scenario("retail-day"), think_ms=(0.0, 0.0))
    try:
        result = await run_fleet(FleetConfig("127.0.0.1", running.port, 2, scenario, duration=0.3, random_seed=4))
    finally:
        await running.close()
    stats = result.stats
    assert dict(stats.problems) == {} and result.expectations_held
    for kind in (Kind.OPERATOR_SIGNIN, Kind.VOID, Kind.REFUND, Kind.PREAUTH, Kind.COMPLETION, Kind.REVERSAL,
                 Kind.SETTLEMENT, Kind.SIGNOFF):
        assert stats.by_kind[kind].ok == 2, kind
    assert stats.by_kind[Kind.PURCHASE].ok >= 6 and stats.by_kind[Kind.BALANCE].ok >= 2
    assert Kind.BATCH_UPLOAD not in stats.by_kind  # the switch's journal agreed with both batches


async def test_the_whole_chip_day_completes_against_the_switch(tmp_path: Path) -> None:
    # retail-day's setup to its end (no mix: the run ends when both terminals have settled), so
    # every chip step runs however loaded the machine is.
    running = await _switch(tmp_path)
    scenario = replace(load_scenario("retail-day"), think_ms=(0.0, 0.0), mix=())
    try:
        result = await run_fleet(FleetConfig("127.0.0.1", running.port, 2, scenario, duration=60, random_seed=4))
    finally:
        await running.close()
    stats = result.stats
    assert dict(stats.problems) == {} and result.expectations_held
    # every ARPC verified by the card, the downloads complete, the chip sale set aside reversed
    # with its chip data, and after the balanced settlement each terminal uploaded its TC
    # records (66.00, its 6.00 refund, 9.90) and ended the upload
    for kind in (Kind.CHIP_REFUND, Kind.CHIP_VOID, Kind.CHIP_BALANCE, Kind.CHIP_REVERSAL, Kind.CAPK_DONE,
                 Kind.AID_DONE, Kind.IC_UPLOAD_END):
        assert stats.by_kind[kind].ok == 2, kind
    assert stats.by_kind[Kind.CHIP_PURCHASE].ok == 2 * 3 and stats.by_kind[Kind.CONTACTLESS_PURCHASE].ok == 2
    assert stats.by_kind[Kind.CAPK_RECORD].ok == 2 * 4 and stats.by_kind[Kind.AID_RECORD].ok == 2 * 3
    assert stats.by_kind[Kind.IC_UPLOAD].ok == 2 * 3 and Kind.BATCH_UPLOAD not in stats.by_kind


async def test_an_answer_the_switch_sends_too_late_is_reversed_and_the_money_comes_back(tmp_path: Path) -> None:
    # The switch sleeps before it handles a delayed request and drops the work when the
    # connection goes, so the purchase goes out on a raw connection that stays open (unread)
    # while the terminal, having waited 0.15 s, takes it as unanswered.
    late = {"name": "45.00 answered late", "match": {"mti": "0200", "amount_eq": 4500},
            "action": {"delay_ms": 300}}
    running = await _switch(tmp_path, rules=(late,))
    other = provision_plan(FLEET)[0]
    writer = None
    try:
        port = running.port
        seller = await _terminal(port, MERCHANT, TERMINAL, TMK)
        watcher = await _terminal(port, *other)
        before = await _balance(port, watcher)
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        purchase = seller.start_purchase(4500)
        writer.write(purchase)
        await asyncio.sleep(0.15)
        assert seller.fail_pending(Failure.TIMEOUT).failure is Failure.TIMEOUT
        assert seller.reversal_due is not None
        await asyncio.sleep(0.5)  # the switch has handled and answered it by now, unread
        assert await _balance(port, watcher) == before - 4500
        reversal = seller.start_reversal()
        assert (request_of(reversal)[11], request_of(reversal)[39]) == (request_of(purchase)[11], "98")
        assert (await _send(port, seller, reversal)).ok
        assert seller.reversal_due is None
        assert await _balance(port, watcher) == before
        assert (await _send(port, seller, seller.start_balance())).ok  # selling again is allowed
    finally:
        if writer is not None:
            writer.close()
        await running.close()
    assert before == GOOD_CARD.balance_cents


async def test_financial_conformance_checks_pass_against_the_switch(tmp_path: Path) -> None:
    running = await _switch(tmp_path)
    try:
        target = ConformanceTarget("127.0.0.1", running.port, MERCHANT, TERMINAL, TMK)
        results = await run_conformance(target, frozenset(FINANCIAL))
    finally:
        await running.close()
    assert {r.name: (r.status, r.reason) for r in results} == dict.fromkeys(FINANCIAL, (CheckStatus.PASSED, ""))


async def test_a_switch_without_the_card_skips_the_financial_checks(tmp_path: Path) -> None:
    running = await _switch(tmp_path, cards=())
    try:
        target = ConformanceTarget("127.0.0.1", running.port, MERCHANT, TERMINAL, TMK)
        results = await run_conformance(target, frozenset(FINANCIAL))
    finally:
        await running.close()
    assert {r.status for r in results} == {CheckStatus.SKIPPED}
    assert all("(39 = 14)" in r.reason for r in results)
