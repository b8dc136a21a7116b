"""The payShield message header around a host command (sans-I/O).

On the wire a host command is ``length (2 bytes binary) + message header + command``. The length
prefix belongs to ``specs.framing``; this module only deals with the header: the host picks any
``header_length`` characters, the HSM echoes them unchanged in front of its answer, and clients
use them to tell answers apart (UDP) or to check that answers arrive in order (TCP).
"""

from __future__ import annotations

from hsm_sim.errors import ErrorCode, HsmError
from specs.framing import DEFAULT_MAX_FRAME, FrameFormat, LengthHeader

#: payShield's factory default message header length.
DEFAULT_HEADER_LENGTH = 4
MAX_HEADER_LENGTH = 255

# A header is made of these, so a counter in base 36 fits more ids in few characters.
_ID_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def host_frame_format(max_frame: int = DEFAULT_MAX_FRAME) -> FrameFormat:
    """The payShield TCP framing: a 2-byte binary length and nothing else around the body."""
    return FrameFormat(length=LengthHeader.BINARY2, max_frame=max_frame)


def check_header_length(header_length: int) -> int:
    """``header_length`` if it is usable, else ValueError naming the allowed range."""
    if not 0 <= header_length <= MAX_HEADER_LENGTH:
        raise ValueError(
            f"message header length must be 0..{MAX_HEADER_LENGTH}, got {header_length}"
        )
    return header_length


def split_header(body: bytes, header_length: int) -> tuple[bytes, bytes]:
    """``(header, message)`` of a frame body; error 51 when the body cannot hold the header."""
    if len(body) < header_length:
        raise HsmError(
            ErrorCode.MESSAGE_HEADER,
            f"frame of {len(body)} bytes is shorter than the {header_length}-character "
            "message header",
        )
    return body[:header_length], body[header_length:]


def build_response(header: bytes, answer: bytes) -> bytes:
    """The body of a reply frame: the request's header echoed, then the answer."""
    return header + answer


def header_for(counter: int, header_length: int) -> bytes:
    """A ``header_length``-character header holding ``counter`` in base 36 (wrapping), so a
    client can number its requests in the header the HSM echoes back."""
    if header_length <= 0:
        raise ValueError("a numbered header needs at least one character")
    out = bytearray(header_length)
    for i in range(header_length - 1, -1, -1):
        counter, digit = divmod(counter, len(_ID_ALPHABET))
        out[i] = _ID_ALPHABET[digit]
    return bytes(out)


def header_space(header_length: int) -> int:
    """How many distinct numbered headers ``header_for`` can make at this length."""
    return int(len(_ID_ALPHABET) ** header_length)
