"""b fields as hex text (iso87-ascii) and as raw bytes (iso87-ascii-rawbin): frames written out
byte by byte here, both round trips, the typed errors, and Wireshark's reading where installed."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from specs.codec import codec_for
from specs.errors import CodecError
from specs.framing import encode_frame

HEX, RAW = codec_for("iso87-ascii"), codec_for("iso87-ascii-rawbin")

PAN = "6222021234567890123"
FIELDS = {2: PAN, 3: "000000", 4: "000000001000", 11: "000001", 52: "0123456789ABCDEF", 64: "1122334455667788"}
# bits 2, 3, 4 (0x70); 11 (0x20); 52 (byte 7: 0x10); 64 (byte 8: 0x01)
BITMAP = b"7020000000001001"
HEAD = b"0200" + BITMAP + b"19" + PAN.encode() + b"000000" + b"000000001000" + b"000001"
HEX_BODY = HEAD + b"0123456789ABCDEF" + b"1122334455667788"
RAW_BODY = HEAD + b"\x01\x23\x45\x67\x89\xab\xcd\xef" + b"\x11\x22\x33\x44\x55\x66\x77\x88"

# 0200 with 3, 4, 11 and field 55 (ICC data, b LLLVAR): bits 3, 4 (0x30); 11 (0x20); 55 (byte 7: 0x02)
ICC_HEAD = b"0200" + b"3020000000000200" + b"000000" + b"000000001000" + b"000001"
ICC_FIELDS = {3: "000000", 4: "000000001000", 11: "000001", 55: "9F2608AABB"}


def test_iso87_ascii_writes_b_fields_as_hex_text() -> None:
    assert HEX.encode(HEX.message("0200", FIELDS)) == HEX_BODY
    assert dict(HEX.decode(HEX_BODY).fields) == FIELDS


def test_iso87_ascii_rawbin_writes_b_fields_as_raw_bytes() -> None:
    assert RAW.encode(RAW.message("0200", FIELDS)) == RAW_BODY
    assert dict(RAW.decode(RAW_BODY).fields) == FIELDS


def test_each_dialect_refuses_the_others_b_fields() -> None:
    with pytest.raises(CodecError):
        HEX.decode(RAW_BODY)
    with pytest.raises(CodecError):
        RAW.decode(HEX_BODY)


def test_hex_text_is_taken_in_lower_case_and_held_in_upper() -> None:
    lower = HEAD + b"0123456789abcdef" + b"1122334455667788"
    assert HEX.decode(lower)[52] == "0123456789ABCDEF"


def test_variable_b_field_length_counts_bytes_not_characters() -> None:
    body = ICC_HEAD + b"005" + b"9F2608AABB"  # 5 bytes, 10 hex characters
    assert HEX.encode(HEX.message("0200", ICC_FIELDS)) == body
    assert dict(HEX.decode(body).fields) == ICC_FIELDS
    raw = ICC_HEAD + b"005" + b"\x9f\x26\x08\xaa\xbb"
    assert RAW.encode(RAW.message("0200", ICC_FIELDS)) == raw
    assert HEX.decode(ICC_HEAD + b"000").fields[55] == ""


@pytest.mark.parametrize(
    ("tail", "offset", "reason"),
    [
        (b"005" + b"9F2608AA", 47, "Field data is 8 hex characters, expecting 10"),
        (b"0X5" + b"9F2608AABB", 44, "Failed to decode field length"),
        (b"999" + b"9F2608AABB", 44, "Field data is 1998 hex characters, larger than maximum 510"),
        (b"002" + b"9F2G", 44, "value is not uppercase hexadecimal"),
    ],
)
def test_malformed_hex_b_field_names_field_offset_and_reason(tail: bytes, offset: int, reason: str) -> None:
    with pytest.raises(CodecError) as info:
        HEX.decode(ICC_HEAD + tail)
    assert (info.value.field, info.value.offset, info.value.response_code) == ("55", offset, "30")
    assert reason in info.value.reason


def test_odd_number_of_hex_digits_is_refused_before_the_wire() -> None:
    for codec in (HEX, RAW):
        with pytest.raises(CodecError, match="even number") as info:
            codec.message("0200", {**ICC_FIELDS, 55: "9F2"})
        assert info.value.field == "55"


def test_round_trip_with_secondary_bitmap_in_both_dialects() -> None:
    fields = {**FIELDS, 55: "DF01" * 40, 70: "301", 96: "00112233AABBCCDD", 128: "A1B2C3D4E5F60718"}
    for codec in (HEX, RAW):
        body = codec.encode(codec.message("0200", fields))
        assert dict(codec.decode(body).fields) == fields
    hex_body = HEX.encode(HEX.message("0200", fields))
    assert hex_body.endswith(b"301" + b"00112233AABBCCDD" + b"A1B2C3D4E5F60718")
    assert b"080" + b"DF01" * 40 in hex_body  # 80 bytes, 160 characters


def test_hex_length_codec_translates_characters_and_bytes() -> None:
    assert "510".encode("switchsim_hexlen3") == b"255"
    assert "010".encode("switchsim_hexlen2") == b"05"
    assert b"255".decode("switchsim_hexlen3") == "510"
    for bad in (b"25", b"2 5", b"-12"):
        with pytest.raises(ValueError):
            bad.decode("switchsim_hexlen3")
    with pytest.raises(ValueError):
        "011".encode("switchsim_hexlen3")


# -- Wireshark's ISO 8583 dissector, where tshark is installed ---------------------------------


def _pcap(payloads: list[bytes], port: int) -> bytes:
    """A libpcap file (link type 101, raw IPv4) with one TCP segment per payload, written here."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
    seq = 1
    for i, payload in enumerate(payloads):
        tcp = struct.pack("!HHIIBBHHH", 40000, port, seq, 1, 5 << 4, 0x18, 65535, 0, 0)
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), i, 0, 64, 6, 0, b"\x7f\0\0\1", b"\x7f\0\0\1"
        )
        packet = ip + tcp + payload
        out += struct.pack("<IIII", 1, i, len(packet), len(packet)) + packet
        seq += len(payload)
    return out


