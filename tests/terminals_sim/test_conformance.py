"""The conformance suite against fake hosts that do and do not follow the contract."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from terminals_sim.conformance import (
    CHECK_NAMES,
    CheckResult,
    CheckStatus,
    ConformanceTarget,
    run_conformance,
    write_junit,
)
from tests.terminals_sim.fakehost import MERCHANT, TERMINAL, TMK, FakeHost, serve_fake_host


def _target(port: int, timeout: float) -> ConformanceTarget:
    return ConformanceTarget("127.0.0.1", port, MERCHANT, TERMINAL, TMK, timeout=timeout)


async def _run(host: FakeHost) -> dict[str, CheckResult]:
    server, port = await serve_fake_host(host)
    try:
        results = await run_conformance(_target(port, 2.0))
    finally:
        server.close()
    return {r.name: r for r in results}


CHIP = ("chip_arpc", "chip_tampered_arqc", "ic_download")


async def test_a_host_following_the_contract_passes_every_check() -> None:
    results = await _run(FakeHost(rotate=True))
    assert list(results) == list(CHECK_NAMES)
    # the fake host serves the magnetic contract: its answers carry no 55 and it has no IC
    # downloads, so the chip checks say so (they pass against the switch: test_switch_e2e.py)
    magnetic = [name for name in CHECK_NAMES if name not in CHIP]
    assert {name: results[name].status for name in magnetic} == dict.fromkeys(magnetic, CheckStatus.PASSED)
    assert {name: results[name].status for name in CHIP} == dict.fromkeys(CHIP, CheckStatus.SKIPPED)
    assert "without field 55" in results["chip_arpc"].reason
    assert "does not serve the IC downloads" in results["ic_download"].reason


async def test_a_wrong_check_value_fails_the_signin_checks() -> None:
    results = await _run(FakeHost(rotate=True, wrong_cv=True))
    for name in ("signin_001", "signin_003", "signin_004"):
        assert results[name].status is CheckStatus.FAILED
        assert "PIK check value does not match" in results[name].reason
    assert results["key_rotation"].status is CheckStatus.FAILED
    assert results["operator_signin_right"].status is CheckStatus.SKIPPED
    assert "sign-in 003 failed" in results["operator_signin_right"].reason
    assert results["echo"].status is CheckStatus.PASSED
    assert results["unknown_terminal"].status is CheckStatus.PASSED


async def test_keys_that_do_not_rotate_fail_key_rotation() -> None:
    results = await _run(FakeHost(rotate=False))
    assert results["key_rotation"].status is CheckStatus.FAILED
    assert results["key_rotation"].reason == "a second sign-in returned the same PIK and MAK"


async def test_a_host_that_closes_on_a_malformed_frame_is_reported_as_such() -> None:
    results = await _run(FakeHost(rotate=True, close_on_malformed=True))
    assert results["malformed_frame"].status is CheckStatus.SKIPPED
    assert "closed the connection" in results["malformed_frame"].reason


async def test_an_unreachable_host_fails_without_a_traceback() -> None:
    server, port = await serve_fake_host(FakeHost())
    server.close()
    await server.wait_closed()
    results = await run_conformance(_target(port, 1.0))
    assert results[0].status is CheckStatus.FAILED and "refused" in results[0].reason


def test_junit_xml_has_one_testcase_per_check(tmp_path: Path) -> None:
    reason = "PIK check value does not match the decrypted key"
    results = [
        CheckResult("signin_001", CheckStatus.PASSED, "", 0.01),
        CheckResult("signin_003", CheckStatus.FAILED, reason, 0.02),
        CheckResult("malformed_frame", CheckStatus.SKIPPED, "the host closed the connection", 0.0),
    ]
    path = tmp_path / "junit.xml"
    write_junit(results, path, target="127.0.0.1:5800")
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    failure = cases["signin_003"].find("failure")
    assert failure is not None and failure.get("message") == reason
    assert cases["malformed_frame"].find("skipped") is not None
    assert len(cases["signin_001"]) == 0
