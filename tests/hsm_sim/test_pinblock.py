"""ISO 9564-1 PIN blocks: published vectors, hand-worked blocks, error codes, properties."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsm_sim.cryptoerrors import InputError, PinBlockContentError, PinBlockFormatError, PinLengthError
from hsm_sim.pinblock import (
    PinBlockFormat,
    build_iso4_encrypted,
    build_pinblock,
    iso4_pan_field,
    pan12,
    parse_iso4_encrypted,
    parse_pinblock,
)
from tests.switch import independent

H = bytes.fromhex
AES_KEY = H("2B7E151628AED2A6ABF7158809CF4F3C")


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


# --- published ISO 9564 vectors (psec and openemv test suites) ----------------------------


def test_format0_vector() -> None:
    block = build_pinblock(PinBlockFormat.ISO0, "1234", "5555555551234567")
    assert block == H("041261AAAAEDCBA9")
    assert parse_pinblock(H("041261AAAAEDCBA9"), "5555555551234567") == "1234"


def test_format1_decode_vector() -> None:
    assert parse_pinblock(H("1512345EDCBA9876")) == "12345"


def test_format2_vector() -> None:
    assert build_pinblock(PinBlockFormat.ISO2, "1234") == H("241234FFFFFFFFFF")
    assert parse_pinblock(H("241234FFFFFFFFFF"), fmt=PinBlockFormat.ISO2) == "1234"


def test_format4_pin_field_x9_24_3_supplement() -> None:
    # X9.24-3:2017 supplement (AES PIN block format 4): PIN 1234 -> 441234AAAAAAAAAA + random.
    field = build_pinblock(PinBlockFormat.ISO4, "1234")
    assert len(field) == 16
    assert field[:8] == H("441234AAAAAAAAAA")
    assert parse_pinblock(field) == "1234"


def test_format4_pan_field_x9_24_3_supplement() -> None:
    assert iso4_pan_field("4111111111111111") == H("44111111111111111000000000000000")


def test_format4_pan_field_short_pan_left_padded() -> None:
    # 9-digit PAN: M = 0, digits padded to 12 on the left.
    assert iso4_pan_field("123456789") == H("00001234567890000000000000000000")


# --- hand-worked -------------------------------------------------------------------------------


def test_pan12() -> None:
    assert pan12("5555555551234567") == "555555123456"  # drop check digit 7, keep 12
    assert pan12("4012345678909") == "401234567890"
    assert pan12("401234567890") == "401234567890"  # already the account-number field
    assert pan12("12345678") == "000001234567"


def test_format0_with_12_digit_account_number_matches_full_pan() -> None:
    assert build_pinblock(0, "1234", "555555123456") == H("041261AAAAEDCBA9")


def test_format1_fill_is_random_hex() -> None:
    blocks = {build_pinblock(PinBlockFormat.ISO1, "1234") for _ in range(8)}
    assert len(blocks) > 1
    for b in blocks:
        assert b[:3] == H("141234")


def test_format3_structure() -> None:
    # PAN field 0000555555123456; the fill nibbles of block XOR field must all be A..F.
    pan = "5555555551234567"
    for _ in range(20):
        block = build_pinblock(PinBlockFormat.ISO3, "1234", pan)
        clear = _xor(block, H("0000555555123456")).hex().upper()
        assert clear[:6] == "341234"
        assert set(clear[6:]) <= set("ABCDEF")
        assert parse_pinblock(block, pan) == "1234"


def test_format4_encrypted_is_two_aes_passes() -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    pan = "4111111111111111"
    block = build_iso4_encrypted(AES_KEY, "1234", pan)
    dec = Cipher(algorithms.AES(AES_KEY), modes.ECB()).decryptor()
    i2 = dec.update(block)
    i1 = _xor(i2, H("44111111111111111000000000000000"))
    field = dec.update(i1) + dec.finalize()
    assert field[:8] == H("441234AAAAAAAAAA")
    assert parse_iso4_encrypted(AES_KEY, block, pan) == "1234"


def test_format4_wrong_pan_is_rejected() -> None:
    block = build_iso4_encrypted(AES_KEY, "1234", "4111111111111111")
    with pytest.raises((PinBlockContentError, PinLengthError, PinBlockFormatError)):
        parse_iso4_encrypted(AES_KEY, block, "4111111111111112")


# --- error codes -------------------------------------------------------------------------------


@pytest.mark.parametrize("block", ["541234FFFFFFFFFF", "F41234FFFFFFFFFF"])
def test_unknown_format_code_is_23(block: str) -> None:
    with pytest.raises(PinBlockFormatError):
        parse_pinblock(H(block))


def test_format_mismatch_is_23() -> None:
    with pytest.raises(PinBlockFormatError):
        parse_pinblock(H("241234FFFFFFFFFF"), fmt=PinBlockFormat.ISO1)


def test_build_unknown_format_is_23() -> None:
    with pytest.raises(PinBlockFormatError):
        build_pinblock(7, "1234")


@pytest.mark.parametrize("block", ["23123FFFFFFFFFFF", "2D1234567890123F", "2012FFFFFFFFFFFF"])
def test_pin_length_outside_4_12_is_24(block: str) -> None:
    with pytest.raises(PinLengthError):
        parse_pinblock(H(block))


@pytest.mark.parametrize("pin", ["123", "1234567890123", ""])
def test_build_pin_length_is_24(pin: str) -> None:
    with pytest.raises(PinLengthError):
        build_pinblock(PinBlockFormat.ISO2, pin)


@pytest.mark.parametrize(
    "block",
    [
        "241234FFFFFFFFFE",  # format 2 fill must be F
        "24123AFFFFFFFFFF",  # PIN digit A
    ],
)
def test_bad_fill_or_digit_is_20(block: str) -> None:
    with pytest.raises(PinBlockContentError):
        parse_pinblock(H(block), fmt=PinBlockFormat.ISO2)


def test_format1_accepts_any_fill() -> None:
    assert parse_pinblock(H("141234FFFFFFFF00")) == "1234"


def test_format0_wrong_pan_gives_bad_fill_20() -> None:
    # 041261AAAAEDCBA9 XOR 0000555555123457 (last digit off by one) = 041234FFFFFFFFFE.
    with pytest.raises(PinBlockContentError):
        parse_pinblock(H("041261AAAAEDCBA9"), "5555555551234577")


def test_format3_fill_below_a_is_20() -> None:
    # Clear 3412349999999999 XOR PAN field 0000555555123456.
    block = _xor(H("3412349999999999"), H("0000555555123456"))
    with pytest.raises(PinBlockContentError):
        parse_pinblock(block, "5555555551234567")


def test_format0_needs_pan() -> None:
    with pytest.raises(InputError):
        build_pinblock(PinBlockFormat.ISO0, "1234")


def test_error_reason_never_contains_pin() -> None:
    with pytest.raises(PinBlockContentError) as e:
        parse_pinblock(H("24123AFFFFFFFFFF"))
    assert "123A" not in str(e.value) and "1234" not in str(e.value)


def test_wrong_block_length() -> None:
    with pytest.raises(InputError):
        parse_pinblock(H("241234FFFFFFFF"))


# --- properties --------------------------------------------------------------------------------

pins = st.text(alphabet="0123456789", min_size=4, max_size=12)
pans = st.text(alphabet="0123456789", min_size=13, max_size=19)


@settings(max_examples=150, deadline=None)
@given(fmt=st.sampled_from([0, 1, 2, 3]), pin=pins, pan=pans)
def test_property_round_trip_formats_0_to_3(fmt: int, pin: str, pan: str) -> None:
    block = build_pinblock(fmt, pin, pan)
    assert len(block) == 8
    assert parse_pinblock(block, pan, fmt) == pin
    assert parse_pinblock(block, pan) == pin


@settings(max_examples=60, deadline=None)
@given(pin=pins, pan=st.text(alphabet="0123456789", min_size=1, max_size=19))
def test_property_round_trip_format4(pin: str, pan: str) -> None:
    block = build_iso4_encrypted(AES_KEY, pin, pan)
    assert len(block) == 16
    assert parse_iso4_encrypted(AES_KEY, block, pan) == pin


@settings(max_examples=200, deadline=None)
@given(block=st.binary(min_size=8, max_size=8), fmt=st.sampled_from([None, 0, 1, 2, 3]))
def test_property_garbage_only_raises_pin_block_errors(block: bytes, fmt: int | None) -> None:
    try:
        pin = parse_pinblock(block, "4012345678909", fmt)
    except (PinBlockFormatError, PinLengthError, PinBlockContentError, InputError):
        pass
    else:
        assert pin.isdigit() and 4 <= len(pin) <= 12


# Nibble strings near a valid format 0 PIN field: a control nibble, a length nibble, digits and
# fill drawn mostly from what a valid field holds, so both accepted and refused fields come up.
_near_iso0_fields = st.tuples(
    st.sampled_from("00001"),
    st.sampled_from("3456789ABCD"),
    st.lists(st.sampled_from("0123456789999FFFFFFFFA"), min_size=14, max_size=14),
).map(lambda parts: parts[0] + parts[1] + "".join(parts[2]))


@settings(max_examples=400, deadline=None)
@given(field=_near_iso0_fields, pan=pans)
def test_property_format0_agrees_with_the_independent_reader(field: str, pan: str) -> None:
    # tests/switch/independent.py reads a format 0 block from the ISO 9564 definition alone.
    block = _xor(H(field), H("0000" + pan[-13:-1]))
    expected = independent.iso0_pin(block, pan)
    if expected is None:
        with pytest.raises((PinBlockFormatError, PinLengthError, PinBlockContentError)):
            parse_pinblock(block, pan, PinBlockFormat.ISO0)
    else:
        assert parse_pinblock(block, pan, PinBlockFormat.ISO0) == expected


@pytest.mark.parametrize("length", range(4, 13))
@pytest.mark.parametrize(("fmt", "fill"), [(0, "F"), (1, "7"), (2, "F"), (3, "C")])
def test_every_pin_length_parses_in_every_format(fmt: int, fill: str, length: int) -> None:
    # Hand-built clear PIN fields; formats 0 and 3 XOR the account field in, 1 and 2 take none.
    pin = "9876543210987"[:length]
    field = H(f"{fmt}{length:X}{pin}".ljust(16, fill))
    account = "400000123456"
    block = _xor(field, H("0000" + account)) if fmt in (0, 3) else field
    assert parse_pinblock(block, account, fmt) == pin
