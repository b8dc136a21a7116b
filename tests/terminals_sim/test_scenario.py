"""Scenario files: the built-ins load, and every mistake names file, step and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from terminals_sim.outcome import Kind
from terminals_sim.scenario import (
    ConnectionHabit,
    ScenarioError,
    builtin_names,
    load_scenario,
    parse_scenario,
)
from terminals_sim.workingkeys import KeyMode


def test_builtins_are_the_five_documented_ones() -> None:
    assert builtin_names() == ["iso87-day", "retail-day", "short-conn", "signin-storm", "steady"]


def test_steady_signs_in_once_then_mixes() -> None:
    s = load_scenario("steady")
    assert [st.kind for st in s.setup] == [Kind.SIGNIN, Kind.OPERATOR_SIGNIN]
    assert {st.kind for st in s.mix} == {Kind.ECHO, Kind.PARAM_DOWNLOAD, Kind.STATUS_UPLOAD}
    assert s.connection is ConnectionHabit.PERSISTENT


def test_short_conn_uses_a_connection_per_exchange() -> None:
    assert load_scenario("short-conn").connection is ConnectionHabit.PER_EXCHANGE


def test_signin_storm_has_no_think_time() -> None:
    s = load_scenario("signin-storm")
    assert s.think_ms == (0.0, 0.0) and [st.kind for st in s.mix] == [Kind.SIGNIN]


def test_a_file_with_every_option(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        'name = "mine"\nconnection = "per-exchange"\nkey_mode = "004"\nthink_ms = [10, 20]\n'
        '[[setup]]\nstep = "signin"\nexpect = ["00", "97"]\n'
        '[[mix]]\nstep = "echo"\nweight = 3\n'
        '[[teardown]]\nstep = "signoff"\n'
    )
    s = load_scenario(str(path))
    assert s.name == "mine" and s.key_mode is KeyMode.DOUBLE_TDK and s.think_ms == (10.0, 20.0)
    assert s.setup[0].expect == frozenset({"00", "97"})
    assert s.mix[0].weight == 3 and s.mix[0].expect == frozenset({"00"})


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ('[[mix]]\nstep = "ech"\n', "mix step 1", "unknown step 'ech'"),
        ('[[mix]]\nstep = "echo"\n[[mix]]\nstep = "echo"\nweight = 0\n', "mix step 2 (echo)",
         "weight must be a positive integer"),
        ('[[setup]]\nstep = "signin"\nexpect = ["000"]\n', "setup step 1 (signin)", "'000' is not a two"),
        ('[[setup]]\nstep = "signin"\nexpect = []\n', "setup step 1 (signin)", "non-empty"),
        ('[[setup]]\nstep = "signin"\nwait = 3\n', "setup step 1", "unknown keys ['wait']"),
        ('[[setup]]\nweight = 3\n', "setup step 1", "missing 'step'"),
        ('name = "x"\n', "steps", "at least one"),
        ('speed = 3\n[[mix]]\nstep = "echo"\n', "top level", "unknown keys ['speed']"),
        ('connection = "sometimes"\n[[mix]]\nstep = "echo"\n', "connection", "'sometimes' is not one of"),
        ('key_mode = "002"\n[[mix]]\nstep = "echo"\n', "key_mode", "'002' is not one of"),
        ('think_ms = [5, 1]\n[[mix]]\nstep = "echo"\n', "think_ms", "low <= high"),
        ('think_ms = "slow"\n[[mix]]\nstep = "echo"\n', "think_ms", "number or [low, high]"),
        ('mix = 3\n', "mix", "array of tables"),
        ('[[mix]\n', "TOML", ""),
    ],
)
def test_mistakes_name_file_step_and_problem(text: str, where: str, problem: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "my.toml")
    err = info.value
    assert err.source == "my.toml"
    assert err.where == where
    assert problem in err.problem
    assert str(err).startswith(f"my.toml: {where}: ")


def test_unknown_name_lists_the_builtins() -> None:
    with pytest.raises(ScenarioError, match="built-ins: iso87-day, retail-day, short-conn, signin-storm, steady"):
        load_scenario("no-such-scenario")
