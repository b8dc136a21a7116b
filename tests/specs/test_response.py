"""One table of response codes and meanings (specs/response.py), printed whole by the docs."""

from __future__ import annotations

import re
from pathlib import Path

from specs.response import MEANINGS, ResponseCode, describe, render_meanings

DOC = Path(__file__).resolve().parents[2] / "docs" / "diagnostics.md"


def test_every_code_the_switch_answers_has_a_meaning() -> None:
    assert set(MEANINGS) == {code.value for code in ResponseCode}
    assert all(text and text == text.strip() for text in MEANINGS.values())


def test_describe_gives_the_code_and_its_meaning() -> None:
    assert describe("03") == "03 (unknown merchant: is the terminal provisioned?)"
    assert describe("Z9") == "Z9 (a code switchsim does not define)"
    assert describe(None) == "none"


def test_the_docs_print_the_table_as_it_is() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- generated: specs.response.render_meanings -->\n```\n(.*?)```", text, re.DOTALL)
    assert block is not None and block.group(1) == render_meanings()
