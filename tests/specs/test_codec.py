"""Codec: the published UnionPay sign-in frame, hand-worked layouts, and typed errors."""

from __future__ import annotations

import json
import pickle

import pytest

from specs.codec import codec_for
from specs.errors import CodecError
from tests.vectorfiles import vector_path

VECTORS = vector_path("cup_pos.json")
# The published sign-in body (docs/cup-pos.md, "The frame"), copied so the test runs without the
# published vectors beside the checkout.
SIGNIN_HEX = (
    "08000020000000C00012000105303030303037363438343831303030353831323630303200110000000100300003303031"
)
SIGNIN_FIELDS = {11: "000105", 41: "00000764", 42: "848100058126002", 60: "00000001003", 63: "001"}


def test_published_signin_matches_vector_file() -> None:
    if not VECTORS.exists():
        pytest.skip("shared/vectors not beside the checkout")
    example = json.loads(VECTORS.read_text())["examples"][0]
    assert example["hex"] == SIGNIN_HEX
    assert {int(k): v for k, v in example["decoded"].items()} == SIGNIN_FIELDS


def test_decode_published_signin_gives_listed_fields() -> None:
    message = codec_for("cup-pos").decode(bytes.fromhex(SIGNIN_HEX))
    assert message.mti == "0800"
    assert dict(message.fields) == SIGNIN_FIELDS
    assert message.subfields(60) == {"60.1": "00", "60.2": "000001", "60.3": "003"}


def test_encode_published_signin_gives_same_bytes() -> None:
    codec = codec_for("cup-pos")
    assert codec.encode(codec.message("0800", SIGNIN_FIELDS)).hex().upper() == SIGNIN_HEX


def _cup_0200(**extra: str) -> dict[int, str]:
    fields = {
        3: "000000",
        4: "000000000100",
        11: "000001",
        22: "051",
        25: "00",
        41: "00000764",
        42: "848100058126002",
        49: "156",
        60: "22000001000",
    }
    fields.update({int(k[1:]): v for k, v in extra.items()})
    return fields


def test_field_22_is_left_aligned_with_trailing_zero_nibble() -> None:
    codec = codec_for("cup-pos")
    body = codec.encode(codec.message("0200", _cup_0200()))
    message = codec.decode(body)
    off = message.offsets["22"]
    assert body[off : off + 2] == b"\x05\x10"
    assert message[22] == "051"


def test_variable_odd_pan_is_left_aligned_with_bcd_digit_count() -> None:
    codec = codec_for("cup-pos")
    body = codec.encode(codec.message("0200", _cup_0200(f2="6222021234567890123")))
    off = codec.decode(body).offsets["2"]
    # LLVAR length counts 19 digits, BCD 0x19; digits left-aligned, pad nibble 0 at the end.
    assert body[off : off + 11].hex() == "19" + "62220212345678901230"


def test_lllvar_ans_length_counts_bytes_in_bcd() -> None:
    codec = codec_for("cup-pos")
    body = codec.encode(codec.message("0800", {**SIGNIN_FIELDS, 63: "01 "}))
    assert body.endswith(b"\x00\x03" + b"01 ")


def test_fixed_numeric_is_zero_filled_on_the_left() -> None:
    codec = codec_for("cup-pos")
    message = codec.message("0800", {**SIGNIN_FIELDS, 11: "105"})
    assert message[11] == "000105"


def test_iso87_binary_layout_with_secondary_bitmap() -> None:
    codec = codec_for("iso87-binary")
    body = codec.encode(codec.message("0800", {11: "000001", 70: "301"}))
    # bits 1 and 11 in the primary bitmap, bit 70 (6th of the secondary)
    assert (
        body == b"0800" + bytes.fromhex("8020000000000000") + bytes.fromhex("0400000000000000") + b"000001301"
    )
    assert dict(codec.decode(body).fields) == {11: "000001", 70: "301"}


def test_iso87_ascii_writes_bitmaps_as_hex_text() -> None:
    codec = codec_for("iso87-ascii")
    body = codec.encode(codec.message("0800", {11: "000001", 70: "301"}))
    assert body == b"0800" + b"8020000000000000" + b"0400000000000000" + b"000001301"


