"""The EMV / PBOC cryptogram core (hsm_sim/emv.py) against every vector of emv.json.

Expected values: /work/shared/vectors/emv.json only (published PBOC examples, pyemv's
HSM-checked vectors, docstring primitives), then property tests that compare each scheme with
pyemv (a test-only cross-check, DEPENDENCIES.md) and with a PBOC oracle written here from the
emv.json conventions with ``cryptography`` (test_cmd_oracle.des3), nothing from hsm_sim.
"""

from __future__ import annotations

import json
from typing import Any

import pyemv.ac
import pyemv.cvn
import pyemv.kd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsm_sim import emv
from hsm_sim.cryptoerrors import InputError, KeyLengthError
from hsm_sim.emv import Scheme
from hsm_sim.keys import fix_parity
from specs import tlv
from specs.tlv import Tlv, TlvError
from tests.hsm_sim.test_cmd_oracle import des3
from tests.vectorfiles import vector_path

# pyemv builds its ciphers with the 3DES import cryptography deprecates; its warnings are not ours.
pytestmark = pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")

H = bytes.fromhex
EMV = json.loads((vector_path("emv.json")).read_text())
PBOC_A, PBOC_B = EMV["pboc_cvn01_examples"]
CSK_VECTORS = EMV["emv_option_a_csk_vectors"]
PRIMITIVES = {p["op"] + ":" + p["id"]: p for p in EMV["primitives"]}


def kcv2(key: bytes) -> str:
    return des3(key, bytes(8))[:2].hex().upper()


def card_key(vector: dict[str, Any]) -> bytes:
    return emv.icc_master_key(H(vector["imk"]), emv.pan_psn_block(vector["pan"], vector["psn"]))


# --- PBOC CVN 01 ----------------------------------------------------------------------------


def test_pboc_a_session_key_arqc_and_arpc() -> None:
    udk, atc = H(PBOC_A["udk"]), H(PBOC_A["atc"])
    sk = emv.pboc_session_key(udk, atc)
    assert sk.hex().upper() == PBOC_A["sk_ac"]
    assert emv.generate_ac(sk, H(PBOC_A["arqc_input"])).hex().upper() == PBOC_A["arqc"]
    (cross,) = PBOC_A["arpc_cross_checked"]
    assert emv.arpc_method1(sk, H(PBOC_A["arqc"]), H(cross["arc"])).hex().upper() == cross["arpc"]


def test_pboc_a_arqc_input_rebuilt_from_the_generate_ac_exchange() -> None:
    # GENERATE AC: 80 AE 80 00, Lc 34, then CDOL1 data; the card answers 80 1E: CID, ATC, AC, IAD.
    cdol = H(PBOC_A["gac1_command"])[5:]
    answer = H(PBOC_A["gac1_response"])[2:]
    cid, atc, ac, iad = answer[:1], answer[1:3], answer[3:11], answer[11:]
    assert (atc.hex().upper(), ac.hex().upper(), iad.hex().upper()) == (PBOC_A["atc"], PBOC_A["arqc"], PBOC_A["iad"])
    assert cid == b"\x80"  # an ARQC
    objects: dict[str, Tlv] = {}
    pos = 0
    for tag, size in emv.MINIMUM_AC_TAGS[:8]:  # CDOL1 starts with the minimum set up to 9F37
        objects[tag] = Tlv(tag, cdol[pos : pos + size])
        pos += size
    assert pos == 29
    objects["82"] = Tlv("82", H(PBOC_A["aip"]))
    objects["9F36"] = Tlv("9F36", atc)
    objects["9F10"] = Tlv("9F10", iad)
    assert emv.arqc_data(Scheme.PBOC, objects).hex().upper() == PBOC_A["arqc_input"]
    assert iad[3:7].hex().upper() == PBOC_A["cvr"]


def test_pboc_b_from_the_issuer_master_key() -> None:
    y = emv.pan_psn_block(PBOC_B["pan"], PBOC_B["psn"])
    assert y == H("0622800010000101")  # emv.json pan_note
    udk = emv.icc_master_key(H(PBOC_B["imk_ac"]), y)
    assert udk.hex().upper() == PBOC_B["udk_no_parity"]
    assert fix_parity(udk).hex().upper() == "014C986ECD8F49157CC8B59E3BCDFD98"  # pyemv's, udk_note
    sk = emv.pboc_session_key(udk, H(PBOC_B["atc"]))
    assert sk.hex().upper() == PBOC_B["sk_ac"]
    arqc = emv.generate_ac(sk, H(PBOC_B["arqc_input"]))
    assert arqc.hex().upper() == PBOC_B["arqc"]
    for expected in [*PBOC_B["arpc"], *PBOC_B["arpc_cross_checked"]]:
        assert emv.arpc_method1(sk, arqc, H(expected["arc"])).hex().upper() == expected["arpc"]


