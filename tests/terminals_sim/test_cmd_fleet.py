"""``switchsim fleet`` and ``switchsim conformance``: exit status and files (CLI in switchsim/cmd_fleet.py).

Kept beside the terminal tests: the CLI is the fleet's front door and uses the same fake host.
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from specs.testcards import DEFAULT_TEST_CARDS
from switchsim.cli import main
from tests.storeread import read_store
from tests.terminals_sim.fakehost import MERCHANT, TERMINAL, TMK, FakeHost, provisioned_host, threaded_host
from tests.terminals_sim.switchthread import threaded_switch


# Knows the fleet's merchant but none of its terminals: every sign-in is answered 97.
def _stranger_host() -> FakeHost:
    return FakeHost(terminals={("848100000000000", "99999999"): TMK})


ECHO_FILE = '[[setup]]\nstep = "signin"\n[[mix]]\nstep = "echo"\n'


def _scenario(tmp_path: Path, text: str = ECHO_FILE) -> str:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return str(path)


def test_fleet_exits_0_and_writes_the_report_and_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    with threaded_host(provisioned_host(3)) as port:
        rc = main(["fleet", "--target", f"127.0.0.1:{port}", "--terminals", "3", "--exchanges", "30",
                   "--scenario", _scenario(tmp_path), "--report", str(out), "--quiet"])
    assert rc == 0
    report = json.loads(out.read_text())
    for key in ("exchanges", "failures", "tps", "latency_ms", "response_codes", "tps_over_time", "by_kind"):
        assert key in report
    assert report["exchanges"] == 30 and report["response_codes"] == {"00": 30}
    assert set(report["latency_ms"]) >= {"p50", "p90", "p99", "p999", "max"}
    assert (tmp_path / "report.html").is_file()
    assert "expectations" in capsys.readouterr().out


def test_fleet_exits_1_when_expectations_fail(tmp_path: Path) -> None:
    with threaded_host(provisioned_host(2, wrong_cv=True)) as port:
        rc = main(["fleet", "--target", f"127.0.0.1:{port}", "--terminals", "2", "--exchanges", "4",
                   "--scenario", _scenario(tmp_path), "--quiet"])
    assert rc == 1


def test_fleet_exits_1_when_a_code_is_not_the_expected_one(tmp_path: Path) -> None:
    # Terminals the host does not know answer 97; the scenario expects 00.
    with threaded_host(_stranger_host()) as port:
        rc = main(["fleet", "--target", f"127.0.0.1:{port}", "--terminals", "1", "--exchanges", "2",
                   "--scenario", _scenario(tmp_path), "--quiet"])
    assert rc == 1


def test_fleet_exits_0_when_the_scenario_expects_the_decline(tmp_path: Path) -> None:
    text = '[[mix]]\nstep = "signin"\nexpect = ["97"]\n'
    with threaded_host(_stranger_host()) as port:
        rc = main(["fleet", "--target", f"127.0.0.1:{port}", "--terminals", "1", "--exchanges", "3",
                   "--scenario", _scenario(tmp_path, text), "--quiet"])
    assert rc == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fleet", "--target", "nohost", "--exchanges", "1"], "HOST:PORT"),
        (["fleet", "--exchanges", "1"], "--target"),
        (["fleet", "--target", "127.0.0.1:9", "--scenario", "nope", "--exchanges", "1"], "built-ins"),
        (["fleet", "--provision", "--terminals", "2"], "--db"),
    ],
)
def test_fleet_bad_usage_exits_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_fleet_bad_scenario_file_names_the_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _scenario(tmp_path, '[[mix]]\nstep = "echo"\nweight = -1\n')
    assert main(["fleet", "--target", "127.0.0.1:9", "--scenario", path, "--exchanges", "1"]) == 2
    assert "mix step 1 (echo): weight must be a positive integer" in capsys.readouterr().err


def test_fleet_argparse_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["fleet", "--duration", "soon"])
    assert info.value.code == 2


def test_provision_registers_the_plan_and_the_test_cards_in_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "switch.db"
    assert main(["fleet", "--provision", "--db", str(db), "--terminals", "2"]) == 0
    assert f"provisioned 2 terminals in {db}" in " ".join(capsys.readouterr().err.split())  # rich wraps
    ids = sorted((t.id.merchant, t.id.terminal) for t in read_store(db, lambda store: store.list_terminals()))
    cards = read_store(db, lambda store: store.list_cards())
    assert ids == [("848100000000000", "00000001"), ("848100000000000", "00000002")]
    assert len(cards) == len(DEFAULT_TEST_CARDS)


def test_conformance_exits_1_against_a_wrong_cv_host_and_writes_junit(tmp_path: Path) -> None:
    junit = tmp_path / "c.xml"
    with threaded_host(FakeHost(rotate=True, wrong_cv=True)) as port:
        rc = main(["conformance", "--target", f"127.0.0.1:{port}", "--merchant", MERCHANT,
                   "--terminal", TERMINAL, "--tmk", "11" * 16, "--junit", str(junit), "--timeout", "2"])
    assert rc == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and int(suite.get("failures", "0")) >= 3


def test_conformance_exits_0_against_a_conforming_host() -> None:
    with threaded_host(FakeHost(rotate=True)) as port:
        rc = main(["conformance", "--target", f"127.0.0.1:{port}", "--merchant", MERCHANT,
                   "--terminal", TERMINAL, "--tmk", "11" * 16, "--timeout", "2"])
    assert rc == 0


def test_conformance_bad_tmk_is_usage() -> None:
    with pytest.raises(SystemExit) as info:
        main(["conformance", "--target", "h:1", "--merchant", MERCHANT, "--terminal", TERMINAL,
              "--tmk", "XYZ"])
    assert info.value.code == 2


def test_fleet_runs_on_uvloop(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    with threaded_host(provisioned_host(2)) as port:
        rc = main(["fleet", "--target", f"127.0.0.1:{port}", "--terminals", "2", "--exchanges", "10",
                   "--scenario", _scenario(tmp_path), "--quiet", "--uvloop"])
    assert rc == 0


def test_uvloop_missing_is_usage(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert main(["fleet", "--target", "127.0.0.1:9", "--exchanges", "1", "--uvloop"]) == 2
    assert "switchsim[fast]" in capsys.readouterr().err


# -- verdicts for CI, against the real switch (switchthread.py) ------------------------------


def _junit_cases(path: Path) -> dict[str, ET.Element]:
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    return {f"{c.get('classname')}/{c.get('name')}": c for c in suite.iter("testcase")}


def _failed(cases: dict[str, ET.Element]) -> set[str]:
    return {name for name, case in cases.items() if case.find("failure") is not None}


def test_fleet_verdict_passes_within_thresholds_and_writes_junit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "out" / "fleet.xml"
    with threaded_switch(tmp_path, 2) as port:
        rc = main(["fleet", "--target", f"127.0.0.1:{port}", "--terminals", "2", "--exchanges", "30",
                   "--scenario", _scenario(tmp_path), "--quiet", "--max-p99-ms", "20000", "--min-tps", "0.5",
                   "--max-failure-ratio", "0", "--junit", str(junit)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.splitlines()[0].startswith("verdict: PASSED (failures 0.00% (0 of 30) <= 0.00%; p99 ")
    cases = _junit_cases(junit)
    assert set(cases) == {
        "switchsim.fleet.thresholds/max_failure_ratio",
        "switchsim.fleet.thresholds/max_p99_ms",
        "switchsim.fleet.thresholds/min_tps",
        "switchsim.fleet.steps/signin",
        "switchsim.fleet.steps/echo",
    }
    assert _failed(cases) == set()
    signin = cases["switchsim.fleet.steps/signin"].find("system-out")
    assert signin is not None and "signin: 2 exchanges, none failed" in (signin.text or "")


def test_fleet_verdict_fails_each_threshold_missed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junit = tmp_path / "fleet.xml"
    with threaded_switch(tmp_path, 2) as port:
        rc = main(["fleet", "--target", f"127.0.0.1:{port}", "--terminals", "2", "--exchanges", "20",
                   "--scenario", _scenario(tmp_path), "--quiet", "--max-p99-ms", "0.001",
                   "--min-tps", "1000000", "--junit", str(junit)])
    assert rc == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("verdict: FAILED: p99 ") and "> 0.001 ms" in first and "< 1e+06" in first
    cases = _junit_cases(junit)
    assert _failed(cases) == {"switchsim.fleet.thresholds/max_p99_ms", "switchsim.fleet.thresholds/min_tps"}
    failure = cases["switchsim.fleet.thresholds/max_p99_ms"].find("failure")
    assert failure is not None and failure.get("type") == "ThresholdFailed"
    assert (failure.get("message") or "").endswith("> 0.001 ms")


def test_fleet_failure_ratio_is_a_threshold(tmp_path: Path) -> None:
    # The switch knows none of the fleet's merchants: every sign-in is answered 03, a failure.
    signins = _scenario(tmp_path, '[[mix]]\nstep = "signin"\n')
    junit = tmp_path / "fleet.xml"
    with threaded_switch(tmp_path, 0) as port:
        base = ["fleet", "--target", f"127.0.0.1:{port}", "--terminals", "2", "--exchanges", "10",
                "--scenario", signins, "--quiet", "--junit", str(junit)]
        assert main([*base, "--max-failure-ratio", "0.99"]) == 1
        cases = _junit_cases(junit)
        assert _failed(cases) == {"switchsim.fleet.thresholds/max_failure_ratio", "switchsim.fleet.steps/signin"}
        failure = cases["switchsim.fleet.steps/signin"].find("failure")
        assert failure is not None
        assert failure.get("message") == "signin: 10 of 10 failed (100.00% > 99.00%): unexpected_code 10"
        unknown = "39 = 03 (unknown merchant: is the terminal provisioned?), expected 00"
        assert f"10 x signin: unexpected_code: {unknown}" in (failure.text or "")
        assert main([*base, "--max-failure-ratio", "1"]) == 0
        assert _failed(_junit_cases(junit)) == set()


def test_fleet_prints_progress_lines_when_stdout_is_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with threaded_switch(tmp_path, 2) as port:
        rc = main(["fleet", "--target", f"127.0.0.1:{port}", "--terminals", "2", "--duration", "3s",
                   "--scenario", _scenario(tmp_path, "think_ms = 20\n" + ECHO_FILE), "--progress-interval", "1"])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    progress = [i for i, line in enumerate(lines) if re.fullmatch(
        r"\d+\.\ds/3s exchanges \d+ TPS \d+ errors 0 timeouts 0 conns \d+", line)]
    assert len(progress) >= 2, lines
    assert progress == list(range(len(progress)))  # first, and nothing else on their lines
    # The summary starts on a line of its own, with the verdict.
    assert lines[len(progress)].startswith("verdict: PASSED")
    assert "fleet run:" in lines[len(progress) + 1]


def test_fleet_refuses_a_report_name_that_is_not_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "run.xml"
    assert main(["fleet", "--target", "127.0.0.1:9", "--exchanges", "1", "--report", str(report)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--report must name a .json file" in err and "run.xml" in err
    assert not report.exists() and not (tmp_path / "run.html").exists()


def test_fleet_thresholds_out_of_range_are_usage(capsys: pytest.CaptureFixture[str]) -> None:
    for option, value in (("--max-failure-ratio", "1.5"), ("--max-p99-ms", "0"), ("--min-tps", "-3")):
        with pytest.raises(SystemExit) as info:
            main(["fleet", "--target", "127.0.0.1:9", "--exchanges", "1", option, value])
        assert info.value.code == 2
        assert option in capsys.readouterr().err
