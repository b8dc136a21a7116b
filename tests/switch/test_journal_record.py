"""The masked decode a journal entry keeps (switch/journalwire.py, `record_json`): the text
`json.dumps` writes for the object `switchsim trace` reads back, built without the general
encoder. Expected values are written out by hand and checked against the standard library."""

from __future__ import annotations

import json

from specs.codec import codec_for
from specs.framing import CupHeader, Frame, Tpdu
from switch.journalwire import record_json

CUP = codec_for("cup-pos")


def test_a_request_keeps_tpdu_header_and_masked_fields_as_json_dumps_writes_them() -> None:
    message = CUP.message(
        "0200",
        {
            2: "6222021234567890123",
            11: "000123",
            35: "6222021234567890123D30121010000",
            41: "00000764",
            42: "848100058126002",
            52: "0123456789ABCDEF",
        },
    )
    frame = Frame(b"", Tpdu.from_hex("6000030000"), CupHeader.from_hex("603100000000"))
    text = record_json(CUP, message, frame)
    expected = {
        "mti": "0200",
        "tpdu": "6000030000",
        "header": "603100000000",
        "fields": {
            "2": "622202*********0123",  # 6 + 4 digits shown
            "11": "000123",
            "35": "*" * 31,
            "41": "00000764",
            "42": "848100058126002",
            "52": "*" * 16,
        },
    }
    assert json.loads(text) == expected
    assert text == json.dumps(expected)  # byte for byte what the journal wrote before
    assert "1234567890" not in text


def test_an_answer_has_no_tpdu_and_quotes_what_json_must_escape() -> None:
    iso = codec_for("iso87-ascii")
    message = iso.message("0810", {11: "000001", 39: "00", 44: 'a"b\\c', 70: "301"})
    text = record_json(iso, message, None)
    expected = {"mti": "0810", "fields": {"11": "000001", "39": "00", "44": 'a"b\\c', "70": "301"}}
    assert text == json.dumps(expected)
