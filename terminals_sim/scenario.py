"""Load scenarios as data: what each virtual terminal does, how often, and what it expects.

A scenario file (TOML)::

    name = "steady"
    description = "sign in once, then a steady mix"
    connection = "persistent"         # or "per-exchange": a new TCP connection per exchange
    key_mode = "003"                  # sign-in 60.3: 001, 003 or 004
    think_ms = [200, 800]             # pause before each mix step: a number or [low, high]

    [[setup]]                         # once per terminal, in order
    step = "signin"
    expect = ["00"]                   # field 39 values that count as success (default ["00"])

    [[mix]]                           # then, until the run ends: a weighted random choice
    step = "echo"
    weight = 8

    [[teardown]]                      # once per terminal when the run ends
    step = "signoff"

Steps: signin, operator_signin, operator_signout, password_change, echo, signoff,
param_download, status_upload. Every problem is a `ScenarioError` naming the file, the step
and what is wrong.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from terminals_sim.outcome import Kind
from terminals_sim.workingkeys import KeyMode

_TOP_KEYS = frozenset(
    {"name", "description", "connection", "key_mode", "think_ms", "setup", "mix", "teardown"}
)
_STEP_KEYS = frozenset({"step", "weight", "expect"})
_SECTIONS = ("setup", "mix", "teardown")
_E = TypeVar("_E", bound=StrEnum)


class ScenarioError(Exception):
    def __init__(self, source: str, where: str, problem: str) -> None:
        self.source = source
        self.where = where
        self.problem = problem
        super().__init__(f"{source}: {where}: {problem}")


class ConnectionHabit(StrEnum):
    PERSISTENT = "persistent"
    PER_EXCHANGE = "per-exchange"


@dataclass(frozen=True, slots=True)
class Step:
    kind: Kind
    weight: int = 1
    expect: frozenset[str] = frozenset({"00"})


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str = ""
    connection: ConnectionHabit = ConnectionHabit.PERSISTENT
    key_mode: KeyMode = KeyMode.DOUBLE
    think_ms: tuple[float, float] = (0.0, 0.0)
    setup: tuple[Step, ...] = ()
    mix: tuple[Step, ...] = ()
    teardown: tuple[Step, ...] = ()


def builtin_names() -> list[str]:
    folder = resources.files("terminals_sim") / "scenarios"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    if name_or_path in builtin_names():
        source = f"{name_or_path}.toml"
        text = (resources.files("terminals_sim") / "scenarios" / source).read_text(encoding="utf-8")
        return parse_scenario(text, f"built-in {source}")
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join(builtin_names())
        raise ScenarioError(name_or_path, "scenario", f"no such file or built-in (built-ins: {known})")
    return parse_scenario(path.read_text(encoding="utf-8"), str(path))


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, "TOML", str(exc)) from None
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ScenarioError(source, "top level", f"unknown keys {sorted(unknown)}")
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise ScenarioError(source, "name", "must be a non-empty string")
    sections = {s: _steps(source, s, data.get(s, [])) for s in _SECTIONS}
    if not sections["setup"] and not sections["mix"]:
        raise ScenarioError(source, "steps", "needs at least one [[setup]] or [[mix]] step")
    return Scenario(
        name=name,
        description=_string(source, "description", data.get("description", "")),
        connection=_enum(source, "connection", ConnectionHabit, data.get("connection", "persistent")),
        key_mode=_enum(source, "key_mode", KeyMode, data.get("key_mode", "003")),
        think_ms=_think(source, data.get("think_ms", 0)),
        setup=sections["setup"],
        mix=sections["mix"],
        teardown=sections["teardown"],
    )


def _steps(source: str, section: str, raw: Any) -> tuple[Step, ...]:
    if not isinstance(raw, list):
        raise ScenarioError(source, section, "must be an array of tables ([[" + section + "]])")
    return tuple(_step(source, f"{section} step {i}", entry) for i, entry in enumerate(raw, 1))


def _step(source: str, where: str, entry: Any) -> Step:
    if not isinstance(entry, dict):
        raise ScenarioError(source, where, "must be a table")
    unknown = set(entry) - _STEP_KEYS
    if unknown:
        raise ScenarioError(source, where, f"unknown keys {sorted(unknown)}")
    name = entry.get("step")
    if name is None:
        raise ScenarioError(source, where, "missing 'step'")
    try:
        kind = Kind(name)
    except ValueError:
        known = ", ".join(k.value for k in Kind)
        raise ScenarioError(source, where, f"unknown step {name!r} (known: {known})") from None
    where = f"{where} ({kind.value})"
    weight = entry.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        raise ScenarioError(source, where, f"weight must be a positive integer, got {weight!r}")
    expect = entry.get("expect", ["00"])
    if not isinstance(expect, list) or not expect:
        raise ScenarioError(source, where, "expect must be a non-empty array of response codes")
    for code in expect:
        if not (isinstance(code, str) and len(code) == 2 and code.isascii() and code.isalnum()):
            raise ScenarioError(source, where, f"expect: {code!r} is not a two-character response code")
    return Step(kind=kind, weight=weight, expect=frozenset(c.upper() for c in expect))


def _string(source: str, where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ScenarioError(source, where, "must be a string")
    return value


def _enum(source: str, where: str, enum: type[_E], value: Any) -> _E:
    try:
        return enum(value)
    except ValueError:
        known = ", ".join(e.value for e in enum)
        raise ScenarioError(source, where, f"{value!r} is not one of {known}") from None


def _think(source: str, value: Any) -> tuple[float, float]:
    if isinstance(value, bool):
        raise ScenarioError(source, "think_ms", "must be a number or [low, high]")
    if isinstance(value, int | float):
        low = high = float(value)
    elif (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        low, high = float(value[0]), float(value[1])
    else:
        raise ScenarioError(source, "think_ms", "must be a number or [low, high]")
    if low < 0 or high < low:
        raise ScenarioError(source, "think_ms", f"needs 0 <= low <= high, got {value!r}")
    return (low, high)
