"""Key management host commands (A0, A6, A8, HC, HA, BU) against published transcripts and
an independent model of the variant LMK (test_cmd_oracle)."""

from __future__ import annotations

import pytest

from hsm_sim.dispatcher import COMMANDS, Dispatcher
from tests.hsm_sim.test_cmd_oracle import (
    SNOWCH_ZMK_LMK,
    SNOWCH_ZPK_LMK,
    SNOWCH_ZPK_ZMK,
    TDES_KEY,
    clear_from_field,
    des3,
    field_bytes,
    kcv,
    lmk_encrypt,
    lmk_field,
    odd_parity,
)

HSM = Dispatcher(reraise_bugs=True)
TMK_FIELD = lmk_field("002", TDES_KEY)  # the published key 0123...3210 as a TMK, KCV 08D7B4


def call(message: str | bytes) -> str:
    """Send a command; also check the answer's error code is one the command documents."""
    raw = message.encode("ascii") if isinstance(message, str) else message
    answer = HSM.handle(raw).decode("latin-1")
    declared = {str(code) for code in COMMANDS[raw[:2].decode()].spec.errors}
    assert answer[2:4] in declared, f"{answer[:4]} not in the documented errors"
    return answer


def split_key(text: str) -> tuple[str, str]:
    """First key field of ``text`` and the rest."""
    n = {"U": 33, "X": 33, "T": 49, "Y": 49}.get(text[0], 16)
    return text[:n], text[n:]


# --- A0 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "scheme", "length"),
    [("001", "Z", 8), ("002", "U", 16), ("003", "Z", 8), ("00B", "T", 24), ("001", "0", 8)],
)
def test_a0_mode0_generates_key_under_lmk_with_kcv(key_type: str, scheme: str, length: int) -> None:
    answer = call(f"A00{key_type}{scheme}")
    assert answer[:4] == "A100"
    under_lmk, rest = split_key(answer[4:])
    key = clear_from_field(key_type, under_lmk)
    assert len(key) == length and odd_parity(key)
    assert rest == kcv(key)


@pytest.mark.parametrize(
    ("lmk_scheme", "tmk_scheme", "length"), [("Z", "Z", 8), ("U", "X", 16), ("T", "Y", 24)]
)
def test_a0_mode1_exports_under_tmk_as_plain_ecb(lmk_scheme: str, tmk_scheme: str, length: int) -> None:
    answer = call(f"A01001{lmk_scheme};1{TMK_FIELD}{tmk_scheme}")
    assert answer[:4] == "A100"
    under_lmk, rest = split_key(answer[4:])
    under_tmk, check = split_key(rest)
    key = clear_from_field("001", under_lmk)
    assert len(key) == length
    if tmk_scheme == "Z":
        assert len(under_tmk) == 16  # single-length keys travel untagged
    else:
        assert under_tmk[0] == tmk_scheme
    assert des3(TDES_KEY, field_bytes(under_tmk), decrypt=True) == key
    assert check == kcv(key)


def test_a0_mode1_exports_under_zmk_by_default() -> None:
    zmk = clear_from_field("000", SNOWCH_ZMK_LMK)
    answer = call(f"A01003Z{SNOWCH_ZMK_LMK}Z")
    assert answer[:4] == "A100"
    under_lmk, rest = split_key(answer[4:])
    under_zmk, check = split_key(rest)
    key = clear_from_field("003", under_lmk)
    assert des3(zmk, field_bytes(under_zmk), decrypt=True) == key
    assert check == kcv(key)


def test_a0_mode1_variant_export_uses_scheme_variants_on_the_zmk() -> None:
    zmk = clear_from_field("000", SNOWCH_ZMK_LMK)
    answer = call(f"A01001U;0{SNOWCH_ZMK_LMK}U")
    under_lmk, rest = split_key(answer[4:])
    under_zmk, _ = split_key(rest)
    key = clear_from_field("001", under_lmk)
    enc = field_bytes(under_zmk)
    # Component i under the ZMK whose right half's first byte is XORed with A6 / 5A.
    k_left = zmk[:8] + bytes([zmk[8] ^ 0xA6]) + zmk[9:]
    k_right = zmk[:8] + bytes([zmk[8] ^ 0x5A]) + zmk[9:]
    assert des3(k_left, enc[:8], decrypt=True) + des3(k_right, enc[8:], decrypt=True) == key


def test_a0_rejects_export_scheme_of_other_length() -> None:
    assert call(f"A01001U;1{TMK_FIELD}Z") == "A127"


def test_a0_rejects_unknown_key_type() -> None:
    assert call("A00ZZ1U") == "A104"


def test_a0_rejects_unknown_lmk_scheme() -> None:
    assert call("A00001Q") == "A126"


def test_a0_rejects_x917_scheme_under_lmk() -> None:
    assert call("A00001X") == "A126"


