"""`switchsim decode/encode/specs` as a user runs them."""

from __future__ import annotations

import json

import pytest

from switchsim.cli import main

BODY = "08000020000000C00012000105303030303037363438343831303030353831323630303200110000000100300003303031"
# length 0x003C = 60 = 5 (TPDU) + 6 (header) + 49 (body)
FRAME = "003C" + "6000000138" + "613100311108" + BODY


def test_decode_json_prints_the_documented_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "--dialect", "cup-pos", "--json", FRAME]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj == {
        "mti": "0800",
        "tpdu": "6000000138",
        "header": "613100311108",
        "fields": {
            "11": "000105",
            "41": "00000764",
            "42": "848100058126002",
            "60": "00000001003",
            "63": "001",
        },
        "subfields": {"60.1": "00", "60.2": "000001", "60.3": "003"},
    }


def test_encode_is_inverse_of_decode(capsys: pytest.CaptureFixture[str]) -> None:
    main(["decode", "--json", FRAME])
    obj = capsys.readouterr().out
    assert main(["encode", "--dialect", "cup-pos", obj]) == 0
    assert capsys.readouterr().out.strip() == FRAME


def test_decode_body_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "--body", "--json", BODY]) == 0
    assert "tpdu" not in json.loads(capsys.readouterr().out)


def test_decode_dump_shows_offsets_and_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", FRAME]) == 0
    out = capsys.readouterr().out
    assert "    13  mti" in out
    assert "60.3" in out and "Network management information code" in out


def test_decode_masks_pan_unless_unmasked(capsys: pytest.CaptureFixture[str]) -> None:
    obj = {
        "mti": "0200",
        "fields": {
            "2": "6222021234567890123",
            "3": "000000",
            "11": "000001",
            "22": "051",
            "25": "00",
            "41": "00000764",
            "42": "848100058126002",
            "49": "156",
            "60": "22000001000",
        },
    }
    main(
        [
            "encode",
            "--dialect",
            "iso87-binary",
            json.dumps({"mti": "0800", "fields": {"11": "1", "70": "301"}}),
        ]
    )
    capsys.readouterr()
    obj["tpdu"], obj["header"] = "6000000138", "613100311108"
    assert main(["encode", json.dumps(obj)]) == 0
    frame = capsys.readouterr().out.strip()
    main(["decode", frame])
    masked = capsys.readouterr().out
    assert "622202*********0123" in masked and "6222021234567890123" not in masked
    main(["decode", "--unmasked", frame])
    assert "6222021234567890123" in capsys.readouterr().out


def test_malformed_input_exits_2_with_field_and_offset(capsys: pytest.CaptureFixture[str]) -> None:
    bad = FRAME[:-2]  # one byte short of what the length header promises
    assert main(["decode", bad]) == 2
    assert "incomplete frame" in capsys.readouterr().err
    bad_body = "0800" + "0020000000000000" + "00011A"
    assert main(["decode", "--body", bad_body]) == 2
    assert "field 11 at byte 10: value is not numeric" in capsys.readouterr().err


def test_specs_show_prints_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["specs", "show", "cup-pos"]) == 0
    assert "# cup-pos" in capsys.readouterr().out


