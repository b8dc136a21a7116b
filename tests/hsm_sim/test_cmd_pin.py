"""PIN host commands against published vectors and the independent oracle (test_cmd_oracle).

Published inputs: PIN 1234 / PAN 5555555551234567 -> ISO format 0 block 041261AAAAEDCBA9 and the
TDES key 0123456789ABCDEFFEDCBA9876543210 (KCV 08D7B4); the snowch/hsm-guide ZPK; Visa PVVs
3856 (PIN 2205) and 0885 (PIN 0654) for PAN 4564320000980369, PVKI 1, PVK
5CA64B3C22BEC347CA7E6609904BAAED (cardutil's published test); the X9.24-1 annex A.4 DUKPT
transaction key 042666B49184CFA368DE9628D0397BC9 for BDK 0123...3210, KSN FFFF9876543210E00001.
"""

from __future__ import annotations

import pytest

from hsm_sim.dispatcher import COMMANDS, Dispatcher
from tests.hsm_sim.test_cmd_oracle import (
    LMK_PAIRS,
    SNOWCH_ZPK_LMK,
    TDES_KEY,
    clear_from_field,
    des3,
    iso0_block,
    lmk_field,
    lmk_pin,
    with_odd_parity,
)

H = bytes.fromhex
HSM = Dispatcher(reraise_bugs=True)
TEST_HSM = Dispatcher(test_mode=True, reraise_bugs=True)

ACCOUNT = "555555123456"  # PAN 5555555551234567
CLEAR_BLOCK = H("041261AAAAEDCBA9")  # PIN 1234
TPK_FIELD = lmk_field("002", TDES_KEY)
TPK_BLOCK = des3(TDES_KEY, CLEAR_BLOCK).hex().upper()
ZPK = clear_from_field("001", SNOWCH_ZPK_LMK)  # KCV 6543F4, checked in test_cmd_oracle
ZPK_BLOCK = des3(ZPK, CLEAR_BLOCK).hex().upper()
LMK_PIN_1234 = lmk_pin("1234", ACCOUNT)


def call(message: str, hsm: Dispatcher = HSM) -> str:
    """Send a command; also check the answer's error code is one the command documents."""
    answer = hsm.handle(message.encode("ascii")).decode("latin-1")
    declared = {str(code) for code in COMMANDS[message[:2]].spec.errors}
    assert answer[2:4] in declared, f"{answer[:4]} not in the documented errors"
    return answer


# --- CA / CC ----------------------------------------------------------------------------------


def test_ca_translates_tpk_block_to_zpk() -> None:
    answer = call(f"CA{TPK_FIELD}{SNOWCH_ZPK_LMK}12{TPK_BLOCK}0101{ACCOUNT}")
    assert answer == f"CB0004{ZPK_BLOCK}01"


def test_ca_translates_to_iso_format_1() -> None:
    answer = call(f"CA{TPK_FIELD}{SNOWCH_ZPK_LMK}12{TPK_BLOCK}0105{ACCOUNT}")
    assert answer[:6] == "CB0004" and answer[-2:] == "05"
    clear = des3(ZPK, H(answer[6:22]), decrypt=True).hex().upper()
    assert clear.startswith("141234")


def test_ca_translates_to_iso_format_3() -> None:
    answer = call(f"CA{TPK_FIELD}{SNOWCH_ZPK_LMK}12{TPK_BLOCK}0147{ACCOUNT}")
    clear = des3(ZPK, H(answer[6:22]), decrypt=True)
    pin_field = bytes(a ^ b for a, b in zip(clear, H("0000" + ACCOUNT), strict=True)).hex().upper()
    assert pin_field.startswith("341234") and set(pin_field[6:]) <= set("ABCDEF")


def test_ca_pin_longer_than_maximum_is_24() -> None:
    assert call(f"CA{TPK_FIELD}{SNOWCH_ZPK_LMK}04{TPK_BLOCK}0101{ACCOUNT}") == "CB0004" + ZPK_BLOCK + "01"
    block6 = des3(TDES_KEY, iso0_block("123456", ACCOUNT)).hex().upper()
    assert call(f"CA{TPK_FIELD}{SNOWCH_ZPK_LMK}05{block6}0101{ACCOUNT}") == "CB24"