def test_iso87_llvar_length_is_ascii() -> None:
    codec = codec_for("iso87-binary")
    body = codec.encode(codec.message("0200", {2: "4761739001010010", 3: "000000", 4: "1000", 11: "1"}))
    assert b"164761739001010010" in body


def test_non_bcd_digit_names_field_and_offset() -> None:
    body = bytes.fromhex("0800" + "0020000000000000" + "00011A")
    with pytest.raises(CodecError) as info:
        codec_for("cup-pos").decode(body, validate=False)
    assert (info.value.field, info.value.offset) == ("11", 10)
    assert info.value.response_code == "30"


def test_trailing_bytes_are_an_error() -> None:
    with pytest.raises(CodecError, match="Extra data"):
        codec_for("cup-pos").decode(bytes.fromhex(SIGNIN_HEX) + b"\x00")


def test_truncated_body_names_last_field() -> None:
    with pytest.raises(CodecError) as info:
        codec_for("cup-pos").decode(bytes.fromhex(SIGNIN_HEX)[:-1])
    assert info.value.field == "63"


def test_undefined_field_in_bitmap_is_refused() -> None:
    body = bytes.fromhex("0800" + "0800000000000000")  # field 5: not in cup-pos
    with pytest.raises(CodecError, match="field 5") as info:
        codec_for("cup-pos").decode(body)
    assert (info.value.field, info.value.offset) == ("bitmap", 2)


def test_missing_mandatory_field_names_it() -> None:
    codec = codec_for("cup-pos")
    fields = {k: v for k, v in SIGNIN_FIELDS.items() if k != 41}
    body = codec.encode(codec.message("0800", fields), validate=False)
    with pytest.raises(CodecError, match="mandatory in 0800") as info:
        codec.decode(body)
    assert info.value.field == "41"


# An 0810 body with field 39 alone: MTI 08 10, bitmap with bit 39 (byte 4, 0x02), 39 in ASCII.
ONLY_39 = "0810" + "0000000002000000"


def test_a_refusal_needs_only_39_and_an_approval_all_it_lists() -> None:
    codec = codec_for("cup-pos")
    assert dict(codec.decode(bytes.fromhex(ONLY_39 + "3330")).fields) == {39: "30"}
    assert codec.encode(codec.message("0810", {39: "96"})).hex().upper() == ONLY_39 + "3936"
    with pytest.raises(CodecError, match="mandatory in 0810 approval") as info:
        codec.decode(bytes.fromhex(ONLY_39 + "3030"))  # 39 = 00 without 11, 41, 42, 60
    assert info.value.field == "11"
    with pytest.raises(CodecError, match="mandatory in 0810 refusal"):
        codec.encode(codec.message("0810", {11: "000001"}))  # no 39: not an approval, and no 39
    iso = codec_for("iso87-binary")
    assert iso.decode(bytes.fromhex("30323130" + "0000000002000000" + "3330"))[39] == "30"
    with pytest.raises(CodecError, match=r"field 3 .*mandatory in 0210 approval"):
        iso.decode(bytes.fromhex("30323130" + "0000000002000000" + "3030"))


def test_salvage_keeps_only_fields_that_would_encode_again() -> None:
    codec = codec_for("cup-pos")
    # the published sign-in with 60 = "22" (LLL 0002, one byte 22): 60 is dropped, 63 kept
    short_60 = SIGNIN_HEX.replace("00110000000100300003303031", "0002" + "22" + "0003303031")
    mti, fields = codec.salvage(bytes.fromhex(short_60))
    assert mti == "0800" and fields == {11: "000105", 41: "00000764", 42: "848100058126002", 63: "001"}
    # cut inside 60: what came before it is kept
    cut = codec.salvage(bytes.fromhex(SIGNIN_HEX[:-14]))
    assert cut == ("0800", {11: "000105", 41: "00000764", 42: "848100058126002"})
    assert codec.salvage(b"\x08") == (None, {})


def test_subfield_boundary_is_checked() -> None:
    codec = codec_for("cup-pos")
    with pytest.raises(CodecError, match=r"inside subfield 60\.3"):
        codec.message("0800", {**SIGNIN_FIELDS, 60: "0000000100"})