def test_specs_list_names_both_iso87_ascii_variants(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["specs", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert set(rows) == {"cup-pos", "iso87-binary", "iso87-ascii", "iso87-ascii-rawbin"}
    assert "hex ASCII bitmap and b fields" in rows["iso87-ascii"]
    assert "raw binary b fields" in rows["iso87-ascii-rawbin"]
    assert main(["specs", "show", "iso87-ascii"]) == 0
    assert "b fields: hex text, two characters a byte (an LL/LLL length counts bytes)" in capsys.readouterr().out
    assert main(["specs", "show", "iso87-ascii-rawbin"]) == 0
    assert "b fields: raw bytes" in capsys.readouterr().out


def test_decode_iso87_ascii_shows_hex_text_pin_block_masked(capsys: pytest.CaptureFixture[str]) -> None:
    # 0200 with 3, 4, 11 and 52 (bits 3, 4: 0x30; 11: 0x20; 52: byte 7 0x10), written out by hand
    body = b"0200" + b"3020000000001000" + b"000000" + b"000000001000" + b"000001" + b"0123456789ABCDEF"
    assert main(["decode", "--dialect", "iso87-ascii", "--body", body.hex()]) == 0
    out = capsys.readouterr().out
    assert "0123456789ABCDEF" not in out and "*" * 16 in out
    assert main(["decode", "--dialect", "iso87-ascii", "--body", body.hex(), "--unmasked"]) == 0
    assert "0123456789ABCDEF" in capsys.readouterr().out


def _first_rows(text: str) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip():
            rows.setdefault(line.split()[0], line.split())
    return rows


def test_specs_show_messages_prints_the_catalogue_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["specs", "show", "cup-pos", "--messages"]) == 0
    rows = _first_rows(capsys.readouterr().out)
    # kind, MTI, answer, 3, 60.1, 60.3, 22, 55, MAC, needs: as docs/financial.md, docs/chip.md and the README say
    assert rows["signin"][:10] == ["signin", "0800", "0810", "-", "(00)", "001/003/004", "-", "-", "no", "nothing"]
    assert rows["purchase"][:10] == ["purchase", "0200", "0210", "000000", "22", "(000)", "-", "-", "yes",
                                     "signed_in"]
    assert rows["refund"][:10] == ["refund", "0220", "0230", "200000", "25", "(000)", "-", "-", "yes", "supervisor"]
    assert rows["chip_purchase"][:10] == ["chip_purchase", "0200", "0210", "000000", "22", "(000)", "05x",
                                          "sale", "+ARQC", "yes"]
    assert rows["reversal"][:5] == ["reversal", "0400", "0410", "orig.", "orig."]
    assert rows["003"][:3] == ["003", "40", "bytes:"]
    assert main(["specs", "show", "iso87-binary", "--messages"]) == 0
    rows = _first_rows(capsys.readouterr().out)
    assert rows["authorisation"][:7] == ["authorisation", "0100", "0110", "000000", "-", "no", "nothing"]
    assert rows["echo"][:4] == ["echo", "0800", "0810", "-"] and rows["echo"][4] == "301"

# The PBOC example B field 55 (emv.json tlv_examples[0]) plus, written by hand, a PAN (5A) and a
# track 2 equivalent (57) that a terminal should never send and a dump must never show.
FIELD55 = (
    "9F26085D016C91005E7CC29F2701809F101307000103A04002010A010000001000D1F611529F37041E78EEBC"
    "9F36020240950500800460009A031407019C01009F02060000000000015F2A02015682027D009F1A020156"
    "9F03060000000000009F330360E1C89F34030203009F3501229F1E0838333230494343008408A000000333"
    "0101019F090200209F410400000007"
)
PAN_AND_TRACK = "5A08622800010000101F" + "5710622800010000101FD30122011234567F"


def _chip_frame(capsys: pytest.CaptureFixture[str], field55: str) -> str:
    obj = {
        "mti": "0200",
        "tpdu": "6000000138",
        "header": "613100311108",
        "fields": {
            "3": "000000",
            "11": "000001",
            "22": "051",
            "23": "001",
            "25": "00",
            "41": "00000764",
            "42": "848100058126002",
            "49": "156",
            "55": field55,
            "60": "22000001000",
        },
    }
    assert main(["encode", json.dumps(obj)]) == 0
    return capsys.readouterr().out.strip()


def test_decode_lists_field_55_tags_by_name_masked(capsys: pytest.CaptureFixture[str]) -> None:
    frame = _chip_frame(capsys, FIELD55 + PAN_AND_TRACK)
    assert main(["decode", frame]) == 0
    out = capsys.readouterr().out
    assert "55.9F26 Application Cryptogram (ARQC/TC/AAC)" in out and "5D016C91005E7CC2" in out
    assert "55.9F36 Application Transaction Counter" in out
    assert "55.5A   Application PAN" in out and "622800*****0101F" in out
    assert "55.57   Track 2 Equivalent Data" in out
    assert "6228000100001" not in out and "D301220" not in out
    assert main(["decode", "--unmasked", frame]) == 0
    out = capsys.readouterr().out
    assert "622800010000101F" in out and "622800010000101FD30122011234567F" in out


def test_decode_json_carries_the_data_objects(capsys: pytest.CaptureFixture[str]) -> None:
    frame = _chip_frame(capsys, FIELD55 + PAN_AND_TRACK)
    assert main(["decode", "--json", frame]) == 0
    obj = json.loads(capsys.readouterr().out)
    objects = obj["tlv"]["55"]
    assert [o["tag"] for o in objects][:3] == ["9F26", "9F27", "9F10"]
    assert objects[-1] == {"tag": "57", "name": "Track 2 Equivalent Data", "value": "*" * 32}
    assert "D3012201" not in json.dumps(obj)


def test_decode_of_malformed_field_55_says_where(capsys: pytest.CaptureFixture[str]) -> None:
    frame = _chip_frame(capsys, "9F2608AABB")
    assert main(["decode", frame]) == 0
    out = capsys.readouterr().out
    assert "BER-TLV error" in out and "field 55 tag 9F26 at byte 62: length 8 runs 6 bytes past the end" in out


# A cup-pos sign-in (the README's) whose field 60 says 9 digits instead of 11: 60.3 is cut short.
CUT_60 = (
    "003C600000013861310031110808000020000000C00012000105303030303037363438343831303030353831323630303200"
    "090000000100300003303031"
)


def test_decode_of_a_malformed_frame_dumps_every_field_before_the_failing_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["decode", CUT_60]) == 2
    captured = capsys.readouterr()
    parts = [line.split()[1] for line in captured.out.splitlines()[1:]]
    assert parts == ["len", "tpdu", "header", "mti", "bitmap", "11", "41", "42"]
    assert "848100058126002" in captured.out
    assert captured.err.startswith("switchsim decode: error: field 63 at byte 56: ")


def test_decode_of_an_incomplete_frame_says_what_it_has_and_what_is_promised(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["decode", "003C6000000138613100311108080000200000"]) == 2
    assert capsys.readouterr().err == (
        "switchsim decode: error: at byte 19: incomplete frame: 19 bytes, the length header promises 60 after "
        "its 2 (62 in all)\n"
    )
