"""MAC host commands (M6, M8).

Published inputs: the ISO 9797-1 annex B.4 / ANSI X9.19 vector (key 0123...3210, "Now is the time
for all ", MAC A1C72E74EA3FA9B6) and the public 0800 sign-in body of docs/cup-pos.md.
Algorithm 1 and the UnionPay POS MAC are recomputed here with ``cryptography`` from their
published descriptions.
"""

from __future__ import annotations

import pytest

from hsm_sim.dispatcher import COMMANDS, Dispatcher
from tests.hsm_sim.test_cmd_oracle import (
    DES_KEY,
    TDES_KEY,
    clear_from_field,
    des3,
    des3_cbc_mac,
    lmk_field,
    odd_parity,
    with_odd_parity,
)

H = bytes.fromhex
HSM = Dispatcher(reraise_bugs=True)

TAK2 = lmk_field("003", TDES_KEY)
TAK1 = lmk_field("003", DES_KEY)
ZAK2 = lmk_field("008", TDES_KEY)
X919_DATA = b"Now is the time for all "
X919_MAC = "A1C72E74EA3FA9B6"
# docs/cup-pos.md, "The frame": a public 0800 sign-in body (MTI .. field 63)
SIGN_IN = H(
    "08000020000000C00012000105303030303037363438343831303030353831323630303200110000000100300003303031"
)


def call(message: bytes) -> str:
    answer = HSM.handle(message).decode("latin-1")
    declared = {str(code) for code in COMMANDS[message[:2].decode()].spec.errors}
    assert answer[2:4] in declared, f"{answer[:4]} not in the documented errors"
    return answer


def m6(opts: str, key_type: str, key: str, data: bytes, *, input_format: str = "0") -> bytes:
    """M6 request: mode 0, ``opts`` = MAC size + algorithm + padding."""
    body = data.hex().upper().encode() if input_format == "1" else data
    return f"M60{input_format}{opts}{key_type}{key}{len(data):04X}".encode() + body


def cup_mac_reference(mak: bytes, data: bytes) -> str:
    """The POS MAC of docs/cup-pos.md ("The MAC"), step by step."""
    padded = data + bytes(-len(data) % 8)
    acc = bytes(8)
    for i in range(0, len(padded), 8):
        acc = bytes(a ^ b for a, b in zip(acc, padded[i : i + 8], strict=True))
    text = acc.hex().upper().encode()
    first = des3(mak, text[:8])
    second = des3(mak, bytes(a ^ b for a, b in zip(first, text[8:], strict=True)))
    return second.hex().upper()[:8]


@pytest.mark.parametrize("input_format", ["0", "1", "2"])
def test_m6_x919_published_vector(input_format: str) -> None:
    assert call(m6("031", "003", TAK2, X919_DATA, input_format=input_format)) == "M700" + X919_MAC[:8]


def test_m6_x919_16_hex_mac_with_zak() -> None:
    assert call(m6("131", "008", ZAK2, X919_DATA)) == "M700" + X919_MAC


def test_m6_algorithm_1_single_length_key() -> None:
    data = b"1234567890"
    expected = des3_cbc_mac(DES_KEY, data + bytes(6)).hex().upper()
    assert call(m6("111", "003", TAK1, data)) == "M700" + expected


def test_m6_padding_method_2() -> None:
    data = b"12345678"
    expected = des3_cbc_mac(DES_KEY, data + b"\x80" + bytes(7)).hex().upper()[:8]
    assert call(m6("012", "003", TAK1, data)) == "M700" + expected


def test_m6_unionpay_pos_mac_extension() -> None:
    expected = cup_mac_reference(DES_KEY, SIGN_IN)
    assert call(m6("091", "003", TAK1, SIGN_IN)) == "M700" + expected


def test_m6_unionpay_mac_with_16_digit_size_is_15() -> None:
    assert call(m6("191", "003", TAK1, SIGN_IN)) == "M715"


def test_m6_no_padding_needs_whole_blocks() -> None:
    assert call(m6("030", "003", TAK2, X919_DATA[:20])) == "M780"


def test_m6_tpk_is_not_a_mac_key_type() -> None:
    assert call(m6("031", "002", lmk_field("002", TDES_KEY), X919_DATA)) == "M704"


def test_m6_x919_needs_double_length_key() -> None:
    assert call(m6("031", "003", TAK1, X919_DATA)) == "M702"


def test_m6_unknown_algorithm_is_15() -> None:
    assert call(m6("021", "003", TAK2, X919_DATA)) == "M715"