def _tshark(tmp_path: Path, wires: list[bytes], fields: list[str]) -> list[list[str]]:
    path = tmp_path / "frames.pcap"
    path.write_bytes(_pcap(wires, 5800))
    command = ["tshark", "-r", str(path), "-d", "tcp.port==5800,iso8583"]
    for pref in ("len_endian:bigendian", "charset:ascii", "binencode:ascii"):
        command += ["-o", f"iso8583.{pref}"]
    command += ["-T", "fields", "-E", "separator=|"]
    for name in fields:
        command += ["-e", name]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return [line.split("|") for line in done.stdout.splitlines()]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_wireshark_reads_iso87_ascii_b_fields_as_hex_text(tmp_path: Path) -> None:
    framing = HEX.dialect.framing
    purchase = HEX.message("0200", {**FIELDS, 35: PAN + "D30122011234"})
    echo = HEX.message("0800", {11: "000002", 70: "301", 128: "A1B2C3D4E5F60718"})
    # Wireshark reads MTI 1xxx with its ISO 8583:1993 table, where 55 is b...255 LLLVAR.
    icc = HEX.message("1200", {3: "000000", 11: "000003", 55: "9F2608AABBCCDDEEFF00"})
    wires = [encode_frame(framing, HEX.encode(m)) for m in (purchase, echo, icc)]
    names = ["mti", "bit2", "bit35", "bit52", "bit64", "bit70", "bit128", "bit55"]
    rows = _tshark(tmp_path, wires, [f"iso8583.{n}" for n in names] + ["_ws.expert"])
    assert rows == [
        ["0200", PAN, PAN + "D30122011234", "0123456789ABCDEF", "1122334455667788", "", "", "", ""],
        ["0800", "", "", "", "", "301", "A1B2C3D4E5F60718", "", ""],
        ["1200", "", "", "", "", "", "", "9F2608AABBCCDDEEFF00", ""],
    ]
