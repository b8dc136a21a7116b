"""Track 2: `=` or `D` as separator in ASCII dialects, anything else answered 30, always masked."""

from __future__ import annotations

import json

import pytest

from specs.codec import codec_for
from specs.dump import Decoded, annotate, render_dump, to_json
from specs.errors import CodecError
from specs.framing import Frame
from specs.track2 import Track2, parse_track2

PAN = "6222021234567890123"
TAIL = "30122011234"  # expiry 3012, service code 201, discretionary 1234


@pytest.mark.parametrize("separator", ["=", "D"])
def test_parse_track2_takes_either_separator(separator: str) -> None:
    assert parse_track2(PAN + separator + TAIL) == Track2(PAN, "3012", "201", "1234")


def test_parse_track2_short_tracks_leave_parts_out() -> None:
    assert parse_track2(PAN + "=") == Track2(PAN, None, None, "")
    assert parse_track2(PAN + "D3012") == Track2(PAN, "3012", None, "")
    assert parse_track2(PAN + "D3012201") == Track2(PAN, "3012", "201", "")


@pytest.mark.parametrize(
    "value",
    [PAN + TAIL, "=" + TAIL, PAN + "D3012=201", PAN + "==3012", "1" * 20 + "=" + TAIL, PAN + "^" + TAIL, PAN + "d"],
)
def test_parse_track2_refuses_what_is_not_track_data(value: str) -> None:
    assert parse_track2(value) is None


def test_track2_repr_shows_only_the_masked_pan() -> None:
    assert repr(parse_track2(PAN + "=" + TAIL)) == "Track2(622202*********0123)"


# 0200 with 3, 4, 11 and 35: bits 3, 4 (0x30); 11 (0x20); 35 (byte 5: 0x20)
BINARY_BITMAP = bytes.fromhex("3020000020000000")
ASCII_BITMAP = b"3020000020000000"
HEAD = b"000000" + b"000000001000" + b"000001"


def _body(dialect: str, track: bytes) -> bytes:
    bitmap = ASCII_BITMAP if dialect.startswith("iso87-ascii") else BINARY_BITMAP
    return b"0200" + bitmap + HEAD + f"{len(track):02d}".encode() + track


ASCII_DIALECTS = ["iso87-binary", "iso87-ascii", "iso87-ascii-rawbin"]


@pytest.mark.parametrize("dialect", ASCII_DIALECTS)
@pytest.mark.parametrize("separator", [b"=", b"D"])
def test_ascii_dialects_decode_track2_with_either_separator(dialect: str, separator: bytes) -> None:
    track = PAN.encode() + separator + TAIL.encode()
    message = codec_for(dialect).decode(_body(dialect, track))
    assert message[35] == track.decode()
    assert codec_for(dialect).encode(message) == _body(dialect, track)


@pytest.mark.parametrize("dialect", ASCII_DIALECTS)
@pytest.mark.parametrize("separator", [b"^", b"d", b"F", b" "])
def test_ascii_dialects_answer_30_for_other_separators(dialect: str, separator: bytes) -> None:
    with pytest.raises(CodecError) as info:
        codec_for(dialect).decode(_body(dialect, PAN.encode() + separator + TAIL.encode()))
    assert (info.value.field, info.value.response_code) == ("35", "30")
    assert info.value.offset == 4 + len(ASCII_BITMAP if dialect.startswith("iso87-ascii") else BINARY_BITMAP) + 24


@pytest.mark.parametrize("separator", ["=", "D"])
def test_track2_is_masked_in_repr_dump_and_json(separator: str) -> None:
    codec = codec_for("iso87-ascii")
    message = codec.decode(_body("iso87-ascii", (PAN + separator + TAIL).encode()))
    decoded = Decoded(Frame(body=_body("iso87-ascii", (PAN + separator + TAIL).encode())), message)
    shown = [repr(message), render_dump(annotate(codec, decoded)), json.dumps(to_json(decoded))]
    for text in shown:
        assert "1234567890" not in text and TAIL not in text and "3012" not in text