def test_pboc_b_arqc_input_rebuilt_from_field_55() -> None:
    objects = tlv.unique(tlv.parse(H(PBOC_B["field55_tlv"])))
    assert emv.arqc_data(Scheme.PBOC, objects).hex().upper() == PBOC_B["arqc_input"]
    assert emv.scheme_for_iad(objects["9F10"].value) is Scheme.PBOC


def test_pboc_b_through_the_scheme_functions() -> None:
    udk = card_key({"imk": PBOC_B["imk_ac"], "pan": PBOC_B["pan"], "psn": PBOC_B["psn"]})
    atc, data, arqc = H(PBOC_B["atc"]), H(PBOC_B["arqc_input"]), H(PBOC_B["arqc"])
    un = H(PBOC_B["pboc_input_from_tags"]["9F37"])
    assert emv.arqc(Scheme.PBOC, udk, atc, un, data) == arqc
    assert emv.verify_arqc(Scheme.PBOC, udk, atc, un, data, arqc)
    assert emv.arpc(Scheme.PBOC, udk, atc, un, arqc, b"01").hex().upper() == PBOC_B["arpc"][0]["arpc"]


@pytest.mark.parametrize("wrong", [Scheme.EMV_COMMON, Scheme.VISA, Scheme.EUROPAY_MASTERCARD])
def test_the_same_pboc_card_under_another_derivation_fails(wrong: Scheme) -> None:
    udk = card_key({"imk": PBOC_B["imk_ac"], "pan": PBOC_B["pan"], "psn": PBOC_B["psn"]})
    atc, data, arqc = H(PBOC_B["atc"]), H(PBOC_B["arqc_input"]), H(PBOC_B["arqc"])
    un = H(PBOC_B["pboc_input_from_tags"]["9F37"])
    assert not emv.verify_arqc(wrong, udk, atc, un, data, arqc)
    assert emv.arpc(wrong, udk, atc, un, arqc, b"01").hex().upper() != PBOC_B["arpc"][0]["arpc"]


def test_a_tampered_arqc_or_input_fails() -> None:
    udk = card_key({"imk": PBOC_B["imk_ac"], "pan": PBOC_B["pan"], "psn": PBOC_B["psn"]})
    atc, data, arqc = H(PBOC_B["atc"]), H(PBOC_B["arqc_input"]), H(PBOC_B["arqc"])
    un = bytes(4)
    assert not emv.verify_arqc(Scheme.PBOC, udk, atc, un, data, arqc[:7] + bytes([arqc[7] ^ 1]))
    assert not emv.verify_arqc(Scheme.PBOC, udk, atc, un, data[:5] + b"\x02" + data[6:], arqc)  # amount
    assert not emv.verify_arqc(Scheme.PBOC, udk, b"\x02\x41", un, data, arqc)  # another ATC


# --- EMV option A, common session key (pyemv's HSM-checked vectors) --------------------------


@pytest.mark.parametrize("vector", CSK_VECTORS, ids=lambda v: v["id"])
def test_option_a_common_session_key_vectors(vector: dict[str, Any]) -> None:
    icc_mk = card_key(vector)
    if "icc_mk_kcv2" in vector:
        assert kcv2(icc_mk) == vector["icc_mk_kcv2"]
    sk = emv.common_session_key(icc_mk, H(vector["r"]))
    if "sk_kcv2" in vector:
        assert kcv2(sk) == vector["sk_kcv2"]
    padding = {"method1": 1, "method2": 2}[vector["padding"]]
    arqc = emv.generate_ac(sk, H(vector["data"]), padding)
    assert arqc.hex().upper() == vector["arqc"]
    if "arpc1" in vector:
        key = {"icc_mk": icc_mk, "sk": sk}[vector["arpc1_key"]]
        assert emv.arpc_method1(key, arqc, H(vector["arc"])).hex().upper() == vector["arpc1"]
    if "arpc2" in vector:
        prop = H(vector.get("prop", ""))
        assert emv.arpc_method2(sk, arqc, H(vector["csu"]), prop).hex().upper() == vector["arpc2"]


def test_primitive_option_a_parity_adjusted() -> None:
    p = PRIMITIVES["icc_mk_a:icc mk option A docstring"]
    key = emv.icc_master_key(H(p["imk"]), emv.pan_psn_block(p["pan"], p["psn"]))
    assert fix_parity(key).hex().upper() == p["icc_mk"]


