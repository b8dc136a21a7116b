"""The conformance suite's MAC, PIN, reversal and duplicate-STAN checks against fake hosts that
follow docs/financial.md and fakes that break it one way each, and the CLI's card options."""

from __future__ import annotations

import pytest

from specs.testcards import GOOD_CARD, SHORT_PIN_CARD
from switchsim.cli import main
from terminals_sim.conformance import CHECK_NAMES, CheckResult, CheckStatus, ConformanceTarget, run_conformance
from terminals_sim.financial import CardProfile
from tests.terminals_sim.fakebank import FakeBank
from tests.terminals_sim.fakehost import MERCHANT, TERMINAL, TMK, FakeHost, serve_fake_host, threaded_host

FINANCIAL = ("mac_answer", "mac_wrong", "pin_wrong", "pin_right", "reversal", "reversal_repeated",
             "duplicate_stan")


async def _run(host: FakeHost, card: CardProfile | None = None) -> dict[str, CheckResult]:
    server, port = await serve_fake_host(host)
    target = ConformanceTarget("127.0.0.1", port, MERCHANT, TERMINAL, TMK, timeout=2.0)
    if card is not None:
        target = ConformanceTarget("127.0.0.1", port, MERCHANT, TERMINAL, TMK, timeout=2.0, card=card)
    try:
        results = await run_conformance(target, frozenset(FINANCIAL))
    finally:
        server.close()
    return {r.name: r for r in results}


def _status(results: dict[str, CheckResult]) -> dict[str, CheckStatus]:
    return {name: r.status for name, r in results.items()}


async def test_the_new_checks_are_in_the_suite_in_order() -> None:
    assert CHECK_NAMES[-len(FINANCIAL) - 3:-3] == FINANCIAL  # then the three chip checks


async def test_a_conforming_host_passes_and_the_card_balance_ends_where_it_began() -> None:
    host = FakeHost()
    results = await _run(host)
    assert _status(results) == dict.fromkeys(FINANCIAL, CheckStatus.PASSED)
    assert host.bank.accounts[GOOD_CARD.pan].balance == GOOD_CARD.balance_cents
    reversals = [m for m in host.seen if m.mti == "0400"]
    assert reversals and all(m[39] == "98" for m in reversals)


async def test_a_host_whose_answers_carry_a_wrong_mac_fails() -> None:
    results = await _run(FakeHost(wrong_response_mac=True))
    assert results["mac_answer"].status is CheckStatus.FAILED
    assert "MAC of the answer does not verify" in results["mac_answer"].reason
    # every answer is untrusted, so nothing passes: later checks fail, or are skipped because
    # the reversal the terminal then owes is never answered in a way it can trust
    assert CheckStatus.PASSED not in _status(results).values()
    assert "bad_mac" in results["pin_right"].reason


async def test_a_host_that_ignores_request_macs_fails_mac_wrong() -> None:
    results = await _run(FakeHost(check_request_mac=False))
    assert results["mac_wrong"].status is CheckStatus.FAILED
    assert results["mac_wrong"].reason == "39 = 00 (approved), expected A0"
    assert results["mac_answer"].status is CheckStatus.PASSED


async def test_a_host_that_ignores_pins_fails_pin_wrong() -> None:
    results = await _run(FakeHost(bank=FakeBank(check_pin=False)))
    assert _status(results)["pin_wrong"] is CheckStatus.FAILED
    assert results["pin_wrong"].reason == "39 = 00 (approved), expected 55"
    assert results["pin_right"].status is CheckStatus.PASSED


async def test_a_host_that_reverses_twice_fails_reversal_repeated() -> None:
    results = await _run(FakeHost(bank=FakeBank(reverse_again=True)))
    assert results["reversal"].status is CheckStatus.PASSED
    assert results["reversal_repeated"].status is CheckStatus.FAILED
    assert "after two reversals" in results["reversal_repeated"].reason


async def test_a_host_that_takes_a_repeated_stan_fails_and_gets_both_purchases_back() -> None:
    host = FakeHost(bank=FakeBank(check_stan=False))
    results = await _run(host)
    assert results["duplicate_stan"].status is CheckStatus.FAILED
    assert results["duplicate_stan"].reason == "39 = 00 (approved), expected 94"
    assert host.bank.accounts[GOOD_CARD.pan].balance == GOOD_CARD.balance_cents


async def test_a_host_that_does_not_know_the_card_skips_with_why() -> None:
    results = await _run(FakeHost(bank=FakeBank(accounts={})))
    assert _status(results) == dict.fromkeys(FINANCIAL, CheckStatus.SKIPPED)
    assert all("does not know test card 622202...0123 (39 = 14)" in r.reason for r in results.values())
    assert all(GOOD_CARD.pan not in r.reason for r in results.values())


async def test_another_test_card_can_be_used() -> None:
    results = await _run(FakeHost(), CardProfile.of(SHORT_PIN_CARD))
    assert _status(results) == dict.fromkeys(FINANCIAL, CheckStatus.PASSED)


def test_cli_card_options(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["conformance", "--merchant", MERCHANT, "--terminal", TERMINAL, "--tmk", "11" * 16, "--timeout", "2"]
    for name in FINANCIAL:
        base += ["--only", name]
    with threaded_host(FakeHost()) as port:
        assert main([*base, "--target", f"127.0.0.1:{port}", "--card-pan", SHORT_PIN_CARD.pan]) == 0
    with threaded_host(FakeHost()) as port:
        # the right PAN with a PIN that is not the card's: pin_right and the rest fail
        assert main([*base, "--target", f"127.0.0.1:{port}", "--card-pin", "000000"]) == 1
    capsys.readouterr()
    assert main([*base, "--target", "127.0.0.1:9", "--card-pan", "6200000000000000004"]) == 2
    assert "--card-pin and --card-expiry" in capsys.readouterr().err
