"""Typed dialect data: what every field of a dialect looks like on the wire.

These values are built by `specs.loader` from the data files in `specs/dialects/` and are
read-only from then on; the codec, the reference generator and the masking all read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from specs.framing import FrameFormat
from specs.response import ResponseCode

APPROVED = ResponseCode.APPROVED.value


class FieldType(StrEnum):
    N = "n"  # numeric digits
    Z = "z"  # track data: digits and a separator
    A = "a"  # letters
    AN = "an"  # letters and digits (and space as pad)
    ANS = "ans"  # printable ASCII
    B = "b"  # raw bytes, shown as hex

    @property
    def counts_digits(self) -> bool:
        """Lengths of n and z fields count digits; every other type counts bytes."""
        return self in (FieldType.N, FieldType.Z)


class LengthKind(StrEnum):
    FIXED = "fixed"
    LLVAR = "llvar"
    LLLVAR = "lllvar"


class Align(StrEnum):
    """Where the digits sit when a BCD field has an odd number of them."""

    RIGHT = "right"  # pad nibble 0 on the left (fixed numeric default)
    LEFT = "left"  # pad nibble 0 on the right (variable numeric default, UnionPay field 22)


class Sensitivity(StrEnum):
    """Which masking a field's value needs in every repr, log and dump."""

    NONE = "none"
    PAN = "pan"  # first 6 and last 4 digits shown
    TRACK = "track"  # nothing shown
    PIN = "pin"  # nothing shown
    KEY = "key"  # nothing shown
    TLV = "tlv"  # BER-TLV (field 55): the values of sensitive tags hidden, the rest shown


class Encoding(StrEnum):
    BCD = "bcd"
    ASCII = "ascii"
    BINARY = "binary"  # bitmap or b fields as raw bytes
    HEX = "hex"  # bitmap or b fields as hex ASCII characters, two a byte


@dataclass(frozen=True, slots=True)
class SubfieldSpec:
    id: str  # "60.3"
    name: str
    length: int  # digits or characters, always fixed
    optional: bool = False


@dataclass(frozen=True, slots=True)
class FieldSpec:
    number: int
    name: str
    type: FieldType
    length_kind: LengthKind
    max_length: int  # digits for n/z, bytes otherwise; the exact length when fixed
    align: Align
    sensitivity: Sensitivity = Sensitivity.NONE
    subfields: tuple[SubfieldSpec, ...] = ()
    note: str = ""

    @property
    def is_fixed(self) -> bool:
        return self.length_kind is LengthKind.FIXED

    def format_label(self) -> str:
        """The usual shorthand: n6, ans..015, b64 (b fields in bits when fixed)."""
        dots = {LengthKind.FIXED: "", LengthKind.LLVAR: "..", LengthKind.LLLVAR: "..."}
        size = self.max_length * 8 if self.type is FieldType.B and self.is_fixed else (self.max_length)
        width = 3 if self.length_kind is LengthKind.LLLVAR else 2 if not self.is_fixed else 0
        return f"{self.type.value}{dots[self.length_kind]}{size:0{width}d}"


@dataclass(frozen=True, slots=True)
class MessageRule:
    """Which fields an MTI must and must not carry.

    A request's ``mandatory`` holds for every message of its MTI. A response (an MTI whose
    third digit is odd) says two sets: ``mandatory`` is what an approval (39 = 00) carries, and
    ``refusal`` what any other answer must carry. A refusal may answer a request that could not
    be read (a format error), so it cannot promise to echo what the request held: it promises
    39 and whatever the dialect file lists, and echoes what it could read on top of that.
    """

    mti: str
    name: str
    mandatory: frozenset[int] = frozenset()
    forbidden: frozenset[int] = frozenset()
    refusal: frozenset[int] | None = None  # None: not a response; `mandatory` always holds

    def required(self, response_code: str | None) -> frozenset[int]:
        """The fields a message of this MTI must carry, given its field 39 (None if absent)."""
        if self.refusal is None or response_code == APPROVED:
            return self.mandatory
        return self.refusal


@dataclass(frozen=True, slots=True)
class CodeTable:
    """A table of codes the dialect defines, e.g. the 60.3 network-management codes."""

    name: str
    field: str
    codes: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    description: str
    framing: FrameFormat
    mti_encoding: Encoding
    bitmap_encoding: Encoding
    numeric_encoding: Encoding  # n and z data: BCD nibbles or ASCII digits
    length_encoding: Encoding  # LL/LLL prefixes: BCD or ASCII
    fields: Mapping[int, FieldSpec]
    messages: Mapping[str, MessageRule] = field(default_factory=dict)
    code_tables: tuple[CodeTable, ...] = ()
    source: str = ""
    binary_encoding: Encoding = Encoding.BINARY  # b fields: raw bytes or hex text

    def field_spec(self, number: int) -> FieldSpec | None:
        return self.fields.get(number)

    @property
    def track_separator(self) -> str:
        """What parts the PAN from the rest in track data (z): the nibble D in BCD, "=" in ASCII."""
        return "D" if self.numeric_encoding is Encoding.BCD else "="

    def subfield_spec(self, subfield_id: str) -> tuple[FieldSpec, int] | None:
        """The parent field of '60.3' and the subfield's index, or None if unknown."""
        head, _, _ = subfield_id.partition(".")
        parent = self.fields.get(int(head)) if head.isdigit() else None
        if parent is None:
            return None
        for index, sub in enumerate(parent.subfields):
            if sub.id == subfield_id:
                return parent, index
        return None