def test_primitive_common_session_key() -> None:
    p = PRIMITIVES["csk:common session key docstring"]
    sk = emv.common_session_key(H(p["mk"]), H(p["r"]))
    assert sk.hex().upper() == "E8FA394BF807B841FEDCEA603461B1C5"  # the unadjusted value in its note
    assert fix_parity(sk).hex().upper() == p["sk"]


@pytest.mark.parametrize("p", [p for p in EMV["primitives"] if p["op"] == "mac"], ids=lambda p: p["id"])
def test_primitive_macs(p: dict[str, Any]) -> None:
    assert emv.generate_ac(H(p["key"]), H(p["data"]), p["padding"]).hex().upper() == p["mac"]


def test_primitive_arpcs() -> None:
    one = PRIMITIVES["arpc1:arpc method 1 docstring"]
    assert emv.arpc_method1(H(one["key"]), H(one["arqc"]), H(one["arc"])).hex().upper() == one["arpc"]
    two = PRIMITIVES["arpc2:arpc method 2 docstring"]
    assert emv.arpc_method2(H(two["key"]), H(two["arqc"]), H(two["csu"])).hex().upper() == two["arpc"]


@pytest.mark.parametrize(
    ("pan", "psn", "block"),
    [
        ("9901234567890123", "45", "0123456789012345"),
        ("12345678901234567", "45", "4567890123456745"),
        ("12345678901234567", "00", "4567890123456700"),
        ("6228000100001", "01", "0622800010000101"),
        ("6228000100001", "", "0622800010000100"),
    ],
)
def test_pan_psn_block_rightmost_16_digits_zero_padded(pan: str, psn: str, block: str) -> None:
    assert emv.pan_psn_block(pan, psn) == H(block)


@pytest.mark.parametrize(("pan", "psn"), [("", "01"), ("62280001A", "01"), ("6228000100001", "1")])
def test_pan_psn_block_refuses_non_digits(pan: str, psn: str) -> None:
    with pytest.raises(InputError):
        emv.pan_psn_block(pan, psn)


# --- which scheme a card is -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("iad", "scheme"),
    [
        (PBOC_A["iad"], Scheme.PBOC),
        (PBOC_B["pboc_input_from_tags"]["9F10"], Scheme.PBOC),
        ("06010A03A00000", Scheme.VISA),
        ("06011203A00000", Scheme.EMV_COMMON),
    ],
)
def test_scheme_chosen_by_the_iad_cvn(iad: str, scheme: Scheme) -> None:
    assert emv.scheme_for_iad(H(iad)) is scheme


@pytest.mark.parametrize(
    ("iad", "reason"),
    [
        ("0700", "IAD: 2 bytes, too short to name a CVN"),
        ("07000203A04002010A", "IAD: format 07 with CVN 02 is not supported"),
        ("0110A04000", "IAD: format 01 with CVN A0 is not supported"),
        ("07000103A04002040A", "IAD: an SM4 card (algorithm 04); only 3DES is supported"),
    ],
)
def test_unsupported_iad_says_what_it_found(iad: str, reason: str) -> None:
    with pytest.raises(InputError) as err:
        emv.scheme_for_iad(H(iad))
    assert err.value.reason == reason


def test_arqc_data_names_a_missing_or_wrongly_sized_tag() -> None:
    objects = tlv.unique(tlv.parse(H(PBOC_B["field55_tlv"]), base_offset=40))
    without = {t: o for t, o in objects.items() if t != "9F37"}
    with pytest.raises(TlvError) as err:
        emv.arqc_data(Scheme.PBOC, without)
    assert (err.value.tag, err.value.field, err.value.reason) == ("9F37", "55", "needed for the ARQC but absent")
    short = {**objects, "9F02": Tlv("9F02", bytes(5), offset=77)}
    with pytest.raises(TlvError) as err:
        emv.arqc_data(Scheme.PBOC, short)
    assert (err.value.tag, err.value.offset, err.value.reason) == ("9F02", 77, "length 5; the ARQC needs 6")
    cut = {**objects, "9F10": Tlv("9F10", H("070001"), offset=90)}
    with pytest.raises(TlvError) as err:
        emv.arqc_data(Scheme.PBOC, cut)
    assert (err.value.tag, err.value.offset) == ("9F10", 90)


def test_emv_common_data_ends_with_the_whole_iad() -> None:
    objects = tlv.unique(tlv.parse(H(PBOC_B["field55_tlv"])))
    pboc = emv.arqc_data(Scheme.PBOC, objects)
    assert emv.arqc_data(Scheme.EMV_COMMON, objects) == pboc[:-4] + objects["9F10"].value


