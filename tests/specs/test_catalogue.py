"""The message catalogue against the contract written out by hand (docs/cup-pos.md,
docs/financial.md, docs/iso87.md) and the published sign-in example: routing, request
skeletons, field 62 layouts, the MAC input and the loader's errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from specs import catalogue, catalogue_loader, loader
from specs.catalogue import CatalogueError, Needs, mac_input
from specs.catalogue_loader import catalogue_for
from specs.codec import codec_for
from specs.keylayout import KeyLayoutError, KeyName
from specs.reference import render_messages
from tests.switch import independent

CUP = catalogue_loader.load("cup-pos")
ISO = catalogue_loader.load("iso87")
CODEC = codec_for("cup-pos")
BASE = {11: "000001", 41: "00000764", 42: "848100058126002"}
CARD = {2: "6222021234567890123", 22: "021", 25: "00", 49: "156"}

# (MTI, 3, 60.1, 60.3) -> kind, as the README and docs/financial.md tables say.
CUP_ROUTES = [
    ("0800", None, "00", "001", "signin"),
    ("0800", None, "00", "003", "signin"),
    ("0800", None, "00", "004", "signin"),
    ("0820", None, "00", "002", "signoff"),
    ("0820", None, "00", "301", "echo"),
    ("0800", None, "00", "360", "param_download"),
    ("0820", None, "00", "362", "status_upload"),
    ("0800", None, "00", "011", "operator_signin"),
    ("0800", None, "00", "012", "operator_signout"),
    ("0800", None, "00", "013", "password_change"),
    ("0200", "000000", "22", "000", "purchase"),
    ("0200", "310000", "01", "000", "balance"),
    ("0200", "200000", "23", "000", "void"),
    ("0220", "200000", "25", "000", "refund"),
    ("0100", "030000", "10", "000", "preauth"),
    ("0200", "000000", "20", "000", "completion"),
    ("0400", "000000", "22", "000", "reversal"),
    ("0400", "030000", "10", "000", "reversal"),
    ("0500", None, "00", "201", "settlement"),
    ("0320", "000000", "00", "201", "batch_upload"),
    ("0320", None, "00", "203", "ic_upload"),
    ("0320", None, "00", "206", "ic_upload"),
    ("0320", None, "00", "202", "ic_upload_end"),
    ("0820", None, "00", "372", "capk_list"),
    ("0800", None, "00", "370", "capk_record"),
    ("0800", None, "00", "371", "capk_done"),
    ("0820", None, "00", "382", "aid_list"),
    ("0800", None, "00", "380", "aid_record"),
    ("0800", None, "00", "381", "aid_done"),
    ("0800", None, "00", "390", "blacklist"),
    ("0800", None, "00", "391", "blacklist_done"),
]
# Chip kinds route on 22 too (emv.json cup_ic_messages: 05x contact, 07x contactless; a
# swiped 02x, even with the fallback indicator, is the magnetic kind).
CHIP_ROUTES = [
    ("0200", "000000", "22", "051", "chip_purchase"),
    ("0200", "000000", "22", "052", "chip_purchase"),
    ("0200", "000000", "22", "072", "contactless_purchase"),
    ("0200", "000000", "22", "021", "purchase"),
    ("0200", "310000", "01", "051", "chip_balance"),
    ("0200", "310000", "01", "071", "chip_balance"),
    ("0200", "200000", "23", "052", "chip_void"),
    ("0220", "200000", "25", "052", "chip_refund"),
    ("0100", "030000", "10", "051", "chip_preauth"),
    ("0400", "000000", "22", "051", "chip_reversal"),
    ("0400", "000000", "22", "022", "reversal"),
]


def cup_message(mti: str, pcode: str | None, type_code: str, code: str) -> Any:
    fields: dict[int, str] = {**BASE, 60: f"{type_code}000001{code}"}
    if pcode is not None:
        fields |= {3: pcode, **CARD}
    if mti == "0400":
        fields[39] = "98"
    if mti in ("0500", "0320"):
        fields[48] = "0" * 31 if mti == "0500" else "00"
        fields[49] = "156"
    return CODEC.message(mti, fields)


@pytest.mark.parametrize(("mti", "pcode", "type_code", "code", "name"), CUP_ROUTES)
def test_cup_pos_routes_as_the_contract_says(mti: str, pcode: str | None, type_code: str, code: str, name: str) -> None:
    kind = CUP.lookup(cup_message(mti, pcode, type_code, code))
    assert kind is not None and kind.name == name


@pytest.mark.parametrize(("mti", "pcode", "type_code", "entry", "name"), CHIP_ROUTES)
def test_chip_kinds_route_on_the_entry_mode(mti: str, pcode: str, type_code: str, entry: str, name: str) -> None:
    message = cup_message(mti, pcode, type_code, "000")
    kind = CUP.lookup(message.replace(f22=entry))
    assert kind is not None and kind.name == name


def test_chip_kinds_name_their_field_55_list_in_the_published_order() -> None:
    icc = CUP.icc
    assert icc is not None and icc.field == 55
    # emv.json field55: sale_0200_order + sale_0200_optional_tail, reversal_0400, script_advice_0620_951
    sale = ["9F26", "9F27", "9F10", "9F37", "9F36", "95", "9A", "9C", "9F02", "5F2A", "82", "9F1A", "9F03", "9F33",
            "9F34", "9F35", "9F1E", "84", "9F09", "9F41", "9F63", "DF32", "DF33", "DF34", "DF31"]
    assert list(icc.lists["sale"].tags) == sale
    assert list(icc.lists["reversal"].tags) == ["95", "9F1E", "9F10", "9F36", "DF31"]
    assert list(icc.lists["script_advice"].tags) == ["9F33", "95", "9F37", "9F1E", "9F10", "9F26", "9F36", "82",
                                                     "DF31", "9F1A", "9A"]
    assert {k.name for k in CUP.kinds.values() if k.arqc} == {
        "chip_purchase", "contactless_purchase", "chip_balance", "chip_void", "chip_refund", "chip_preauth"}
    assert CUP.kind("chip_reversal").icc == "reversal" and not CUP.kind("chip_reversal").arqc
    # the ARQC input (emv.json conventions.pboc_arqc_input) is all mandatory
    for tag in ("9F02", "9F03", "9F1A", "95", "5F2A", "9A", "9C", "9F37", "82", "9F36", "9F10", "9F26"):
        assert tag in icc.lists["sale"].mandatory


def test_chip_request_skeletons_carry_how_the_card_was_read() -> None:
    sale = CUP.request("chip_purchase", batch="000007", subfields={"60.4": "6", "60.5": "0"})
    assert dict(sale.fields) == {3: "000000", 60: "2200000700060"}
    assert dict(CUP.request("script_advice", batch="000007", original=sale).fields) == {
        3: "000000", 60: "00000007951"}
    assert dict(CUP.request("ic_upload", batch="000007", code="203", subfields={"60.4": "6", "60.5": "0"}).fields) == {
        60: "0000000720360"}


def test_unserved_requests_find_no_kind_and_get_the_catalogue_code() -> None:
    assert CUP.lookup(cup_message("0800", None, "00", "399")) is None
    assert CUP.lookup(cup_message("0200", "000000", "99", "000")) is None
    assert CUP.lookup(cup_message("0500", None, "00", "000")) is None
    assert CUP.unmatched_code("0200") == "12" and CUP.unmatched_code("0800") == "40"
    assert CUP.unmatched_code("0900") == "40"


def test_iso87_routes_on_mti_and_field_70() -> None:
    iso = codec_for("iso87-binary")
    for code, name in (("001", "signin"), ("002", "signoff"), ("301", "echo")):
        kind = ISO.lookup(iso.message("0800", {11: "000001", 70: code}))
        assert kind is not None and kind.name == name
    assert ISO.lookup(iso.message("0800", {11: "000001", 70: "161"})) is None
    auth = ISO.lookup(iso.message("0100", {3: "000000", 4: "000000000100", 11: "000002"}))
    assert auth is not None and auth.name == "authorisation" and not auth.maced
    assert ISO.lookup(iso.message("0200", {3: "000000", 4: "000000000100", 11: "000003"})) is None


def test_what_each_kind_needs_and_whether_it_is_maced() -> None:
    needs = {name: kind.needs for name, kind in CUP.kinds.items()}
    assert needs["signin"] is needs["echo"] is needs["signoff"] is Needs.NOTHING
    assert needs["operator_signout"] is Needs.OPERATOR
    assert needs["void"] is needs["refund"] is Needs.SUPERVISOR
    assert needs["purchase"] is needs["param_download"] is Needs.SIGNED_IN
    maced = {name for name, kind in CUP.kinds.items() if kind.maced}
    assert maced == {"operator_signin", "operator_signout", "password_change", "purchase", "balance", "void",
                     "refund", "preauth", "completion", "reversal", "settlement", "batch_upload", "chip_purchase",
                     "contactless_purchase", "chip_balance", "chip_void", "chip_refund", "chip_preauth",
                     "chip_reversal", "script_advice", "ic_upload", "ic_upload_end"}


def test_request_skeletons_join_field_60_from_its_subfields() -> None:
    assert CUP.request("signin", batch="000123", code="003").fields == {60: "00000123003"}
    assert CUP.request("echo", batch="000123").mti == "0820"
    purchase = CUP.request("purchase", batch="000007")
    assert (purchase.mti, dict(purchase.fields)) == ("0200", {3: "000000", 60: "22000007000"})
    reversal = CUP.request("reversal", batch="000123", original=purchase)
    assert (reversal.mti, dict(reversal.fields)) == ("0400", {3: "000000", 60: "22000007000"})
    upload = CUP.request("batch_upload", batch="000123", original=purchase)
    assert (upload.mti, dict(upload.fields)) == ("0320", {3: "000000", 60: "00000123201"})
    assert dict(CUP.request("settlement", batch="000123").fields) == {60: "00000123201"}
    assert dict(ISO.request("echo").fields) == {70: "301"}
    assert dict(ISO.request("authorisation").fields) == {3: "000000"}


def test_request_builder_refuses_what_the_kind_does_not_have() -> None:
    with pytest.raises(CatalogueError, match="network code '370'"):
        CUP.request("signin", code="370")
    with pytest.raises(CatalogueError, match="needs the original"):
        CUP.request("reversal")
    with pytest.raises(CatalogueError, match=r"kinds\.operator_signin: no such kind in the iso87 catalogue"):
        ISO.kind("operator_signin")


def test_response_mti_rule_and_data() -> None:
    pairs = {"0800": "0810", "0820": "0830", "0200": "0210", "0220": "0230", "0100": "0110", "0400": "0410",
             "0500": "0510", "0320": "0330", "0620": "0630"}
    assert {k.mti: k.response_mti for k in CUP.kinds.values()} == pairs
    assert catalogue.response_mti("0420") == "0430"
    assert catalogue.response_mti("0290") == "0290"  # no function digit above 9
    assert CUP.response_mti("9999") == "9999"


# -- field 62 ------------------------------------------------------------------------------
# The published working-key example: TMK 11.., PIK 22.. (CV 00962B60), MAK 33.. (ADC67D84),
# TDK 44.. (E2F24340); the layouts are those of docs/cup-pos.md.

TMK = bytes.fromhex("11" * 16)
PIK = (independent.ecb_encrypt(TMK, bytes.fromhex("22" * 16)), bytes.fromhex("00962B60"))
MAK = (independent.ecb_encrypt(TMK, bytes.fromhex("33" * 8)), bytes.fromhex("ADC67D84"))
TDK = (independent.ecb_encrypt(TMK, bytes.fromhex("44" * 16)), bytes.fromhex("E2F24340"))


def test_field62_004_layout_builds_the_published_example() -> None:
    layout = CUP.kind("signin").layout("004")
    data = layout.build({KeyName.PIK: PIK, KeyName.MAK: MAK, KeyName.TDK: TDK})
    assert len(data) == 60
    assert independent.ecb_decrypt(TMK, data[:16]) == bytes.fromhex("22" * 16)
    assert data[16:20].hex().upper() == "00962B60"
    assert independent.ecb_decrypt(TMK, data[20:28]) == bytes.fromhex("33" * 8)
    assert data[28:36] == bytes(8) and data[36:40].hex().upper() == "ADC67D84"
    assert independent.ecb_decrypt(TMK, data[40:56]) == bytes.fromhex("44" * 16)
    assert data[56:60].hex().upper() == "E2F24340"
    assert layout.parse(data, strict=True) == {KeyName.PIK: PIK, KeyName.MAK: MAK, KeyName.TDK: TDK}


def test_field62_lengths_and_key_lengths_per_mode() -> None:
    signin = CUP.kind("signin")
    assert {m: signin.layout(m).length for m in signin.network_codes} == {"001": 24, "003": 40, "004": 60}
    assert signin.layout("001").key_length(KeyName.PIK) == 8
    assert signin.layout("003").key_length(KeyName.PIK) == 16
    assert signin.layout("004").keys == (KeyName.PIK, KeyName.MAK, KeyName.TDK)
    single = (independent.ecb_encrypt(TMK, bytes.fromhex("22" * 8)), bytes.fromhex("00962B60"))
    data = signin.layout("001").build({KeyName.PIK: single, KeyName.MAK: MAK})
    assert data == single[0] + single[1] + MAK[0] + MAK[1]


def test_field62_parse_errors_name_lengths_and_places_never_bytes() -> None:
    layout = CUP.kind("signin").layout("003")
    with pytest.raises(KeyLayoutError, match="field 62 is 24 bytes, sign-in 003 needs 40"):
        layout.parse(bytes(24))
    filled = bytes(28) + b"\x01" + bytes(11)
    assert set(layout.parse(filled)) == {KeyName.PIK, KeyName.MAK}
    with pytest.raises(KeyLayoutError, match=r"bytes 28\.\.35 \(filler\) are not zero"):
        layout.parse(filled, strict=True)
    with pytest.raises(KeyLayoutError, match="needs a TDK"):
        CUP.kind("signin").layout("004").build({KeyName.PIK: PIK, KeyName.MAK: MAK})
    with pytest.raises(KeyLayoutError, match="no field 62 layout for key mode 002"):
        CUP.kind("signin").layout("002")


# -- the MAC input ------------------------------------------------------------------------

# The published sign-in body (MTI .. field 63). With field 64 present the bitmap's last byte
# goes from 12 to 13, and the MAC covers every byte up to field 64: the body with that bitmap.
SIGNIN_HEX = "08000020000000C00012000105303030303037363438343831303030353831323630303200110000000100300003303031"


def test_mac_input_is_every_byte_from_the_mti_to_field_64() -> None:
    message = CODEC.message("0800", {**BASE, 11: "000105", 60: "00000001003", 63: "001", 64: "ABCDEF0123456789"})
    expected = bytes.fromhex(SIGNIN_HEX.replace("C00012", "C00013", 1))
    assert mac_input(CODEC, message) == expected
    assert mac_input(CODEC, message.replace(f64=None)) == expected  # built before the MAC is known


def test_mac_input_refuses_fields_after_64() -> None:
    iso = codec_for("iso87-binary")
    with pytest.raises(ValueError, match="no field may follow"):
        mac_input(iso, iso.message("0800", {11: "000001", 70: "301"}))


# -- finding and loading ------------------------------------------------------------------


def test_every_built_in_dialect_has_one_catalogue() -> None:
    assert "cup-pos.messages" not in loader.available()
    assert {d: catalogue_for(d).name for d in loader.available()} == {
        "cup-pos": "cup-pos", "iso87-ascii": "iso87", "iso87-ascii-rawbin": "iso87", "iso87-binary": "iso87"}
    with pytest.raises(CatalogueError, match="no message catalogue serves dialect 'x25'"):
        catalogue_for("x25")


GOOD: dict[str, Any] = {
    "dialects": ["cup-pos"],
    "network_code_field": "60.3",
    "type_code_field": "60.1",
    "batch_field": "60.2",
    "kinds": {"echo": {"mti": "0820", "network_code": "301"}},
}


ICC: dict[str, Any] = {
    "field": 55, "read_capability_field": "60.4", "condition_field": "60.5", "fallback_value": "2",
    "swiped_entry_mode": "02", "chip_service_codes": ["2", "6"], "lists": {"sale": {"tags": ["9F26", "95"]}},
}


def with_kind(**kind: Any) -> dict[str, Any]:
    return {**GOOD, "kinds": {"echo": {"mti": "0820", "network_code": "301"}, "extra": kind}}


@pytest.mark.parametrize(
    ("data", "where", "problem"),
    [
        ({**GOOD, "dialects": []}, "dialects", "non-empty list"),
        ({**GOOD, "dialects": ["x25"]}, "dialects", "'x25'"),
        ({**GOOD, "network_code_field": "60.9"}, "network_code_field", "60.9 is not defined in dialect cup-pos"),
        ({**GOOD, "colour": "red"}, "catalogue", "unknown keys ['colour']"),
        ({**GOOD, "kinds": {}}, "kinds", "at least one kind"),
        (with_kind(mti="800"), "kinds.extra.mti", "four digits"),
        (with_kind(mti="0800", network_code="36"), "kinds.extra.network_code", "3 digits"),
        (with_kind(mti="0800", needs="everyone"), "kinds.extra.needs", "'everyone' is not one of"),
        (with_kind(mti="0800", echo=[11, 99]), "kinds.extra.echo", "99 is not a field"),
        (with_kind(mti="0800", maced="yes"), "kinds.extra.maced", "true or false"),
        (with_kind(mti="0800", shape="round"), "kinds.extra", "unknown keys ['shape']"),
        (with_kind(mti="0820", network_code="301"), "kinds.extra", "routes exactly like kinds.echo"),
        (with_kind(mti="0820", network_code="302", response_mti="0840"), "kinds.extra.response_mti",
         "0820 is answered 0830 by kinds.echo"),
        (with_kind(mti="0800", network_code="001", field62={"003": ["PIK 8"]}), "kinds.extra.field62.003",
         "one of the kind's network codes"),
        (with_kind(mti="0800", network_code="001", field62={"001": ["PIK 8", "MAK 8", "MAK check 4"]}),
         "kinds.extra.field62.001", "PIK needs its key and then its check value"),
        (with_kind(mti="0800", network_code="001", field62={"001": ["PIK eight"]}), "kinds.extra.field62.001[0]",
         "must end with a length"),
        (with_kind(mti="0800", network_code="001", field62={"001": ["KEK 16"]}), "kinds.extra.field62.001[0]",
         "is not 'KEY n'"),
        (with_kind(mti="0200", entry_mode="5"), "kinds.extra.entry_mode", "2 digits"),
        (with_kind(mti="0200", icc="sale"), "kinds.extra.icc", "no [icc] table"),
        (with_kind(mti="0200", arqc=True), "kinds.extra.arqc", "name the kind's icc list"),
        ({**GOOD, "icc": {**ICC, "lists": {"sale": {"tags": ["9F2"]}}}}, "icc.lists.sale.tags", "'9F2'"),
        ({**GOOD, "icc": {**ICC, "lists": {"sale": {"tags": ["95"], "optional": ["9A"]}}}}, "icc.lists.sale.optional",
         "['9A'] are not in the list's tags"),
        ({**GOOD, "icc": {**ICC, "condition_field": "60.9"}}, "icc.condition_field", "60.9 is not a subfield"),
        ({**GOOD, "icc": ICC, "kinds": {"a": {"mti": "0200", "icc": "none"}}}, "kinds.a.icc",
         "'none' is not one of [icc.lists] ['sale']"),
    ],
)
def test_loader_errors_name_file_entry_and_key(data: dict[str, Any], where: str, problem: str) -> None:
    with pytest.raises(CatalogueError) as info:
        catalogue_loader.build(data, source="test.messages.toml")
    assert info.value.source == "test.messages.toml"
    assert info.value.where == where
    assert problem in info.value.problem


def test_a_good_minimal_catalogue_builds() -> None:
    built = catalogue_loader.build(GOOD, name="mini")
    assert built.kind("echo").response_mti == "0830" and built.kind("echo").needs is Needs.NOTHING


def test_the_message_table_in_docs_cup_pos_md_is_the_generated_one() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "cup-pos.md").read_text(encoding="utf-8")
    start = text.index("<!-- generated: switchsim specs show cup-pos --messages -->\n```\n")
    body = text[start:].split("\n", 2)[2]
    copy = body[: body.index("```\n<!-- end generated -->")]
    assert copy == render_messages(CUP), "docs/cup-pos.md: paste `switchsim specs show cup-pos --messages` again"
