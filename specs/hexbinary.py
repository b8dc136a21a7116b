"""Binary (b) fields written as hex text, the convention of ASCII ISO 8583 dialects.

Wireshark's ISO 8583 dissector (`binencode:ascii`), py8583 and jPOS's ISO87APackager write the
b fields of ISO 8583:1987 (52, 64, 96, 128, all fixed) as two hex characters a byte: a b64 field
is 16 characters on the wire. The 1987 standard has no variable-length b field; for one a
dialect defines (field 55 as ICC data, LLLVAR as in ISO 8583:1993) the tools differ: Wireshark
reads the prefix as the field's length in bytes, the standard's length of a b field, then twice
as many characters; py8583 writes the number of characters. switchsim follows the standard's
length: the prefix counts bytes.

pyiso8583 counts the prefix of a text field in characters, and decodes and encodes the prefix
with a named Python codec. The `switchsim_hexlen2` / `switchsim_hexlen3` codecs registered here
translate between the two: the character count pyiso8583 holds (always even: two per byte) and
the byte count on the wire. They accept ASCII digits only, of exactly the prefix's width.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

_PREFIX = "switchsim_hexlen"
WIDTHS = (2, 3)  # LLVAR, LLLVAR


def length_codec(width: int) -> str:
    """The codec name pyiso8583 takes as `len_enc` for a hex-text b field with this prefix width."""
    if width not in WIDTHS:
        raise ValueError(f"no hex-text length prefix of width {width}")
    return f"{_PREFIX}{width}"


def _codec(width: int) -> codecs.CodecInfo:
    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        characters = int(text)  # pyiso8583 formats the count itself: digits only
        if characters % 2:
            raise ValueError("hex text of whole bytes has an even number of characters")
        count = str(characters // 2)
        if len(count) > width:
            raise ValueError(f"{count} bytes do not fit a {width}-digit length")
        return count.zfill(width).encode("ascii"), len(text)

    def decode(raw: ReadableBuffer, errors: str = "strict") -> tuple[str, int]:
        digits = bytes(raw)
        if len(digits) != width or not digits.isdigit():
            raise ValueError(f"length prefix is not {width} ASCII digits")
        return str(int(digits) * 2), len(digits)

    return codecs.CodecInfo(encode, decode, name=length_codec(width))


_CODECS = {length_codec(w): _codec(w) for w in WIDTHS}


def _search(name: str) -> codecs.CodecInfo | None:
    return _CODECS.get(name.replace("-", "_").lower())


codecs.register(_search)
