"""BER-TLV, as EMV Book 3 annex B uses it: field 55 and the IC download records of field 62.

A data object is a tag (one byte; or more when the low five bits of the first are all set, each
following byte saying with its top bit whether another follows), a length (one byte below 0x80;
``81 xx`` or ``82 xx xx`` above) and the value. A tag whose first byte has bit 6 set (0x20) is
constructed: its value is itself a list of data objects (issuer scripts 71 and 72 in a 0210).

What this codec refuses, with a ``TlvError`` naming the tag, the byte offset and the reason (and
answer code 30, like every wire error): data that ends inside a tag, a length or a value; the
indefinite length 80 and lengths of more than two bytes (83 ...: no EMV object is that long); a
00 or FF byte where a tag starts (EMV allows them as padding between objects in card records,
never in an authorisation message); tags longer than three bytes; templates nested deeper than
eight levels. A tag may appear more than once (two 71 scripts); ``unique`` is for the lists where
it may not.

The tag names and which tags are sensitive (``TAGS``) live here, once; the masking itself is in
``specs.masking``. A ``Tlv``'s repr never shows the value of a sensitive tag.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType

from specs.dialect import Sensitivity
from specs.errors import CodecError

MAX_TAG_BYTES = 3
MAX_DEPTH = 8
MAX_VALUE = 0xFFFF  # what a two-byte length (82 xx xx) can say


class TlvError(CodecError):
    """A malformed BER-TLV: which tag (when one could be read), where, and why; answered with 30.

    ``field`` is the ISO field the TLV came from ("55"), or None when it is not known here.
    """

    def __init__(self, tag: str | None, offset: int, reason: str, field: str | None = None) -> None:
        self.tag = tag
        super().__init__(field, offset, reason)

    def describe(self) -> str:
        where = f"field {self.field} " if self.field is not None else ""
        what = f"tag {self.tag}" if self.tag is not None else "TLV"
        return f"{where}{what} at byte {self.offset}: {self.reason}"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.tag, self.offset, self.reason, self.field))


@lru_cache(maxsize=1024)
def tag_problem(tag: str) -> str | None:
    """Why ``tag`` (uppercase hex) is not a well-formed BER tag, or None when it is."""
    try:
        raw = bytes.fromhex(tag)
    except ValueError:
        return "a tag is hexadecimal"
    if tag != tag.upper() or not 1 <= len(raw) <= MAX_TAG_BYTES:
        return f"a tag is 1 to {MAX_TAG_BYTES} bytes of uppercase hex"
    if raw[0] in (0x00, 0xFF):
        return f"{raw[0]:02X} is padding, not a tag"
    more = raw[0] & 0x1F == 0x1F
    for i, byte in enumerate(raw[1:], start=1):
        if not more:
            return f"byte {i + 1} follows a tag that ended at byte {i}"
        more = bool(byte & 0x80)
    if more:
        return "the tag's last byte says another follows"
    return None


def is_constructed(tag: str) -> bool:
    """True when the tag's first byte marks a template (bit 6 of the first byte)."""
    return bool(int(tag[:2], 16) & 0x20)


