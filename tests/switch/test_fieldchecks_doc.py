"""docs/diagnostics.md lists every field check with what it compares, as switch/fieldchecks.py has it."""

from __future__ import annotations

from pathlib import Path

from switch.fieldchecks import DESCRIPTIONS, Check

DOC = Path(__file__).resolve().parents[2] / "docs" / "diagnostics.md"


def test_every_check_is_in_the_docs_table_with_its_description() -> None:
    rows = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    by_name = {row.split("|")[1].strip().strip("`"): row.split("|")[2].strip() for row in rows}
    assert set(by_name) == {check.value for check in Check}
    for check in Check:
        assert by_name[check.value] == DESCRIPTIONS[check]