def test_encode_rejects_value_too_long_and_bad_characters() -> None:
    codec = codec_for("cup-pos")
    with pytest.raises(CodecError, match="length 7, must be 6"):
        codec.message("0800", {**SIGNIN_FIELDS, 11: "1234567"})
    with pytest.raises(CodecError, match="not numeric") as info:
        codec.message("0800", {**SIGNIN_FIELDS, 11: "12345X"})
    assert info.value.field == "11"
    assert "12345X" not in str(info.value)


def test_codec_error_pickles() -> None:
    error = CodecError("60", 36, "bad")
    again = pickle.loads(pickle.dumps(error))
    assert (again.field, again.offset, again.reason) == ("60", 36, "bad")


def test_repr_masks_pan_track_and_pin_block() -> None:
    codec = codec_for("cup-pos")
    message = codec.message(
        "0200",
        _cup_0200(f2="6222021234567890123", f35="6222021234567890123D2512101", f52="0123456789ABCDEF"),
    )
    text = repr(message)
    assert "622202*********0123" in text
    assert "6222021234567890123" not in text
    assert "0123456789ABCDEF" not in text
    assert message.unmasked_fields()[2] == "6222021234567890123"


def test_a_slot_fills_the_stan_of_the_published_signin_in_place() -> None:
    codec = codec_for("cup-pos")
    slot = codec.slot(codec.message("0800", SIGNIN_FIELDS), 11)
    assert slot.fill("000105").hex().upper() == SIGNIN_HEX
    # 11 is n6 BCD right after MTI (2 bytes) and bitmap (8): bytes 10..12 of the body.
    want = SIGNIN_HEX[:20] + "123456" + SIGNIN_HEX[26:]
    assert slot.fill("123456").hex().upper() == want
    assert slot.fill("7").hex().upper() == SIGNIN_HEX[:20] + "000007" + SIGNIN_HEX[26:]


def test_a_slot_in_an_ascii_dialect_writes_ascii_digits() -> None:
    codec = codec_for("iso87-ascii")
    slot = codec.slot(codec.message("0800", {11: "000001", 70: "301"}), 11)
    assert slot.fill("000042") == b"0800" + b"8020000000000000" + b"0400000000000000" + b"000042301"


def test_a_slot_needs_a_fixed_field_present_and_a_value_that_fits() -> None:
    codec = codec_for("cup-pos")
    message = codec.message("0800", SIGNIN_FIELDS)
    with pytest.raises(CodecError) as variable:
        codec.slot(message, 60)
    assert variable.value.field == "60" and "fixed-length" in variable.value.reason
    with pytest.raises(CodecError) as absent:
        codec.slot(message, 12)
    assert absent.value.field == "12"
    slot = codec.slot(message, 11)
    with pytest.raises(CodecError) as bad:
        slot.fill("12A456")
    assert bad.value.field == "11" and "numeric" in bad.value.reason
    with pytest.raises(CodecError) as long:
        slot.fill("1234567")
    assert long.value.field == "11" and "length" in long.value.reason


def test_the_value_memos_keep_no_pin_block_track_or_pan() -> None:
    # Codec._normalise and Message.subfields remember what they worked out (specs/codec.py,
    # specs/message.py); a sensitive field's value must not outlive its message there.
    from specs import message as message_module

    codec = codec_for("cup-pos")
    pan, track, block = "6222021234567890123", "6222021234567890123D30121010000", "0123456789ABCDEF"
    built = codec.message("0200", {**_cup_0200(), 2: pan, 35: track, 52: block, 53: "2600000000000000"})
    assert built[52] == block and built[2] == pan  # normalised as usual
    assert built.subfields(60)["60.1"] == "22"
    remembered = [v for key, v in codec._normalised.items() for v in (key[1], v)]
    remembered += [v for _, parts in message_module._SPLIT.values() for v in parts.values()]
    assert remembered, "the memos are in use"
    assert not [v for v in remembered if pan in v or block in v or "D3012" in v]
    assert codec._normalised.get((3, "000000")) == "000000"  # what they do keep: a plain value
