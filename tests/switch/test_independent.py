"""The test-side helpers agree with the published vectors, so they can judge the switch."""

from __future__ import annotations

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
