"""BER-TLV codec (specs/tlv.py) and its masking, against emv.json and hand-written bytes.

Expected values: /work/shared/vectors/emv.json (tlv_examples, the PBOC example B tags, the
UnionPay CA key records with their SHA-1 checksums, the AID parameter example) and encodings
written out by hand from the BER rules (EMV Book 3 annex B); pyemv's own TLV decoder (a
test-only cross-check) reads the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from typing import Any

import pyemv.tlv
import pytest

from specs import tlv
from specs.codec import codec_for
from specs.dump import tlv_json
from specs.masking import mask_tlv_hex
from specs.response import ResponseCode
from specs.tlv import Tlv, TlvError
from tests.vectorfiles import vector_path

H = bytes.fromhex
EMV = json.loads((vector_path("emv.json")).read_text())
PBOC_B = EMV["pboc_cvn01_examples"][1]
FIELD55 = EMV["tlv_examples"][0]["hex"]

# Written by hand: PAN 6228000100001 01 as 5A (cn, F-padded) and a track 2 equivalent with it.
PAN_5A = "5A08622800010000101F"
TRACK2_57 = "5710622800010000101FD30122011234567F"


@pytest.mark.parametrize("example", EMV["tlv_examples"], ids=lambda e: e["id"])
def test_published_field55_parses_in_order_and_rebuilds_byte_for_byte(example: dict[str, Any]) -> None:
    objects = tlv.parse(H(example["hex"]))
    assert [o.tag for o in objects] == example["tags"]
    assert tlv.build(objects).hex().upper() == example["hex"]


def test_pboc_example_b_field55_holds_the_published_tag_values() -> None:
    assert PBOC_B["field55_tlv"] == FIELD55
    objects = tlv.unique(tlv.parse(H(FIELD55)))
    for tag, value in PBOC_B["pboc_input_from_tags"].items():
        assert objects[tag].value.hex().upper() == value
    assert objects["9F26"].value.hex().upper() == PBOC_B["arqc"]


def test_tag_91_is_arpc_then_arc() -> None:
    (obj,) = tlv.parse(H(PBOC_B["tag91_for_arc_00"]))
    assert obj.tag == "91"
    assert obj.value == H(PBOC_B["arpc_cross_checked"][0]["arpc"]) + b"00"


@pytest.mark.parametrize("capk", EMV["capk"], ids=lambda c: c["index"])
def test_ca_key_records_with_long_lengths_and_their_checksums(capk: dict[str, Any]) -> None:
    objects = tlv.unique(tlv.parse(H(capk["tlv"])))
    modulus = objects["DF02"].value
    assert modulus.hex().upper() == capk["modulus"]
    assert len(modulus) * 8 == capk["modulus_bits"]
    assert len(modulus) >= 0x80  # so the record uses the 81 xx long form
    assert capk["tlv"].count("DF0281") == 1
    digest = hashlib.sha1(objects["9F06"].value + objects["9F22"].value + modulus + objects["DF04"].value).hexdigest()
    assert digest.upper() == objects["DF03"].value.hex().upper() == capk["checksum"]
    assert tlv.build(tlv.parse(H(capk["tlv"]))).hex().upper() == capk["tlv"]


def test_aid_parameter_record() -> None:
    objects = tlv.unique(tlv.parse(H(EMV["aid_param_tags"]["example"])))
    assert objects["9F06"].value == H("A000000333010101")
    assert objects["9F1B"].value == H("0000C350")  # floor limit 500.00
    assert objects["DF14"].value == H("9F3704")  # default DDOL: the unpredictable number


def test_pyemv_reads_the_same_objects() -> None:
    ours = {o.tag: o.value for o in tlv.parse(H(FIELD55))}
    assert pyemv.tlv.decode(H(FIELD55)) == ours


# --- encodings by hand ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "header"),
    [(0, "9F1000"), (127, "9F107F"), (128, "9F108180"), (255, "9F1081FF"), (256, "9F10820100"), (300, "9F1082012C")],
)
def test_lengths_short_and_long_forms(size: int, header: str) -> None:
    obj = Tlv("9F10", bytes(range(256)) * 2)
    obj = Tlv("9F10", obj.value[:size])
    wire = obj.encode()
    assert wire.hex().upper().startswith(header)
    assert len(wire) == len(header) // 2 + size
    assert tlv.parse(wire) == (obj,)


def test_non_minimal_long_length_is_read() -> None:
    (obj,) = tlv.parse(H("9F3781040102030405"[:-2]))
    assert obj.value == H("01020304")


def test_issuer_scripts_nest_with_offsets() -> None:
    # 71 (script template 1): 9F18 script id 00000001, then an 86 command (PUT DATA 9F79, 8 bytes)
    script = "9F180400000001" + "860D04DA9F7908" + "0000000010000000"[:16]
    wire = H("910A" + "C01B237749040E2B3030" + "71" + f"{len(script) // 2:02X}" + script + "72" + "00")
    objects = tlv.parse(wire, base_offset=100)
    assert [o.tag for o in objects] == ["91", "71", "72"]
    scripts = objects[1]
    assert scripts.constructed and [c.tag for c in scripts.children] == ["9F18", "86"]
    assert scripts.offset == 112 and scripts.value_offset == 114
    assert scripts.children[0].offset == 114 and scripts.children[1].offset == 121
    assert scripts.children[1].value == H("04DA9F79080000000010000000")
    assert objects[2].children == ()
    assert tlv.build(objects) == wire


def test_template_builds_its_value_from_children() -> None:
    made = Tlv.template("71", [Tlv("9F18", H("00000002")), Tlv("86", H("8418000000"))])
    assert made.encode() == H("710E" + "9F180400000002" + "86058418000000")
    assert tlv.parse(made.encode()) == (made,)


def test_three_byte_tag() -> None:
    (obj,) = tlv.parse(H("DF810102ABCD"))
    assert obj.tag == "DF8101" and obj.value == H("ABCD")


def test_repeated_tags_are_kept_in_order() -> None:
    objects = tlv.parse(H("7100" + "7100"))
    assert len(objects) == 2


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "tag", "offset", "reason"),
    [
        ("9F", None, 0, "data ends inside a tag"),
        ("9F26", "9F26", 0, "data ends before the length"),
        ("9A0314070195", "95", 5, "data ends before the length"),
        ("9F2608AABB", "9F26", 0, "length 8 runs 6 bytes past the end"),
        ("9F2680", "9F26", 0, "indefinite length (80) is not allowed"),
        ("9F2683000001", "9F26", 0, "length field of 4 bytes; at most 3 (82 xx xx)"),
        ("9F2681", "9F26", 0, "data ends inside the length"),
        ("9F26820100", "9F26", 0, "length 256 runs 256 bytes past the end"),
        ("9C0100" + "00", None, 3, "byte 00 where a tag should start"),
        ("FF", None, 0, "byte FF where a tag should start"),
        ("DFFFFF7F00", None, 0, "tag longer than 3 bytes"),
        ("7103" + "9F2601", "9F26", 2, "length 1 runs 1 bytes past the end"),
    ],
)
def test_malformed_tlv_names_tag_offset_and_reason(wire: str, tag: str | None, offset: int, reason: str) -> None:
    with pytest.raises(TlvError) as err:
        tlv.parse(H(wire), base_offset=10, field="55")
    exc = err.value
    assert (exc.tag, exc.offset, exc.reason, exc.field) == (tag, offset + 10, reason, "55")
    assert exc.response_code is ResponseCode.FORMAT_ERROR
    where = f"tag {tag}" if tag else "TLV"
    assert str(exc) == f"field 55 {where} at byte {offset + 10}: {reason}"
    again = pickle.loads(pickle.dumps(exc))
    assert (again.tag, again.offset, again.reason, again.field) == (tag, offset + 10, reason, "55")


def test_nesting_deeper_than_eight_levels_is_refused() -> None:
    wire = b""
    for _ in range(10):
        wire = b"\xe0" + bytes([len(wire)]) + wire
    with pytest.raises(TlvError) as err:
        tlv.parse(wire)
    assert err.value.offset == 8 * 2 and "deeper than 8" in err.value.reason
    assert len(tlv.parse(wire[4:])[0].children) == 1  # eight levels parse


def test_tlv_error_is_a_codec_error_without_the_value() -> None:
    wire = H("5A08622800010000")  # a PAN cut short
    with pytest.raises(TlvError) as err:
        tlv.parse(wire)
    assert "62280001" not in str(err.value)


def test_unique_require_and_check_lengths() -> None:
    objects = tlv.parse(H("9F3602024095050080046000" + "9F36020241"))
    with pytest.raises(TlvError) as err:
        tlv.unique(objects, field="55")
    assert (err.value.tag, err.value.offset, err.value.reason) == ("9F36", 12, "appears twice")
    index = tlv.unique(objects[:2])
    tlv.require(index, ["9F36", "95"])
    with pytest.raises(TlvError) as err:
        tlv.require(index, ["9F36", "9F26", "9F27"], offset=7, field="55")
    assert (err.value.tag, err.value.offset, err.value.reason) == ("9F26", 7, "mandatory but absent")
    tlv.check_lengths(index.values())
    with pytest.raises(TlvError) as err:
        tlv.check_lengths(tlv.parse(H("9F3704" + "01020304" + "9F360101")))
    assert err.value.tag == "9F36" and err.value.reason == "length 1; Application Transaction Counter is 2 bytes"
    with pytest.raises(TlvError) as err:
        tlv.check_lengths(tlv.parse(H("7106" + "9F1803000001")))
    assert err.value.tag == "9F18" and err.value.offset == 2


@pytest.mark.parametrize(
    ("tag", "reason"),
    [
        ("9f26", "a tag is 1 to 3 bytes of uppercase hex"),
        ("9F", "the tag's last byte says another follows"),
        ("26AB", "byte 2 follows a tag that ended at byte 1"),
        ("00", "00 is padding, not a tag"),
        ("XY", "a tag is hexadecimal"),
        ("", "a tag is 1 to 3 bytes of uppercase hex"),
    ],
)
def test_tlv_objects_validate_their_tag(tag: str, reason: str) -> None:
    with pytest.raises(TlvError) as err:
        Tlv(tag, b"")
    assert err.value.reason == reason


def test_primitive_tag_cannot_hold_children() -> None:
    with pytest.raises(TlvError):
        Tlv("9F26", b"", (Tlv("95", bytes(5)),))
    with pytest.raises(TlvError):
        Tlv.template("9F26", [])


# --- masking --------------------------------------------------------------------------------


def test_mask_hides_track_and_name_and_shows_pan_6_4() -> None:
    name = "5F2005" + b"LI/SI".hex().upper()
    shown = mask_tlv_hex("9F36020240" + PAN_5A + TRACK2_57 + name)
    assert shown == "9F36020240" + "5A08" + "622800*****0101F" + "5710" + "*" * 32 + "5F2005" + "*" * 10
    assert len(shown) == len("9F36020240" + PAN_5A + TRACK2_57 + name)


def test_mask_reaches_inside_templates() -> None:
    inner = "70" + f"{len(TRACK2_57) // 2:02X}" + TRACK2_57
    shown = mask_tlv_hex(inner)
    assert shown == "7012" + "5710" + "*" * 32


def test_unparseable_tlv_is_hidden_whole() -> None:
    broken = TRACK2_57[:-4]
    assert mask_tlv_hex(broken) == "*" * len(broken)
    assert mask_tlv_hex("5a01") == "****"  # not the codec's uppercase hex


def test_repr_of_sensitive_objects_shows_no_value() -> None:
    objects = tlv.parse(H(PAN_5A + TRACK2_57))
    text = repr(objects)
    assert "6228000100001" not in text and "D3012" not in text
    assert "Tlv(5A=<8 bytes, masked>)" in text


def test_message_repr_and_journal_view_mask_field_55() -> None:
    codec = codec_for("cup-pos")
    message = codec.message("0200", {11: "000001", 55: "9F36020240" + TRACK2_57})
    assert "D30122" not in repr(message)
    assert message.masked_fields()[55] == "9F36020240" + "5710" + "*" * 32
    assert message.unmasked_fields()[55] == "9F36020240" + TRACK2_57


def test_json_view_of_objects() -> None:
    assert tlv_json("9F3602024071009F36") == {"error": "tag 9F36 at byte 7: data ends before the length"}
    assert tlv_json("9F360202407103" + "8A0130" + PAN_5A) == [
        {"tag": "9F36", "name": "Application Transaction Counter", "value": "0240"},
        {
            "tag": "71",
            "name": "Issuer Script Template 1",
            "objects": [
                {"tag": "8A", "name": "Authorisation Response Code", "value": "30"},
            ],
        },
        {"tag": "5A", "name": "Application PAN", "value": "622800*****0101F"},
    ]
    assert tlv_json(PAN_5A, unmasked=True)[0]["value"] == "622800010000101F"  # type: ignore[index]


def test_every_table_entry_is_a_well_formed_tag() -> None:
    for tag, info in tlv.TAGS.items():
        assert tlv.tag_problem(tag) is None and info.tag == tag
        assert info.min_length <= info.max_length
    assert {t["tag"] for t in EMV["field55"]["tags"]} <= set(tlv.TAGS)
