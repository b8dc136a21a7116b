"""Framing: hand-worked byte layouts, keep-alives, limits, and every split of a stream."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from specs.errors import FramingError
from specs.framing import (
    CupHeader,
    Frame,
    FrameDecoder,
    FrameFormat,
    KeepAlive,
    LengthHeader,
    Tpdu,
    decode_frame,
    encode_frame,
)

PLAIN = FrameFormat()
CUP = FrameFormat(tpdu=True, cup_header=True)


@pytest.mark.parametrize(
    ("length", "wire"),
    [
        (LengthHeader.BINARY2, b"\x00\x0c" + b"0800HELLO123"),
        (LengthHeader.BCD2, b"\x00\x12" + b"0800HELLO123"),
        (LengthHeader.ASCII4, b"0012" + b"0800HELLO123"),
    ],
)
def test_encode_frame_writes_each_length_header(length: LengthHeader, wire: bytes) -> None:
    assert encode_frame(FrameFormat(length=length), b"0800HELLO123") == wire
    assert decode_frame(FrameFormat(length=length), wire).body == b"0800HELLO123"


def test_encode_frame_puts_tpdu_and_header_before_body() -> None:
    tpdu = Tpdu.from_hex("6000000138")
    header = CupHeader.from_hex("613100311108")
    wire = encode_frame(CUP, b"\x08\x00", tpdu=tpdu, header=header)
    # 5 + 6 + 2 = 13 bytes after the length header
    assert wire.hex().upper() == "000D" + "6000000138" + "613100311108" + "0800"


def test_tpdu_reply_swaps_destination_and_source() -> None:
    assert Tpdu.from_hex("6000000138").reply().to_bytes().hex() == "6001380000"


def test_cup_header_processing_requirement_is_low_nibble_of_third_byte() -> None:
    header = CupHeader.from_hex("603113000000")
    assert header.terminal_status == 1
    assert header.processing_requirement == 3
    assert header.with_requirement(0).to_bytes().hex() == "603110000000"


def test_decoder_reports_zero_length_frame_as_keepalive() -> None:
    decoder = FrameDecoder(PLAIN)
    decoder.feed(b"\x00\x00\x00\x02AB")
    assert isinstance(decoder.next_event(), KeepAlive)
    event = decoder.next_event()
    assert isinstance(event, Frame) and event.body == b"AB"
    assert decoder.next_event() is None


def test_decoder_rejects_oversized_length_before_body_arrives() -> None:
    decoder = FrameDecoder(FrameFormat(max_frame=8192))
    decoder.feed(b"\x20\x01")  # 8193 declared, no body yet
    with pytest.raises(FramingError, match="8193 exceeds the maximum frame size 8192") as info:
        decoder.next_event()
    assert info.value.offset == 0
    assert info.value.response_code == "30"
    with pytest.raises(FramingError):
        decoder.feed(b"more")


def test_decoder_accepts_frame_of_exactly_maximum_size() -> None:
    decoder = FrameDecoder(FrameFormat(max_frame=16))
    decoder.feed(b"\x00\x10" + b"x" * 16)
    event = decoder.next_event()
    assert isinstance(event, Frame) and len(event.body) == 16


def test_decoder_rejects_bcd_length_with_hex_nibbles() -> None:
    decoder = FrameDecoder(FrameFormat(length=LengthHeader.BCD2))
    decoder.feed(b"\x00\x1a")
    with pytest.raises(FramingError, match="not bcd2"):
        decoder.next_event()


def test_decoder_reports_short_cup_frame_and_stays_in_sync() -> None:
    decoder = FrameDecoder(CUP)
    decoder.feed(
        b"\x00\x03\x60\x00\x00" + b"\x00\x0d" + bytes.fromhex("6000000138613100311108") + b"\x08\x00"
    )
    with pytest.raises(FramingError, match="shorter than its 11-byte") as info:
        decoder.next_event()
    assert info.value.offset == 5
    event = decoder.next_event()
    assert isinstance(event, Frame) and event.body == b"\x08\x00"
    assert event.tpdu == Tpdu.from_hex("6000000138")
    assert event.offset == 13


def test_decode_frame_rejects_trailing_bytes() -> None:
    with pytest.raises(FramingError, match="trailing") as info:
        decode_frame(PLAIN, b"\x00\x01A\x00")
    assert info.value.offset == 3


def test_none_length_treats_each_feed_as_one_frame() -> None:
    decoder = FrameDecoder(FrameFormat(length=LengthHeader.NONE, max_frame=16))
    decoder.feed(b"NC")
    event = decoder.next_event()
    assert isinstance(event, Frame) and event.body == b"NC"
    with pytest.raises(FramingError):
        decoder.feed(b"x" * 17)


bodies = st.lists(st.binary(min_size=0, max_size=40), min_size=1, max_size=8)


@given(bodies=bodies, data=st.data())
def test_decoder_gives_same_frames_for_every_split(bodies: list[bytes], data: st.DataObject) -> None:
    for fmt in (
        FrameFormat(length=h) for h in (LengthHeader.BINARY2, LengthHeader.BCD2, LengthHeader.ASCII4)
    ):
        stream = b"".join(encode_frame(fmt, b) for b in bodies)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
        decoder = FrameDecoder(fmt)
        got: list[bytes] = []
        prev = 0
        for cut in [*cuts, len(stream)]:
            decoder.feed(stream[prev:cut])
            prev = cut
            got.extend(e.body if isinstance(e, Frame) else b"" for e in decoder.events())
        assert got == bodies
        assert decoder.buffered == 0


@given(st.binary(max_size=64))
def test_decoder_on_garbage_only_raises_framing_error(blob: bytes) -> None:
    decoder = FrameDecoder(FrameFormat(tpdu=True, cup_header=True, max_frame=32))
    decoder.feed(blob)
    with contextlib.suppress(FramingError):
        list(decoder.events())
    assert decoder.buffered <= 2 + 32