def test_a0_short_message() -> None:
    assert call("A000") == "A115"


def test_a0_trailing_garbage() -> None:
    assert call("A00001UJUNK") == "A115"


def test_a0_tmk_parity_error() -> None:
    bad = lmk_encrypt("002", bytes.fromhex("0023456789ABCDEFFEDCBA9876543210")).hex().upper()
    assert call(f"A01001U;1U{bad}X") == "A110"


def test_a0_tmk_with_bad_hex() -> None:
    assert call(f"A01001U;1U{'G' * 32}X") == "A115"


def test_a0_tmk_with_bad_scheme_tag() -> None:
    assert call(f"A01001U;1Q{TMK_FIELD[1:]}X") == "A126"


# --- A6 / A8 (published snowch/hsm-guide transcript) -----------------------------------------


def test_a6_imports_published_zpk() -> None:
    assert call(f"A6001{SNOWCH_ZMK_LMK}{SNOWCH_ZPK_ZMK}U") == f"A700{SNOWCH_ZPK_LMK}6543F4"


def test_a6_flags_parity_error_of_imported_key_with_01() -> None:
    zmk = clear_from_field("000", SNOWCH_ZMK_LMK)
    even = bytes.fromhex("0023456789ABCDEFFEDCBA9876543210")
    under_zmk = "X" + des3(zmk, even).hex().upper()
    answer = call(f"A6001{SNOWCH_ZMK_LMK}{under_zmk}U")
    assert answer[:4] == "A701"
    under_lmk, check = split_key(answer[4:])
    assert clear_from_field("001", under_lmk) == TDES_KEY  # parity forced odd
    assert check == "08D7B4"


def test_a8_exports_published_zpk() -> None:
    assert call(f"A8001{SNOWCH_ZMK_LMK}{SNOWCH_ZPK_LMK}X") == f"A900{SNOWCH_ZPK_ZMK}6543F4"


def test_a8_exports_under_tmk_with_flag() -> None:
    zpk = clear_from_field("001", SNOWCH_ZPK_LMK)
    answer = call(f"A8001;1{TMK_FIELD}{SNOWCH_ZPK_LMK}X")
    under_tmk, check = split_key(answer[4:])
    assert answer[:4] == "A900" and check == "6543F4"
    assert des3(TDES_KEY, field_bytes(under_tmk), decrypt=True) == zpk


def test_a8_key_parity_error_is_11() -> None:
    bad = "U" + lmk_encrypt("001", bytes.fromhex("0023456789ABCDEFFEDCBA9876543210")).hex().upper()
    assert call(f"A8001{SNOWCH_ZMK_LMK}{bad}X") == "A911"


# --- HC / HA ----------------------------------------------------------------------------------


def test_hc_defaults_to_tmk_length_x917_under_tmk() -> None:
    answer = call(f"HC{TMK_FIELD}")
    assert answer[:4] == "HD00"
    under_tmk, under_lmk = split_key(answer[4:])
    assert under_tmk[0] == "X" and under_lmk[0] == "U"
    key = clear_from_field("002", under_lmk)
    assert des3(TDES_KEY, field_bytes(under_tmk), decrypt=True) == key


def test_ha_single_length_tak_with_options() -> None:
    answer = call(f"HA{TMK_FIELD};ZZ0")
    assert answer[:4] == "HB00"
    under_tmk, under_lmk = split_key(answer[4:])
    assert len(under_tmk) == 16 and len(under_lmk) == 16
    tak = clear_from_field("003", under_lmk)
    assert des3(TDES_KEY, field_bytes(under_tmk), decrypt=True) == tak
    assert odd_parity(tak)


def test_ha_bad_key_scheme_option() -> None:
    assert call(f"HA{TMK_FIELD};QZ0") == "HB26"


# --- BU ---------------------------------------------------------------------------------------


def test_bu_zmk_16h_check_value_starts_with_published_kcv() -> None:
    answer = call(f"BU001{SNOWCH_ZMK_LMK}")
    assert answer[:4] == "BV00"
    assert len(answer) == 4 + 16 and answer[4:10] == "BA0FC3"


def test_bu_kcv_type_1_gives_6h() -> None:
    assert call(f"BU021{TMK_FIELD};UU1") == "BV0008D7B4"


def test_bu_ff_takes_key_type_after_delimiter() -> None:
    assert call(f"BUFF1{SNOWCH_ZPK_LMK};001;001") == "BV006543F4"


def test_bu_ff_without_key_type_is_15() -> None:
    assert call(f"BUFF1{SNOWCH_ZPK_LMK}") == "BV15"


def test_bu_length_flag_mismatch_is_05() -> None:
    assert call(f"BU000{SNOWCH_ZMK_LMK}") == "BV05"


def test_bu_unknown_key_type_code_is_04() -> None:
    assert call(f"BU7Z1{SNOWCH_ZMK_LMK}") == "BV04"
