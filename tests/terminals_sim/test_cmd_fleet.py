"""``switchsim fleet`` and ``switchsim conformance``: exit status and files (CLI in switchsim/cmd_fleet.py).

Kept beside the terminal tests: the CLI is the fleet's front door and uses the same fake host.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from switchsim.cli import main
from tests.terminals_sim.fakehost import MERCHANT, TERMINAL, TMK, FakeHost, provisioned_host, threaded_host


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


def test_provision_without_the_switch_hook_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "switch.provisioning", None)  # import now raises ImportError
    assert main(["fleet", "--provision", "--db", "x.db", "--terminals", "2"]) == 2
    assert "switch.provisioning.provision" in capsys.readouterr().err


def test_provision_calls_the_hook_with_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, list[tuple[str, str, bytes]]]] = []

    class Hook:
        @staticmethod
        def provision(db: str, plan: list[object]) -> None:
            calls.append((db, [tuple(p) for p in plan]))  # type: ignore[misc, arg-type]

    monkeypatch.setitem(sys.modules, "switch.provisioning", Hook)
    assert main(["fleet", "--provision", "--db", "x.db", "--terminals", "2"]) == 0
    assert calls and calls[0][0] == "x.db"
    assert [(m, t) for m, t, _ in calls[0][1]] == [("848100000000000", "00000001"),
                                                  ("848100000000000", "00000002")]


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