@dataclass(frozen=True, slots=True, repr=False)
class Tlv:
    """One data object. ``value`` is the raw value (for a template: its encoded children).

    ``offset`` and ``value_offset`` say where the tag and the value were found by ``parse``
    (counting from the ``base_offset`` it was given); they take no part in equality.
    """

    tag: str
    value: bytes
    children: tuple[Tlv, ...] = ()
    offset: int = field(default=0, compare=False)
    value_offset: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        problem = tag_problem(self.tag)
        if problem is not None:
            raise TlvError(self.tag if problem != "a tag is hexadecimal" else None, self.offset, problem)
        if len(self.value) > MAX_VALUE:
            raise TlvError(self.tag, self.offset, f"value of {len(self.value)} bytes; at most {MAX_VALUE}")
        if self.children and not is_constructed(self.tag):
            raise TlvError(self.tag, self.offset, "a primitive tag cannot hold data objects")

    @classmethod
    def template(cls, tag: str, children: Iterable[Tlv]) -> Tlv:
        """A constructed object (71, 72, ...) holding ``children``."""
        kids = tuple(children)
        if not is_constructed(tag):
            raise TlvError(tag, 0, "a primitive tag cannot hold data objects")
        return cls(tag, build(kids), kids)

    @property
    def constructed(self) -> bool:
        return is_constructed(self.tag)

    @property
    def info(self) -> TagInfo | None:
        return TAGS.get(self.tag)

    @property
    def name(self) -> str:
        info = TAGS.get(self.tag)
        return info.name if info is not None else "unknown tag"

    def encode(self) -> bytes:
        return bytes.fromhex(self.tag) + encode_length(len(self.value)) + self.value

    def __repr__(self) -> str:
        if self.children:
            return f"Tlv({self.tag}, [{', '.join(repr(c) for c in self.children)}])"
        if sensitivity(self.tag) is not Sensitivity.NONE:
            return f"Tlv({self.tag}=<{len(self.value)} bytes, masked>)"
        return f"Tlv({self.tag}={self.value.hex().upper()})"

    __str__ = __repr__


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n <= 0xFF:
        return bytes([0x81, n])
    if n <= MAX_VALUE:
        return b"\x82" + n.to_bytes(2, "big")
    raise TlvError(None, 0, f"a value of {n} bytes needs more than a two-byte length")


def build(objects: Iterable[Tlv]) -> bytes:
    """The encoding of ``objects`` one after the other, in the order given."""
    return b"".join(obj.encode() for obj in objects)


def parse(data: bytes, *, base_offset: int = 0, field: str | None = None) -> tuple[Tlv, ...]:
    """Every data object in ``data``, templates parsed into their children.

    Offsets in the result and in errors count from ``base_offset`` (e.g. where the field's value
    starts in the message). Raises ``TlvError`` and nothing else.
    """
    return tuple(_parse(bytes(data), 0, len(data), base_offset, 0, field))


def _parse(data: bytes, pos: int, end: int, base: int, depth: int, field: str | None) -> list[Tlv]:
    out: list[Tlv] = []
    while pos < end:
        at = pos
        first = data[pos]
        if first in (0x00, 0xFF):
            raise TlvError(None, base + at, f"byte {first:02X} where a tag should start", field)
        pos += 1
        if first & 0x1F == 0x1F:
            while True:
                if pos >= end:
                    raise TlvError(None, base + at, "data ends inside a tag", field)
                more = data[pos] & 0x80
                pos += 1
                if pos - at > MAX_TAG_BYTES:
                    raise TlvError(None, base + at, f"tag longer than {MAX_TAG_BYTES} bytes", field)
                if not more:
                    break
        tag = data[at:pos].hex().upper()
        if pos >= end:
            raise TlvError(tag, base + at, "data ends before the length", field)
        length = data[pos]
        pos += 1
        if length & 0x80:
            size = length & 0x7F
            if size == 0:
                raise TlvError(tag, base + at, "indefinite length (80) is not allowed", field)
            if size > 2:
                raise TlvError(tag, base + at, f"length field of {size + 1} bytes; at most 3 (82 xx xx)", field)
            if pos + size > end:
                raise TlvError(tag, base + at, "data ends inside the length", field)
            length = int.from_bytes(data[pos : pos + size], "big")
            pos += size
        if pos + length > end:
            raise TlvError(tag, base + at, f"length {length} runs {pos + length - end} bytes past the end", field)
        value = data[pos : pos + length]
        children: tuple[Tlv, ...] = ()
        if first & 0x20:
            if depth >= MAX_DEPTH:
                raise TlvError(tag, base + at, f"templates nested deeper than {MAX_DEPTH} levels", field)
            children = tuple(_parse(data, pos, pos + length, base, depth + 1, field))
        out.append(Tlv(tag, value, children, base + at, base + pos))
        pos += length
    return out


def unique(objects: Sequence[Tlv], *, field: str | None = None) -> dict[str, Tlv]:
    """The objects by tag, for a list in which a tag may appear only once (a 0200's field 55)."""
    out: dict[str, Tlv] = {}
    for obj in objects:
        if obj.tag in out:
            raise TlvError(obj.tag, obj.offset, "appears twice", field)
        out[obj.tag] = obj
    return out


