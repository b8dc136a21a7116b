"""The generated reference documents exactly what the parsers accept."""

from __future__ import annotations

import pytest

from hsm_sim.dispatcher import COMMANDS, Dispatcher
from hsm_sim.errors import HsmError
from hsm_sim.hostcmd import FieldCursor, FieldKind, FieldSpec
from hsm_sim.reference import render_reference

REFERENCE = render_reference()


def _choice_fields() -> list[tuple[str, FieldSpec]]:
    out = []
    for code, command in sorted(COMMANDS.items()):
        for field in command.spec.request:
            if field.kind is FieldKind.CHOICE:
                out.append((code, field))
    return out


def test_reference_is_deterministic() -> None:
    assert render_reference() == REFERENCE


@pytest.mark.parametrize("code", sorted(COMMANDS))
def test_reference_lists_command_fields_and_errors(code: str) -> None:
    spec = COMMANDS[code].spec
    section = REFERENCE.split(f"## {code} → {spec.response_code}: {spec.name}\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    for field in (*spec.request, *spec.response):
        assert f"| {field.name} | {field.wire_format} |" in section
    for error in spec.errors:
        assert f"- `{error}` {spec.error_description(error)}" in section


def test_reference_names_the_extension_mac_and_test_mode_command() -> None:
    assert "China UnionPay POS" in REFERENCE
    assert "*Test mode only* (otherwise error 68)" in REFERENCE
    assert "answers error 67" in REFERENCE


@pytest.mark.parametrize(("code", "field"), _choice_fields(), ids=lambda v: getattr(v, "name", v))
def test_documented_choices_are_exactly_what_the_parser_accepts(code: str, field: FieldSpec) -> None:
    for value, meaning in field.choices:
        assert f"`{value}` {meaning}" in REFERENCE
        assert FieldCursor(value.encode()).read(field) == value
    with pytest.raises(HsmError) as err:
        FieldCursor(b"~" * field.length).read(field)
    assert err.value.code is field.error


def test_key_fields_document_the_schemes_the_cursor_takes() -> None:
    for command in COMMANDS.values():
        for field in command.spec.request:
            if field.kind is not FieldKind.KEY:
                continue
            forms = field.wire_format.split(" or ")
            assert len(forms) == len(field.key_schemes)
            rejected = {"Z", "U", "T", "X", "Y"} - set(field.key_schemes)
            for tag in rejected - {"Z"}:
                with pytest.raises(HsmError):
                    FieldCursor((tag + "11" * 24).encode()).read_key(field)


def test_nc_reference_describes_the_check_value_the_hsm_sends() -> None:
    # Written by hand from hsm_sim/lmk.py's check_value and the published test LMK's NC answer.
    expected_row = (
        "| LMK check value | 16H | always | The 20 clear LMK pairs (00-01 to 38-39, 16 bytes each) XORed "
        "together, then the two 8-byte halves of that XORed, as 16 hex characters: the value the "
        "open-source Thales simulator reports (7B44AC1DDEE2A94B for the public test LMK). payShield "
        "does not publish its own algorithm. |"
    )
    section = REFERENCE.split("## NC → ND: Perform Diagnostics\n", 1)[1].split("\n## ", 1)[0]
    assert expected_row in section.splitlines()
    assert "00-01, zeros" not in section and "8 zero bytes" not in section
    # and the HSM (default: the public test LMK) sends exactly the value the text names
    assert Dispatcher().handle(b"NC").startswith(b"ND007B44AC1DDEE2A94B")