def test_key_and_block_lengths_are_checked() -> None:
    with pytest.raises(KeyLengthError):
        emv.icc_master_key(bytes(8), bytes(8))
    with pytest.raises(InputError):
        emv.arpc_method1(bytes(16), bytes(7), b"00")
    with pytest.raises(InputError):
        emv.arpc_method2(bytes(16), bytes(8), bytes(4), bytes(9))


# --- cross-checks on any card ---------------------------------------------------------------

keys = st.binary(min_size=16, max_size=16)
pans = st.text("0123456789", min_size=12, max_size=19)
psns = st.text("0123456789", min_size=2, max_size=2)
cards = settings(max_examples=60, deadline=None)


def pboc_oracle(imk: bytes, pan: str, psn: str, atc: bytes, data: bytes) -> tuple[bytes, bytes]:
    """emv.json conventions, step by step with cryptography: (SK_AC, ARQC)."""
    y = H((pan + psn).rjust(16, "0")[-16:])
    udk = des3(imk, y) + des3(imk, bytes(b ^ 0xFF for b in y))
    sk = des3(udk, bytes(6) + atc) + des3(udk, bytes(6) + bytes(b ^ 0xFF for b in atc))
    padded = data + b"\x80" + bytes(-(len(data) + 1) % 8)
    h = bytes(8)
    for i in range(0, len(padded), 8):
        h = des3(sk[:8], bytes(a ^ b for a, b in zip(h, padded[i : i + 8], strict=True)))
    return sk, des3(sk[:8], des3(sk[8:], h, decrypt=True))


@cards
@given(keys, pans, psns, st.binary(min_size=2, max_size=2), st.binary(max_size=64))
def test_pboc_matches_the_oracle(imk: bytes, pan: str, psn: str, atc: bytes, data: bytes) -> None:
    sk, arqc = pboc_oracle(imk, pan, psn, atc, data)
    udk = emv.icc_master_key(imk, emv.pan_psn_block(pan, psn))
    assert emv.arqc(Scheme.PBOC, udk, atc, bytes(4), data) == arqc
    expected_arpc = des3(sk, bytes([arqc[0] ^ 0x30, arqc[1] ^ 0x30]) + arqc[2:])
    assert emv.arpc(Scheme.PBOC, udk, atc, bytes(4), arqc, b"00") == expected_arpc


@cards
@given(keys, pans, psns, st.binary(min_size=2, max_size=2), st.binary(min_size=4, max_size=4), st.binary(max_size=64))
def test_visa_and_mastercard_schemes_match_pyemv(
    imk: bytes, pan: str, psn: str, atc: bytes, un: bytes, data: bytes
) -> None:
    udk = emv.icc_master_key(imk, emv.pan_psn_block(pan, psn))
    assert fix_parity(udk) == pyemv.kd.derive_icc_mk_a(imk, pan, psn)
    # Visa CVN 10 (pyemv VisaCVN10): card key, Visa padding, ARPC 1 under the card key.
    visa = pyemv.ac.generate_ac(udk, data, pyemv.ac.PaddingType.VISA)
    assert emv.arqc(Scheme.VISA, udk, atc, un, data) == visa
    assert emv.arpc(Scheme.VISA, udk, atc, un, visa, b"00") == pyemv.ac.generate_arpc_1(udk, visa, b"00")
    # M/Chip CVN 16 (pyemv MasterCardCVN16): session key from ATC || 0000 || UN, ARPC under the card key.
    sk = pyemv.kd.derive_common_sk(udk, atc + bytes(2) + un)
    mc = pyemv.ac.generate_ac(sk, data, pyemv.ac.PaddingType.EMV)
    assert emv.arqc(Scheme.EUROPAY_MASTERCARD, udk, atc, un, data) == mc
    assert emv.arpc(Scheme.EUROPAY_MASTERCARD, udk, atc, un, mc, b"05") == pyemv.ac.generate_arpc_1(udk, mc, b"05")
    # EMV common session key, R = ATC || 000000000000 (pyemv VisaCVN18's session key).
    sk = pyemv.kd.derive_common_sk(udk, atc + bytes(6))
    common = pyemv.ac.generate_ac(sk, data, pyemv.ac.PaddingType.EMV)
    assert emv.arqc(Scheme.EMV_COMMON, udk, atc, un, data) == common
    assert emv.arpc(Scheme.EMV_COMMON, udk, atc, un, common, b"00") == pyemv.ac.generate_arpc_1(udk, common, b"00")


@cards
@given(keys, st.binary(min_size=8, max_size=8), st.binary(min_size=4, max_size=4), st.binary(max_size=8))
def test_arpc_method2_matches_pyemv(key: bytes, arqc: bytes, csu: bytes, prop: bytes) -> None:
    assert emv.arpc_method2(key, arqc, csu, prop) == pyemv.ac.generate_arpc_2(key, arqc, csu, prop)