def require(objects: Mapping[str, Tlv], tags: Iterable[str], *, offset: int = 0, field: str | None = None) -> None:
    """Raise for the first of ``tags`` that ``objects`` lacks (``offset``: where the list starts)."""
    for tag in tags:
        if tag not in objects:
            raise TlvError(tag, offset, "mandatory but absent", field)


def check_lengths(objects: Iterable[Tlv], *, field: str | None = None) -> None:
    """Raise for the first object (templates included) whose length the tag table forbids."""
    for obj in objects:
        info = TAGS.get(obj.tag)
        n = len(obj.value)
        if info is not None and not info.min_length <= n <= info.max_length:
            size = str(info.min_length)
            if info.min_length != info.max_length:
                size += f"-{info.max_length}"
            raise TlvError(obj.tag, obj.offset, f"length {n}; {info.name} is {size} bytes", field)
        if obj.children:
            check_lengths(obj.children, field=field)


# --- the tag table --------------------------------------------------------------------------


class TagFormat(StrEnum):
    """How a value reads (EMV Book 3 data element formats)."""

    B = "b"  # binary, shown as hex
    N = "n"  # BCD digits, right-aligned, leading zeros
    CN = "cn"  # BCD digits, left-aligned, padded with F (the PAN in 5A)
    AN = "an"  # ASCII letters and digits
    ANS = "ans"  # printable ASCII


@dataclass(frozen=True, slots=True)
class TagInfo:
    tag: str
    name: str
    format: TagFormat
    min_length: int
    max_length: int
    sensitivity: Sensitivity = Sensitivity.NONE


_B, _N, _CN, _AN, _ANS = TagFormat.B, TagFormat.N, TagFormat.CN, TagFormat.AN, TagFormat.ANS
_PAN, _TRACK = Sensitivity.PAN, Sensitivity.TRACK

