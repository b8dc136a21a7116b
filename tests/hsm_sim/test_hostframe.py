"""Message header split/echo and numbering, without sockets. Expected bytes are hand-worked."""

import pytest

from hsm_sim.errors import ErrorCode, HsmError
from hsm_sim.hostframe import (
    build_response,
    check_header_length,
    header_for,
    header_space,
    host_frame_format,
    split_header,
)
from specs.framing import Frame, FrameDecoder, encode_frame


def test_split_header_takes_the_configured_length() -> None:
    assert split_header(b"0001NC", 4) == (b"0001", b"NC")
    assert split_header(b"AB12CDNC", 6) == (b"AB12CD", b"NC")


def test_split_header_of_zero_length_is_the_whole_message() -> None:
    assert split_header(b"NC", 0) == (b"", b"NC")


def test_split_header_body_equal_to_header_leaves_empty_message() -> None:
    assert split_header(b"0001", 4) == (b"0001", b"")


def test_split_header_short_body_is_error_51() -> None:
    with pytest.raises(HsmError) as info:
        split_header(b"00", 4)
    assert info.value.code == ErrorCode.MESSAGE_HEADER
    assert info.value.code.value == "51"
    assert "2 bytes" in info.value.reason and "4-character" in info.value.reason


def test_build_response_echoes_header_in_front() -> None:
    assert build_response(b"HDR9", b"ND00") == b"HDR9ND00"
    assert build_response(b"", b"ND00") == b"ND00"


def test_header_for_counts_in_base_36() -> None:
    assert header_for(0, 4) == b"0000"
    assert header_for(35, 4) == b"000Z"
    assert header_for(36, 4) == b"0010"
    assert header_for(36 * 36 + 11, 4) == b"010B"
    assert header_for(36**4, 4) == b"0000"  # wraps
    assert header_for(37, 2) == b"11"


def test_header_space_is_36_to_the_length() -> None:
    assert header_space(1) == 36
    assert header_space(4) == 1_679_616


def test_header_for_zero_length_is_refused() -> None:
    with pytest.raises(ValueError):
        header_for(1, 0)


def test_check_header_length_bounds() -> None:
    assert check_header_length(0) == 0
    assert check_header_length(255) == 255
    with pytest.raises(ValueError, match=r"0\.\.255"):
        check_header_length(-1)
    with pytest.raises(ValueError, match=r"0\.\.255"):
        check_header_length(256)


def test_host_frame_format_is_two_byte_binary_length() -> None:
    fmt = host_frame_format()
    assert encode_frame(fmt, b"0000NC") == b"\x00\x060000NC"
    decoder = FrameDecoder(fmt)
    # Two pipelined frames arriving split at an awkward point.
    decoder.feed(b"\x00\x060000NC\x00")
    decoder.feed(b"\x060001NC")
    assert list(decoder.events()) == [
        Frame(body=b"0000NC", offset=2),
        Frame(body=b"0001NC", offset=2),
    ]
