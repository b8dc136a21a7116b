"""The host-command field cursor and response builder (hsm_sim.hostcmd)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hsm_sim.errors import ErrorCode, HsmError
from hsm_sim.hostcmd import FieldCursor, FieldKind, FieldSpec, FixedRun, build_response, response_code
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


# --- the fast paths: a FixedRun, a well-formed key, a hex text field --------------------------
# Each answers what the field-by-field reads answer. Expected values and reasons below are
# written out by hand from the field layout; the property test compares against the checked
# field-by-field path (``read``), which the fast paths only fall back to.

_FLAG = FieldSpec(name="Flag", kind=FieldKind.CHOICE, length=1, choices=(("0", "no"), ("A", "yes")))
_VALUE = FieldSpec(name="Value", kind=FieldKind.HEX, length=4)
_COUNT = FieldSpec(name="Count", kind=FieldKind.DIGITS, length=2, error=ErrorCode.PIN_LENGTH)
_FMT = FieldSpec(
    name="Fmt",
    kind=FieldKind.CHOICE,
    length=2,
    choices=(("01", "ISO 0"), ("47", "ISO 3")),
    error=ErrorCode.PIN_BLOCK_FORMAT,
)
_RUN = FixedRun(_FLAG, _VALUE, _COUNT, _FMT)


def test_read_run_returns_the_values_as_read_would() -> None:
    cur = FieldCursor(b"a1b2f0947rest")
    assert cur.read_run(_RUN) == ("A", "1B2F", "09", "47")  # choice and hex upper-cased
    assert cur.offset == 2 + 9
    assert cur.take(4, "rest") == "rest"


@pytest.mark.parametrize(
    ("data", "code", "reason"),
    [
        (b"B1b2f0947", ErrorCode.INPUT_DATA, "Flag: value not allowed at offset 2"),
        (b"01b2g0947", ErrorCode.INPUT_DATA, "Value: expected 4 hex characters at offset 3"),
        (b"01b2f0x47", ErrorCode.PIN_LENGTH, "Count: expected 2 decimal digits at offset 7"),
        (b"01b2f0905", ErrorCode.PIN_BLOCK_FORMAT, "Fmt: value not allowed at offset 9"),
        (b"01b", ErrorCode.INPUT_DATA, "Value: expected 4 characters at offset 3, only 2 left"),
        (b"01\x002f0947", ErrorCode.INPUT_DATA, "Value: non-printable data at offset 3"),
        (b"", ErrorCode.INPUT_DATA, "Flag: expected 1 characters at offset 2, only 0 left"),
    ],
)
def test_read_run_answers_the_first_bad_fields_error(data: bytes, code: ErrorCode, reason: str) -> None:
    with pytest.raises(HsmError) as err:
        FieldCursor(data).read_run(_RUN)
    assert err.value.code is code
    assert err.value.reason == reason


_RUN_BYTES = st.lists(st.sampled_from(list(b"0147aAbBfFgG9xX \x00;\x19")), max_size=12).map(bytes)


@given(_RUN_BYTES)
def test_read_run_agrees_with_reading_field_by_field(data: bytes) -> None:
    def outcome(read: Callable[[FieldCursor], object]) -> object:
        cur = FieldCursor(data)
        try:
            return read(cur), cur.offset
        except HsmError as exc:
            return exc.code, exc.reason

    fast = outcome(lambda cur: cur.read_run(_RUN))
    assert fast == outcome(lambda cur: tuple(cur.read(spec) for spec in _RUN.specs))


@pytest.mark.parametrize(
    "specs",
    [
        (_FLAG,),
        (_FLAG, FieldSpec(name="Key", kind=FieldKind.KEY)),
        (_FLAG, FieldSpec(name="Text", kind=FieldKind.TEXT, length=4)),
    ],
)
def test_fixed_run_refuses_what_it_cannot_read_at_once(specs: tuple[FieldSpec, ...]) -> None:
    with pytest.raises(TypeError):
        FixedRun(*specs)


def test_take_key_lower_case_tag_and_hex() -> None:
    key = FieldCursor(b"u" + b"ab" * 16).take_key("TAK")
    assert key.scheme is KeyScheme.U and key.enc == b"\xab" * 16


@pytest.mark.parametrize(
    ("data", "code", "reason"),
    [
        (b"U" + b"0" * 31 + b"G", ErrorCode.INPUT_DATA, "Key: expected 32 hex characters at offset 3"),
        (b"U" + b"0" * 5, ErrorCode.INPUT_DATA, "Key: expected 32 characters at offset 3, only 5 left"),
        (b"0" * 15, ErrorCode.INPUT_DATA, "Key: expected 16 characters at offset 2, only 15 left"),
        (b"W" + b"0" * 32, ErrorCode.KEY_SCHEME, "Key: invalid key scheme tag at offset 2"),
        (b"Y" + b"0" * 48, ErrorCode.KEY_SCHEME, "Key: key scheme Y not accepted for this field"),
        (b"", ErrorCode.INPUT_DATA, "Key: expected 16 characters at offset 2, only 0 left"),
    ],
)
def test_take_key_errors_name_field_offset_and_reason(data: bytes, code: ErrorCode, reason: str) -> None:
    with pytest.raises(HsmError) as err:
        FieldCursor(data).take_key("Key")
    assert err.value.code is code
    assert err.value.reason == reason


def test_take_hex_text_upper_cases_and_keeps_its_errors() -> None:
    cur = FieldCursor(b"00ff9a")
    assert cur.take_hex_text(4, "MAC") == "00FF"
    with pytest.raises(HsmError) as err:
        cur.take_hex_text(4, "MAC")
    assert err.value.reason == "MAC: expected 4 characters at offset 6, only 2 left"
    with pytest.raises(HsmError) as err:
        FieldCursor(b"00fz").take_hex_text(4, "MAC", ErrorCode.PIN_BLOCK_INVALID)
    assert err.value.code is ErrorCode.PIN_BLOCK_INVALID
    assert err.value.reason == "MAC: expected 4 hex characters at offset 2"