def test_m6_multi_block_mode_is_15() -> None:
    request = m6("031", "003", TAK2, X919_DATA)
    assert call(request[:2] + b"1" + request[3:]) == "M715"


def test_m6_message_shorter_than_length_is_80() -> None:
    assert call(m6("031", "003", TAK2, X919_DATA)[:-1]) == "M780"


def test_m6_message_longer_than_length_is_80() -> None:
    assert call(m6("031", "003", TAK2, X919_DATA) + b"!") == "M780"


def test_m6_hex_message_shorter_than_length_is_80() -> None:
    assert call(m6("031", "003", TAK2, X919_DATA, input_format="1")[:-2]) == "M780"


def test_m6_message_with_bad_hex_is_15() -> None:
    request = m6("031", "003", TAK2, X919_DATA, input_format="1")
    assert call(request[:-2] + b"ZZ") == "M715"


def test_m6_binary_message_may_contain_x19() -> None:
    data = b"\x19" * 8
    expected = des3_cbc_mac(DES_KEY, data).hex().upper()[:8]
    assert call(m6("011", "003", TAK1, data)) == "M700" + expected


def test_m8_verifies_published_mac() -> None:
    assert call(m6("031", "003", TAK2, X919_DATA).replace(b"M6", b"M8", 1) + X919_MAC[:8].encode()) == "M900"


def test_m8_wrong_mac_is_01() -> None:
    assert call(m6("031", "003", TAK2, X919_DATA).replace(b"M6", b"M8", 1) + b"A1C72E75") == "M901"


def test_m8_verifies_unionpay_mac() -> None:
    mac = cup_mac_reference(DES_KEY, SIGN_IN).encode()
    assert call(m6("091", "003", TAK1, SIGN_IN).replace(b"M6", b"M8", 1) + mac) == "M900"


def test_m8_missing_mac_is_15() -> None:
    assert call(m6("031", "003", TAK2, X919_DATA).replace(b"M6", b"M8", 1)) == "M915"


# --- keys under the LMK are decrypted once and kept (hsm_sim/lmk.py): the cache must not show ---

MAK_A = DES_KEY
MAK_B = with_odd_parity(H("3333333333333333"))
BAD_PARITY_MAK = H("0123456789ABCDEE")  # last byte 0xEE has six bits set: even parity


def m8(opts: str, key_type: str, key: str, data: bytes, mac: str) -> bytes:
    return m6(opts, key_type, key, data).replace(b"M6", b"M8", 1) + mac.encode()


def test_m6_after_the_mak_of_the_same_key_type_changes_uses_the_new_mak() -> None:
    # One LMK slot (key type 003, pair 16-17), the key under it changing back and forth.
    for mak in (MAK_A, MAK_B, MAK_A, MAK_B):
        assert call(m6("091", "003", lmk_field("003", mak), SIGN_IN)) == "M700" + cup_mac_reference(mak, SIGN_IN)


def test_m8_with_the_old_mak_after_a_change_fails_verification() -> None:
    mac_a = cup_mac_reference(MAK_A, SIGN_IN)
    assert call(m8("091", "003", lmk_field("003", MAK_A), SIGN_IN, mac_a)) == "M900"
    assert call(m8("091", "003", lmk_field("003", MAK_B), SIGN_IN, mac_a)) == "M901"


def test_a_mak_with_bad_parity_answers_10_every_time_between_good_ones() -> None:
    good, bad = lmk_field("003", MAK_A), lmk_field("003", BAD_PARITY_MAK)
    answers = [call(m6("091", "003", key, SIGN_IN)) for key in (good, bad, good, bad)]
    expected_good = "M700" + cup_mac_reference(MAK_A, SIGN_IN)
    assert answers == [expected_good, "M710", expected_good, "M710"]


def test_the_same_field_under_another_key_type_is_another_key() -> None:
    # A TAK field (003, pair 16-17) sent as a ZAK (008, pair 26-27) decrypts to another key,
    # whatever the HSM kept from the TAK request: the oracle says which, independently.
    tak = lmk_field("003", MAK_A)
    assert call(m6("091", "003", tak, SIGN_IN)) == "M700" + cup_mac_reference(MAK_A, SIGN_IN)
    as_zak = clear_from_field("008", tak)
    expected = "M700" + cup_mac_reference(as_zak, SIGN_IN) if odd_parity(as_zak) else "M710"
    assert call(m6("091", "008", tak, SIGN_IN)) == expected
