"""Arrows point inwards: the core packages never import the CLI, the switch never imports the
fleet, the HSM neither of them, and specs/ (the innermost layer) none of the others.

Read from the source with ast, so an import inside a function, under TYPE_CHECKING or by
importlib.import_module("...") counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: package -> the packages of this project it must never import.
FORBIDDEN: dict[str, frozenset[str]] = {
    "specs": frozenset({"switch", "hsm_sim", "terminals_sim", "switchsim"}),
    "hsm_sim": frozenset({"switch", "terminals_sim", "switchsim"}),
    "switch": frozenset({"terminals_sim", "switchsim"}),
    "terminals_sim": frozenset({"switchsim"}),
}


def imported_packages(source: str, filename: str = "<source>") -> set[str]:
    """The top-level package of every module ``source`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.partition(".")[0])
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr in ("import_module", "__import__"))
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value.partition(".")[0])
    return found


def _sources(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources found for {package}"
    return files


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_it_must_not(package: str) -> None:
    broken = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _sources(package)
        for name in sorted(imported_packages(path.read_text(encoding="utf-8"), str(path)) & FORBIDDEN[package])
    ]
    assert not broken, "\n".join(broken)


def test_the_walker_sees_the_imports_the_packages_do_have() -> None:
    # Guards the test above against passing vacuously: known arrows are found.
    engine = imported_packages((ROOT / "switch" / "engine.py").read_text(encoding="utf-8"))
    assert {"specs", "hsm_sim", "switch"} <= engine
    client = imported_packages((ROOT / "hsm_sim" / "client.py").read_text(encoding="utf-8"))
    assert "hsm_sim" in client


def test_the_walker_finds_every_form_of_import() -> None:
    source = """
import switchsim.logs
from terminals_sim import fleet
from .sibling import x
def late():
    from switch.app import serve_switch
    import importlib
    importlib.import_module("hsm_sim.dispatcher")
    __import__("specs")
"""
    assert imported_packages(source) == {"switchsim", "terminals_sim", "switch", "importlib", "hsm_sim", "specs"}
