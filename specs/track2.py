"""Track 2 data (field 35) as terminals send it: PAN, separator, expiry, service code, the rest.

ISO/IEC 7813 writes the separator as `=`; in BCD dialects it is the nibble D, and many terminals
send the letter `D` in ASCII dialects too, so both are accepted there (`specs.codec` lets both
through in ASCII, only `D` in BCD). Anything else is not track data: no separator, two of them,
an empty or over-long PAN, or anything but digits around the separator.
"""

from __future__ import annotations

from dataclasses import dataclass

from specs.masking import mask_pan

SEPARATORS = frozenset("=D")
_DIGITS = frozenset("0123456789")
MAX_PAN = 19


@dataclass(frozen=True, slots=True)
class Track2:
    pan: str
    expiry: str | None  # YYMM; None when the track ends before it
    service_code: str | None  # None when the track ends before it
    discretionary: str

    def __repr__(self) -> str:
        return f"Track2({mask_pan(self.pan)})"


def parse_track2(value: str) -> Track2 | None:
    """The parts of a track 2 value, or None when it is not track data."""
    equals = value.count("=")
    if equals + value.count("D") != 1:  # exactly one separator, of either kind
        return None
    cut = value.find("=") if equals else value.find("D")
    pan, tail = value[:cut], value[cut + 1 :]
    if not 1 <= len(pan) <= MAX_PAN or not _DIGITS.issuperset(pan) or not _DIGITS.issuperset(tail):
        return None
    expiry = tail[:4] if len(tail) >= 4 else None
    service_code = tail[4:7] if len(tail) >= 7 else None
    return Track2(pan, expiry, service_code, tail[7:])
