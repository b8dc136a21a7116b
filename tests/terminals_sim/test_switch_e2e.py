"""The fleet and the conformance suite against the real switch (in-process HSM, temporary
SQLite store, the shared test cards) over sockets on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from specs.testcards import DEFAULT_TEST_CARDS
from switch.app import RunningSwitch, serve_switch
from switch.config import DeclaredCard, DeclaredTerminal, SwitchConfig
from terminals_sim.conformance import CHECK_NAMES, CheckStatus, ConformanceTarget, run_conformance
from terminals_sim.fleet import FleetConfig, run_fleet
from terminals_sim.outcome import Kind
from terminals_sim.provision import provision_plan
from terminals_sim.scenario import load_scenario, parse_scenario
from tests.terminals_sim.fakehost import MERCHANT, TERMINAL, TMK

FLEET = 4


async def _switch(tmp_path: Path, **config: object) -> RunningSwitch:
    declared = [DeclaredTerminal(MERCHANT, TERMINAL, TMK)]
    declared += [DeclaredTerminal(p.merchant, p.terminal, p.tmk) for p in provision_plan(FLEET)]
    # the shared test cards, a chip one's IMK-AC derived from the fleet's seed (imk_ac left out)
    cards = tuple(DeclaredCard(c.pan, c.expiry, c.pin, c.balance_cents, c.limit_cents, c.service_code,
                               c.status.value, chip=c.chip, psn=c.psn or "01") for c in DEFAULT_TEST_CARDS)
    args: dict[str, object] = {"port": 0, "db": str(tmp_path / "switch.db"), "hsm": "inproc",
                               "terminals": tuple(declared), "cards": cards}
    args.update(config)
    return await serve_switch(SwitchConfig(**args))  # type: ignore[arg-type]


@pytest.fixture
async def switch(tmp_path: Path) -> AsyncIterator[RunningSwitch]:
    running = await _switch(tmp_path)
    yield running
    await running.close()


async def test_conformance_passes_against_our_switch(switch: RunningSwitch) -> None:
    results = await run_conformance(ConformanceTarget("127.0.0.1", switch.port, MERCHANT, TERMINAL, TMK))
    failed = {r.name: r.reason for r in results if r.status is not CheckStatus.PASSED}
    assert failed == {}
    assert [r.name for r in results] == list(CHECK_NAMES)


async def test_steady_fleet_against_the_switch(switch: RunningSwitch) -> None:
    scenario = parse_scenario(
        '[[setup]]\nstep = "signin"\n[[setup]]\nstep = "operator_signin"\n'
        '[[mix]]\nstep = "echo"\nweight = 4\n[[mix]]\nstep = "status_upload"\n'
        '[[mix]]\nstep = "param_download"\n[[teardown]]\nstep = "signoff"\n', "steady-fast")
    config = FleetConfig("127.0.0.1", switch.port, FLEET, scenario, exchanges=60, random_seed=1)
    result = await run_fleet(config)
    problems = dict(result.stats.problems)
    assert problems == {}
    assert result.stats.exchanges == 60 and result.expectations_held
    assert result.stats.by_kind[Kind.OPERATOR_SIGNIN].ok == FLEET


async def test_short_connections_keep_the_session_across_reconnects(switch: RunningSwitch) -> None:
    scenario = load_scenario("short-conn")
    config = FleetConfig("127.0.0.1", switch.port, FLEET, scenario, exchanges=40, random_seed=2)
    result = await run_fleet(config)
    assert dict(result.stats.problems) == {}
    # signed in once, on the first connection; every later exchange on a new one
    assert result.stats.by_kind[Kind.SIGNIN].exchanges == FLEET
    assert result.stats.by_kind[Kind.ECHO].ok + result.stats.by_kind[Kind.STATUS_UPLOAD].ok == 40 - FLEET


async def test_expired_keys_make_terminals_sign_in_again(tmp_path: Path) -> None:
    running = await _switch(tmp_path, key_lifetime=0.2)
    try:
        scenario = parse_scenario('think_ms = 60\n[[setup]]\nstep = "signin"\n[[mix]]\nstep = "echo"\n', "t")
        result = await run_fleet(FleetConfig("127.0.0.1", running.port, 1, scenario, duration=0.8))
    finally:
        await running.close()
    assert result.stats.by_kind[Kind.SIGNIN].exchanges >= 2  # the header asked for a new sign-in
    assert dict(result.stats.problems) == {}


ISO87_DAY = """
[[setup]]
step = "signin"
[[mix]]
step = "authorisation"
amount = ["1.00", "500.00"]
weight = 4
[[mix]]
step = "authorisation"
card = "6222021234567890144"
amount = "20.00"
expect = ["51"]
[[mix]]
step = "echo"
[[teardown]]
step = "signoff"
"""


async def test_fleet_drives_an_iso87_binary_switch(tmp_path: Path) -> None:
    running = await _switch(tmp_path, dialect="iso87-binary")
    try:
        scenario = parse_scenario(ISO87_DAY, "iso87-fast")
        config = FleetConfig("127.0.0.1", running.port, FLEET, scenario, exchanges=80, random_seed=3,
                             dialect="iso87-binary")
        result = await run_fleet(config)
        conformance = await run_conformance(
            ConformanceTarget("127.0.0.1", running.port, MERCHANT, TERMINAL, TMK, dialect="iso87-binary"))
    finally:
        await running.close()
    assert dict(result.stats.problems) == {}
    assert result.stats.failed == 0 and result.expectations_held
    by_kind = result.stats.by_kind
    assert by_kind[Kind.SIGNIN].ok == FLEET
    assert by_kind[Kind.AUTHORISATION].ok > 0 and by_kind[Kind.ECHO].ok > 0
    # the low-balance card (10.00) is declined 51, as the scenario expects
    assert by_kind[Kind.AUTHORISATION].response_codes["51"] > 0
    status = {r.name: r.status for r in conformance}
    assert {n for n, s in status.items() if s is CheckStatus.FAILED} == set()
    assert {n for n, s in status.items() if s is CheckStatus.PASSED} == {"echo", "signoff", "malformed_frame"}


def test_the_built_in_iso87_scenario_speaks_only_iso87_kinds() -> None:
    config = FleetConfig("127.0.0.1", 1, 1, load_scenario("iso87-day"), exchanges=1, dialect="iso87-ascii")
    assert config.dialect == "iso87-ascii"
    with pytest.raises(ValueError, match="operator_signin, param_download, status_upload not in the iso87"):
        FleetConfig("127.0.0.1", 1, 1, load_scenario("steady"), exchanges=1, dialect="iso87-binary")
    with pytest.raises(ValueError, match="dialect 'x25'"):
        FleetConfig("127.0.0.1", 1, 1, load_scenario("steady"), exchanges=1, dialect="x25")
