"""The fleet and the conformance suite against the real switch over mutual TLS (127.0.0.1, port
0), and what a fleet sees when its TLS does not fit the switch's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from specs.tls import ClientTls, ServerTls
from switch.app import RunningSwitch
from terminals_sim.conformance import CHECK_NAMES, CheckStatus, ConformanceTarget, run_conformance
from terminals_sim.fleet import FleetConfig, run_fleet
from terminals_sim.outcome import Failure, Kind
from terminals_sim.scenario import parse_scenario
from tests.terminals_sim.fakehost import MERCHANT, TERMINAL, TMK
from tests.terminals_sim.test_switch_e2e import FLEET, _switch
from tests.tlscerts import Pki, make_pki

SELLING = parse_scenario(
    '[[setup]]\nstep = "signin"\n[[setup]]\nstep = "operator_signin"\n'
    '[[mix]]\nstep = "echo"\nweight = 2\n[[mix]]\nstep = "purchase"\namount = "1.00"\nweight = 2\n'
    '[[mix]]\nstep = "balance"\n[[teardown]]\nstep = "signoff"\n', "selling-over-tls")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def switch(tmp_path: Path, pki: Pki) -> AsyncIterator[RunningSwitch]:
    tls = ServerTls(cert=str(pki.server_cert), key=str(pki.server_key), client_ca=str(pki.ca))
    running = await _switch(tmp_path, tls=tls)
    yield running
    await running.close()


def client(pki: Pki) -> ClientTls:
    return ClientTls(ca=str(pki.ca), cert=str(pki.client_cert), key=str(pki.client_key))


async def test_a_selling_fleet_over_mutual_tls_has_no_failure(switch: RunningSwitch, pki: Pki) -> None:
    config = FleetConfig("127.0.0.1", switch.port, FLEET, SELLING, exchanges=60, random_seed=4, tls=client(pki))
    result = await run_fleet(config)
    assert dict(result.stats.problems) == {}
    assert result.stats.exchanges == 60 and result.stats.failed == 0 and result.expectations_held
    assert result.stats.by_kind[Kind.PURCHASE].ok > 0
    assert result.stats.by_kind[Kind.OPERATOR_SIGNIN].ok == FLEET


async def test_conformance_over_mutual_tls_passes(switch: RunningSwitch, pki: Pki) -> None:
    target = ConformanceTarget("127.0.0.1", switch.port, MERCHANT, TERMINAL, TMK, tls=client(pki))
    results = await run_conformance(target)
    assert {r.name: r.reason for r in results if r.status is not CheckStatus.PASSED} == {}
    assert [r.name for r in results] == list(CHECK_NAMES)


ECHO = parse_scenario('[[setup]]\nstep = "signin"\n[[mix]]\nstep = "echo"\n', "echo")


async def test_a_fleet_without_tls_gets_no_answer_from_a_tls_switch(switch: RunningSwitch) -> None:
    result = await run_fleet(FleetConfig("127.0.0.1", switch.port, 1, ECHO, exchanges=2, timeout=5))
    assert result.stats.ok == 0 and result.stats.failures[Failure.RESET] == 2


async def test_a_fleet_that_does_not_trust_the_switch_is_refused_with_the_tls_reason(
    switch: RunningSwitch, tmp_path: Path
) -> None:
    stranger = make_pki(tmp_path)  # another CA: its ca.pem did not sign the switch's certificate
    tls = ClientTls(ca=str(stranger.ca), cert=str(stranger.client_cert), key=str(stranger.client_key))
    result = await run_fleet(FleetConfig("127.0.0.1", switch.port, 1, ECHO, exchanges=1, timeout=5, tls=tls))
    assert result.stats.failures[Failure.REFUSED] == 1
    [problem] = result.stats.problems
    assert problem.startswith("signin: refused: TLS handshake failed: certificate verify failed: ")