@pytest.mark.parametrize("fmt", ["02", "03", "04", "48", "99", "0A"])
def test_ca_unsupported_pin_block_format_is_23(fmt: str) -> None:
    assert call(f"CA{TPK_FIELD}{SNOWCH_ZPK_LMK}12{TPK_BLOCK}{fmt}01{ACCOUNT}") == "CB23"
    assert call(f"CA{TPK_FIELD}{SNOWCH_ZPK_LMK}12{TPK_BLOCK}01{fmt}{ACCOUNT}") == "CB23"


def test_ca_wrong_account_gives_pin_block_error() -> None:
    # the PAN field XOR leaves non-'F' fill digits, which format 0 rejects
    assert call(f"CA{TPK_FIELD}{SNOWCH_ZPK_LMK}12{TPK_BLOCK}0101999999999999") == "CB20"


def test_ca_bad_hex_pin_block_is_15() -> None:
    assert call(f"CA{TPK_FIELD}{SNOWCH_ZPK_LMK}12{'Z' * 16}0101{ACCOUNT}") == "CB15"


def test_ca_short_message_is_15() -> None:
    assert call(f"CA{TPK_FIELD}{SNOWCH_ZPK_LMK}12{TPK_BLOCK}01") == "CB15"


def test_ca_tpk_parity_error_is_10() -> None:
    bad = lmk_field("002", H("0023456789ABCDEFFEDCBA9876543210"))
    assert call(f"CA{bad}{SNOWCH_ZPK_LMK}12{TPK_BLOCK}0101{ACCOUNT}") == "CB10"


def test_ca_zpk_parity_error_is_11() -> None:
    bad = lmk_field("001", H("0023456789ABCDEFFEDCBA9876543210"))
    assert call(f"CA{TPK_FIELD}{bad}12{TPK_BLOCK}0101{ACCOUNT}") == "CB11"


def test_ca_bad_key_scheme_is_26() -> None:
    assert call(f"CAW{TPK_FIELD[1:]}{SNOWCH_ZPK_LMK}12{TPK_BLOCK}0101{ACCOUNT}") == "CB26"


def test_cc_translates_between_zpks() -> None:
    dest = lmk_field("001", TDES_KEY)
    answer = call(f"CC{SNOWCH_ZPK_LMK}{dest}12{ZPK_BLOCK}0101{ACCOUNT}")
    assert answer == f"CD0004{TPK_BLOCK}01"


# --- JC / JE / JG / BA ------------------------------------------------------------------------


def test_jc_translates_tpk_block_to_lmk() -> None:
    assert call(f"JC{TPK_FIELD}{TPK_BLOCK}01{ACCOUNT}") == f"JD00{LMK_PIN_1234}"


def test_je_translates_zpk_block_to_lmk() -> None:
    assert call(f"JE{SNOWCH_ZPK_LMK}{ZPK_BLOCK}01{ACCOUNT}") == f"JF00{LMK_PIN_1234}"


def test_jg_translates_lmk_pin_to_zpk() -> None:
    assert call(f"JG{SNOWCH_ZPK_LMK}01{ACCOUNT}{LMK_PIN_1234}") == f"JH00{ZPK_BLOCK}"


def test_jg_lmk_pin_for_other_account_is_20() -> None:
    other = lmk_pin("1234", "999999999999")
    assert call(f"JG{SNOWCH_ZPK_LMK}01{ACCOUNT}{other}") == "JH20"


@pytest.mark.parametrize("padded", ["1234F", "1234FFFFFFFFF", "1234f"])
def test_ba_encrypts_clear_pin(padded: str) -> None:
    assert call(f"BA{padded}{ACCOUNT}") == f"BB00{LMK_PIN_1234}"


def test_ba_twelve_digit_pin() -> None:
    assert call(f"BA123456789012F{ACCOUNT}") == f"BB00{lmk_pin('123456789012', ACCOUNT)}"


def test_ba_three_digit_pin_is_24() -> None:
    assert call(f"BA123FF{ACCOUNT}") == "BB24"


def test_ba_non_digit_pin_is_15() -> None:
    assert call(f"BA12A4F{ACCOUNT}") == "BB15"


def test_ba_pin_field_too_long_is_15() -> None:
    assert call(f"BA1234FFFFFFFFFF{ACCOUNT}") == "BB15"


# --- BC / DC / EC -----------------------------------------------------------------------------


def test_bc_matching_pin_is_00() -> None:
    assert call(f"BC{TPK_FIELD}{TPK_BLOCK}01{ACCOUNT}{LMK_PIN_1234}") == "BD00"


