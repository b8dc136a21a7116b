"""The test-side helpers agree with the published vectors, so they can judge the switch."""

from __future__ import annotations

import pytest

from tests.switch import cupwire
from tests.switch.independent import cv4, iso0_pin


def test_cv4_matches_published_working_key_check_values() -> None:
    # the published working-key example (docs/cup-pos.md, "Field 62")
    assert cv4(bytes.fromhex("22" * 16)).hex().upper() == "00962B60"
    assert cv4(bytes.fromhex("33" * 8)).hex().upper() == "ADC67D84"
    assert cv4(bytes.fromhex("44" * 16)).hex().upper() == "E2F24340"


def test_cupwire_builds_the_published_signin_body() -> None:
    # cup_pos.json examples[0]: an 0800 sign-in body (11, 41, 42, 60 = 00000001003, 63 = 001)
    made = cupwire.body(
        "0800",
        {
            11: cupwire.bcd("000105"),
            41: b"00000764",
            42: b"848100058126002",
            60: cupwire.lllvar_n("00000001003"),
            63: cupwire.bcd("0003") + b"001",
        },
    )
    published = "08000020000000C00012000105303030303037363438343831303030353831323630303200110000000100300003303031"
    assert made.hex().upper() == published


def test_iso0_pin_reads_the_published_format_0_block() -> None:
    # crypto.json iso9564_pinblocks[0]: PIN 1234, PAN 5555555551234567 -> 041261AAAAEDCBA9
    assert iso0_pin(bytes.fromhex("041261AAAAEDCBA9"), "5555555551234567") == "1234"
    assert iso0_pin(bytes.fromhex("041261AAAAEDCBA9"), "5555555551234568") == "1234"  # check digit unused
    assert iso0_pin(bytes.fromhex("041261AAAAEDCBA9"), "5555555551234577") is None  # another account
    assert iso0_pin(bytes.fromhex("040000FFFFFFFFFF"), None) == "0000"  # operator password, zero PAN
    assert iso0_pin(bytes.fromhex("140000FFFFFFFFFF"), None) is None  # format 1 control nibble


# -- the EMV / PBOC helpers against the published emv.json vectors and pyemv ---------------------------

def test_chip_helpers_reproduce_the_published_pboc_vector_b() -> None:
    import json

    from tests.switch import independent as ind
    from tests.vectorfiles import vector_path

    vectors = json.loads(vector_path("emv.json").read_text())
    b = vectors["pboc_cvn01_examples"][1]
    card_key = ind.card_key_option_a(bytes.fromhex(b["imk_ac"]), b["pan"], b["psn"])
    assert card_key.hex().upper() == b["udk_no_parity"]
    sk = ind.pboc_session_key(card_key, bytes.fromhex(b["atc"]))
    assert sk.hex().upper() == b["sk_ac"]
    values = {tag: bytes.fromhex(v) for tag, v in b["pboc_input_from_tags"].items()}
    data = ind.pboc_arqc_input(values)
    assert data.hex().upper() == b["arqc_input"]
    arqc = ind.mac_algorithm3(sk, data)
    assert arqc.hex().upper() == b["arqc"]
    assert ind.arpc_method1(sk, arqc, b"01").hex().upper() == b["arpc"][0]["arpc"]
    assert ind.tlv("91", ind.arpc_method1(sk, arqc, b"00") + b"00").hex().upper() == b["tag91_for_arc_00"]
    assert [tag for tag, _ in ind.tlv_objects(bytes.fromhex(b["field55_tlv"]))] == vectors["tlv_examples"][0]["tags"]


# pyemv builds its ciphers with the 3DES import cryptography deprecates; its warnings are not ours.
@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
def test_chip_helpers_agree_with_pyemv() -> None:
    from pyemv import ac, kd

    from tests.switch import independent as ind

    imk, pan, psn = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"), "9901234567890123", "45"
    # DES ignores parity: pyemv adjusts it, the helper does not
    assert bytes(x & 0xFE for x in kd.derive_icc_mk_a(imk, pan, psn)) == bytes(
        x & 0xFE for x in ind.card_key_option_a(imk, pan, psn))
    key, data = bytes.fromhex("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB"), bytes.fromhex("0102030405060708090A0B")
    assert ac.generate_ac(key, data, ac.PaddingType.EMV) == ind.mac_algorithm3(key, data)
    arqc = bytes.fromhex("1234567890ABCDEF")
    assert ac.generate_arpc_1(key, arqc, b"00") == ind.arpc_method1(key, arqc, b"00")
