"""The host-command field cursor and response builder (hsm_sim.hostcmd)."""

from __future__ import annotations

import pytest

from hsm_sim.errors import ErrorCode, HsmError
from hsm_sim.hostcmd import FieldCursor, FieldKind, FieldSpec, build_response, response_code
from hsm_sim.lmk import KeyScheme


@pytest.mark.parametrize(
    ("command", "response"),
    [("A0", "A1"), ("NC", "ND"), ("CA", "CB"), ("M6", "M7"), ("M8", "M9"), ("M9", "MA"), ("BZ", "B0")],
)
def test_response_code_increments_second_character(command: str, response: str) -> None:
    assert response_code(command) == response


def test_response_code_rejects_non_codes() -> None:
    with pytest.raises(ValueError):
        response_code("A")


def test_build_response_concatenates_code_error_and_fields() -> None:
    assert build_response("BU", ErrorCode.NO_ERROR, "08D7B4", b"\x19x") == b"BV0008D7B4\x19x"


def test_errors_name_field_and_offset() -> None:
    with pytest.raises(HsmError) as err:
        FieldCursor(b"12").take(4, "Account number")
    assert err.value.code is ErrorCode.INPUT_DATA
    assert "Account number" in err.value.reason and "offset 2" in err.value.reason


@pytest.mark.parametrize(
    ("text", "scheme", "length"),
    [
        ("0123456789ABCDEF", KeyScheme.Z, 8),
        ("Z0123456789ABCDEF", KeyScheme.Z, 8),
        ("U" + "01" * 16, KeyScheme.U, 16),
        ("T" + "01" * 24, KeyScheme.T, 24),
        ("X" + "ab" * 16, KeyScheme.X, 16),
        ("Y" + "01" * 24, KeyScheme.Y, 24),
    ],
)
def test_take_key_notation(text: str, scheme: KeyScheme, length: int) -> None:
    cur = FieldCursor(text.encode() + b"rest")
    key = cur.take_key("Key", "ZUTXY")
    assert key.scheme is scheme and len(key.enc) == length
    assert cur.take(4, "rest") == "rest"


def test_take_key_bad_tag_is_26() -> None:
    with pytest.raises(HsmError) as err:
        FieldCursor(b"W" + b"0" * 32).take_key("ZMK")
    assert err.value.code is ErrorCode.KEY_SCHEME


def test_take_key_scheme_not_allowed_for_field_is_26() -> None:
    with pytest.raises(HsmError) as err:
        FieldCursor(b"X" + b"0" * 32).take_key("TPK", "ZUT")
    assert err.value.code is ErrorCode.KEY_SCHEME


def test_take_key_bad_hex_is_15() -> None:
    with pytest.raises(HsmError) as err:
        FieldCursor(b"U" + b"G" * 32).take_key("TMK")
    assert err.value.code is ErrorCode.INPUT_DATA


def test_key_field_repr_hides_key_bytes() -> None:
    key = FieldCursor(b"U" + b"AB" * 16).take_key("K")
    assert "AB" not in repr(key) and "length=16" in repr(key)


def test_take_until_delimiter() -> None:
    cur = FieldCursor(b"4564320000980369;2512")
    assert cur.take_until(";", "PAN", 19) == "4564320000980369"
    assert cur.take(4, "Expiry") == "2512"


def test_take_until_without_delimiter_is_15() -> None:
    with pytest.raises(HsmError) as err:
        FieldCursor(b"45643200009803690000;").take_until(";", "PAN", 19)
    assert err.value.code is ErrorCode.INPUT_DATA


def test_read_choice_uses_the_field_error_code() -> None:
    spec = FieldSpec(
        name="Fmt",
        kind=FieldKind.CHOICE,
        length=2,
        choices=(("01", "ISO 0"),),
        error=ErrorCode.PIN_BLOCK_FORMAT,
    )
    assert FieldCursor(b"01").read(spec) == "01"
    with pytest.raises(HsmError) as err:
        FieldCursor(b"02").read(spec)
    assert err.value.code is ErrorCode.PIN_BLOCK_FORMAT


def test_finish_keeps_trailer_up_to_32_characters() -> None:
    cur = FieldCursor(b"\x19" + b"t" * 32)
    cur.finish()
    assert cur.trailer == b"\x19" + b"t" * 32
    with pytest.raises(HsmError):
        FieldCursor(b"\x19" + b"t" * 33).finish()


def test_finish_rejects_leftover_data() -> None:
    cur = FieldCursor(b"0000X")
    cur.take(4, "n")
    with pytest.raises(HsmError) as err:
        cur.finish()
    assert err.value.code is ErrorCode.INPUT_DATA


def test_take_rejects_control_characters_in_text_fields() -> None:
    with pytest.raises(HsmError):
        FieldCursor(b"12\x0034").take(5, "Account number")
