"""Masking a frame as it is on the wire: PAN digits beyond 6+4, tracks, 52, 62, sensitive 55 tags."""

from __future__ import annotations

from specs.codec import codec_for
from specs.framing import encode_frame
from specs.wiremask import masked_bytes, masked_hex, plan

PAN = "6222021234567890123"


def _frame(dialect: str, mti: str, fields: dict[int, str]) -> tuple[bytes, int]:
    codec = codec_for(dialect)
    body = codec.encode(codec.message(mti, fields), validate=False)
    return encode_frame(codec.dialect.framing, body), codec.dialect.framing.length.size


def test_an_ascii_pan_keeps_6_and_4_digits_in_the_hex_and_the_bytes() -> None:
    codec = codec_for("iso87-ascii")
    wire, start = _frame("iso87-ascii", "0100", {2: PAN, 3: "000000", 4: "000000000100", 11: "000001"})
    spans = plan(codec.decode(wire[start:]), wire, start)
    shown = masked_hex(wire, spans)
    assert "3139363232323032" in shown  # LL "19" then "622202", as ASCII
    assert "2A" not in shown and "*" * 18 in shown and shown.count("*") == 18  # 9 digits, 2 nibbles each
    assert "30313233" in shown  # "0123": the last four
    assert b"6222020000000000123" in masked_bytes(wire, spans)  # digits stay digits for a dissector


def test_bcd_pan_track_and_pin_block_in_cup_pos() -> None:
    codec = codec_for("cup-pos")
    fields = {2: PAN, 3: "000000", 11: "000001", 35: f"{PAN}D30122010000", 52: "0123456789ABCDEF"}
    fields |= {41: "00000764", 42: "848100058126002", 60: "22000001000"}
    body = codec.encode(codec.message("0200", fields), validate=False)
    message = codec.decode(body, validate=False)
    spans = plan(message, body, 0)
    shown = masked_hex(body, spans)
    assert "19622202" + "*" * 9 + "01230" in shown  # LL 19, BCD digits, one pad nibble
    assert "0123456789ABCDEF" not in shown and PAN[:12] not in shown.replace("19622202", "")
    raw = masked_bytes(body, spans)
    assert len(raw) == len(body) and b"\x01\x23\x45\x67" not in raw


def test_a_partial_decode_hides_the_rest_when_a_sensitive_field_may_follow() -> None:
    codec = codec_for("cup-pos")
    fields = {3: "000000", 11: "000001", 41: "00000764", 42: "848100058126002", 52: "0123456789ABCDEF"}
    body = codec.encode(codec.message("0200", fields), validate=False)[:-3]  # cut inside 52
    partial = codec.decode_partial(body)
    assert partial.error is not None and set(partial.message.fields) == {3, 11, 41, 42}
    shown = masked_hex(body, plan(partial.message, body, 0, partial.end))
    assert shown.endswith("*" * 10) and "3030303030373634" in shown  # 41 still shown