# Names, formats and lengths: ../shared/vectors/emv.json (field55.tags, aid_param_tags) and EMV
# Book 3 annex A for the card's own data elements. Sensitive: the PAN (5A, masked 6+4) and what
# rebuilds a magnetic stripe or names the holder (57, 56, 9F6B, 9F1F, 9F20, 5F20: hidden).
_TABLE: tuple[TagInfo, ...] = (
    # field 55 of a UnionPay IC request (emv.json field55.tags)
    TagInfo("9F26", "Application Cryptogram (ARQC/TC/AAC)", _B, 8, 8),
    TagInfo("9F27", "Cryptogram Information Data", _B, 1, 1),
    TagInfo("9F10", "Issuer Application Data", _B, 1, 32),
    TagInfo("9F37", "Unpredictable Number", _B, 4, 4),
    TagInfo("9F36", "Application Transaction Counter", _B, 2, 2),
    TagInfo("95", "Terminal Verification Results", _B, 5, 5),
    TagInfo("9A", "Transaction Date (YYMMDD)", _N, 3, 3),
    TagInfo("9C", "Transaction Type", _N, 1, 1),
    TagInfo("9F02", "Amount, Authorised", _N, 6, 6),
    TagInfo("5F2A", "Transaction Currency Code", _N, 2, 2),
    TagInfo("82", "Application Interchange Profile", _B, 2, 2),
    TagInfo("9F1A", "Terminal Country Code", _N, 2, 2),
    TagInfo("9F03", "Amount, Other", _N, 6, 6),
    TagInfo("9F33", "Terminal Capabilities", _B, 3, 3),
    TagInfo("9F34", "CVM Results", _B, 3, 3),
    TagInfo("9F35", "Terminal Type", _N, 1, 1),
    TagInfo("9F1E", "Interface Device Serial Number", _AN, 8, 8),
    TagInfo("84", "Dedicated File Name (AID)", _B, 5, 16),
    TagInfo("9F09", "Application Version Number (terminal)", _B, 2, 2),
    TagInfo("9F41", "Transaction Sequence Counter", _N, 2, 4),
    TagInfo("9F63", "Card product identification (UnionPay)", _B, 16, 16),
    TagInfo("9F74", "EC issuer authorisation code", _AN, 6, 6),
    TagInfo("DF31", "Issuer script results", _B, 0, 255),
    TagInfo("DF32", "Proprietary (terminal)", _B, 0, 255),
    TagInfo("DF33", "Proprietary (terminal)", _B, 0, 255),
    TagInfo("DF34", "Proprietary (terminal)", _B, 0, 255),
    # the issuer's answer
    TagInfo("91", "Issuer Authentication Data (ARPC || ARC)", _B, 8, 16),
    TagInfo("71", "Issuer Script Template 1", _B, 0, 255),
    TagInfo("72", "Issuer Script Template 2", _B, 0, 255),
    TagInfo("86", "Issuer Script Command", _B, 0, 261),
    TagInfo("9F18", "Issuer Script Identifier", _B, 4, 4),
    TagInfo("8A", "Authorisation Response Code", _AN, 2, 2),
    # card data a terminal should not send in field 55, masked wherever it appears
    TagInfo("5A", "Application PAN", _CN, 1, 10, _PAN),
    TagInfo("57", "Track 2 Equivalent Data", _B, 1, 19, _TRACK),
    TagInfo("56", "Track 1 Data", _ANS, 1, 76, _TRACK),
    TagInfo("9F6B", "Track 2 Data", _B, 1, 19, _TRACK),
    TagInfo("9F1F", "Track 1 Discretionary Data", _ANS, 0, 255, _TRACK),
    TagInfo("9F20", "Track 2 Discretionary Data", _CN, 0, 255, _TRACK),
    TagInfo("5F20", "Cardholder Name", _ANS, 2, 26, _TRACK),
    TagInfo("5F24", "Application Expiration Date (YYMMDD)", _N, 3, 3),
    TagInfo("5F34", "Application PAN Sequence Number", _N, 1, 1),
    # IC parameter (AID) and CA public key records (emv.json aid_param_tags)
    TagInfo("9F06", "AID / RID", _B, 5, 16),
    TagInfo("9F08", "Application Version Number (card)", _B, 2, 2),
    TagInfo("9F22", "CA Public Key Index", _B, 1, 1),
    TagInfo("9F1B", "Terminal Floor Limit", _B, 4, 4),
    TagInfo("9F7B", "EC Terminal Transaction Limit", _N, 6, 6),
    TagInfo("DF01", "Application Selection Indicator", _B, 1, 1),
    TagInfo("DF02", "CA Public Key Modulus", _B, 1, 248),
    TagInfo("DF03", "CA Public Key Checksum", _B, 20, 20),
    TagInfo("DF04", "CA Public Key Exponent", _B, 1, 3),
    TagInfo("DF05", "CA Public Key Expiry", _B, 4, 8),
    TagInfo("DF06", "Hash Algorithm Indicator", _B, 1, 1),
    TagInfo("DF07", "Public Key Algorithm Indicator", _B, 1, 1),
    TagInfo("DF11", "TAC Default", _B, 5, 5),
    TagInfo("DF12", "TAC Online", _B, 5, 5),
    TagInfo("DF13", "TAC Denial", _B, 5, 5),
    TagInfo("DF14", "Default DDOL", _B, 0, 252),
    TagInfo("DF15", "Threshold for Random Selection", _B, 4, 4),
    TagInfo("DF16", "Maximum Target Percentage", _B, 1, 1),
    TagInfo("DF17", "Target Percentage", _B, 1, 1),
    TagInfo("DF18", "Online PIN Capability", _B, 1, 1),
    TagInfo("DF19", "Contactless Offline Floor Limit", _N, 6, 6),
    TagInfo("DF20", "Contactless Transaction Limit", _N, 6, 6),
    TagInfo("DF21", "Contactless CVM Limit", _N, 6, 6),
)

TAGS: Mapping[str, TagInfo] = MappingProxyType({info.tag: info for info in _TABLE})


def sensitivity(tag: str) -> Sensitivity:
    info = TAGS.get(tag)
    return info.sensitivity if info is not None else Sensitivity.NONE


def readable(obj: Tlv) -> str:
    """A value as a person reads it: digits for n/cn, text for an/ans, hex otherwise (clear:
    mask it first when it is sensitive)."""
    info = TAGS.get(obj.tag)
    text = obj.value.hex().upper()
    if info is None or info.format in (TagFormat.B, TagFormat.N):
        return text
    if info.format is TagFormat.CN:
        return text.rstrip("F")
    if all(0x20 <= b < 0x7F for b in obj.value):
        return obj.value.decode("ascii")
    return text