def test_bc_other_pin_is_01() -> None:
    assert call(f"BC{TPK_FIELD}{TPK_BLOCK}01{ACCOUNT}{lmk_pin('4321', ACCOUNT)}") == "BD01"


def test_bc_bad_format_code_is_23() -> None:
    assert call(f"BC{TPK_FIELD}{TPK_BLOCK}02{ACCOUNT}{LMK_PIN_1234}") == "BD23"


PVK = with_odd_parity(H("5CA64B3C22BEC347CA7E6609904BAAED"))  # DES ignores parity bits
PVK_FIELD = lmk_field("002", PVK)
PVV_ACCOUNT = "432000098036"  # PAN 4564320000980369


@pytest.mark.parametrize(("pin", "pvv"), [("2205", "3856"), ("0654", "0885")])
def test_dc_verifies_published_pvv(pin: str, pvv: str) -> None:
    block = des3(TDES_KEY, iso0_block(pin, PVV_ACCOUNT)).hex().upper()
    assert call(f"DC{TPK_FIELD}{PVK_FIELD}{block}01{PVV_ACCOUNT}1{pvv}") == "DD00"
    assert call(f"DC{TPK_FIELD}{PVK_FIELD}{block}01{PVV_ACCOUNT}1{int(pvv) ^ 1:04d}") == "DD01"


def test_ec_verifies_published_pvv_under_zpk() -> None:
    block = des3(ZPK, iso0_block("2205", PVV_ACCOUNT)).hex().upper()
    assert call(f"EC{SNOWCH_ZPK_LMK}{PVK_FIELD}{block}01{PVV_ACCOUNT}13856") == "ED00"
    assert call(f"EC{SNOWCH_ZPK_LMK}{PVK_FIELD}{block}01{PVV_ACCOUNT}23856") == "ED01"


def test_dc_single_length_pvk_is_26() -> None:
    pvk1 = lmk_field("002", TDES_KEY[:8])
    assert call(f"DC{TPK_FIELD}{pvk1}{TPK_BLOCK}01{ACCOUNT}13856") == "DD26"


# --- G0 ---------------------------------------------------------------------------------------


def test_g0_translates_dukpt_block_to_zpk() -> None:
    transaction_key = H("042666B49184CFA368DE9628D0397BC9")  # X9.24-1 A.4, KSN ...E00001
    pin_key = bytes(a ^ b for a, b in zip(transaction_key, H("00000000000000FF") * 2, strict=True))
    dukpt_block = des3(pin_key, CLEAR_BLOCK).hex().upper()
    bdk_field = lmk_field("009", TDES_KEY)
    request = f"G0{bdk_field}{SNOWCH_ZPK_LMK}A05FFFF9876543210E00001{dukpt_block}0101{ACCOUNT}"
    assert call(request) == f"G10004{ZPK_BLOCK}01"


def test_g0_ksn_descriptor_beyond_20_digits_is_15() -> None:
    bdk_field = lmk_field("009", TDES_KEY)
    request = f"G0{bdk_field}{SNOWCH_ZPK_LMK}FF0FFFF9876543210E00001{TPK_BLOCK}0101{ACCOUNT}"
    assert call(request) == "G115"


def test_g0_truncated_message_is_15() -> None:
    bdk_field = lmk_field("009", TDES_KEY)
    assert call(f"G0{bdk_field}{SNOWCH_ZPK_LMK}A05FFFF98765") == "G115"


def test_g0_rejects_source_format_other_than_01() -> None:
    bdk_field = lmk_field("009", TDES_KEY)
    request = f"G0{bdk_field}{SNOWCH_ZPK_LMK}A05FFFF9876543210E00001{TPK_BLOCK}0501{ACCOUNT}"
    assert call(request) == "G123"


# --- NG ---------------------------------------------------------------------------------------


def test_ng_is_disabled_outside_test_mode() -> None:
    assert call(f"NG{ACCOUNT}{LMK_PIN_1234}") == "NH68"


def test_ng_decrypts_in_test_mode() -> None:
    reference = des3(LMK_PAIRS["18-19"], H("0000" + ACCOUNT)).hex().upper()
    expected_ref = reference.translate(str.maketrans("ABCDEF", "012345"))[:12]
    assert call(f"NG{ACCOUNT}{LMK_PIN_1234}", TEST_HSM) == f"NH001234FFFFFFFFF{expected_ref}"
