"""Masking of a frame as it is on the wire: which nibbles of the bytes hold sensitive data.

The same rule as every other view (specs/masking.py): a PAN keeps its first 6 and last 4
digits, tracks (35, 36), the PIN block (52) and key material (62) are hidden whole, and in a
BER-TLV field (55) the values of the sensitive tags (specs/tlv.py). A plan is a tuple of nibble
spans over the whole frame, computed from a decoded message's offsets; from it come the hex
view (`masked_hex`, a `*` for each hidden nibble: `switchsim trace --hex`) and masked bytes
(`masked_bytes`, for a capture: a hidden digit of a numeric or track field written as text
becomes `0`, so that a dissector still reads the field, any other hidden character `*`, a hidden
nibble of BCD or binary data `F`).

A frame that did not decode whole is masked from the first field that failed to the end when
its bitmap names any sensitive field from there on: where such a field would start is unknown.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from specs.dialect import Dialect, Encoding, LengthKind, Sensitivity
from specs.masking import mask_tlv_hex
from specs.message import Message

_STAR = "*"
_CHAR, _DIGIT, _NIBBLE = "2A", "30", "F"  # fills of masked_bytes: `*`, `0`, a nibble


@dataclass(frozen=True, slots=True)
class Span:
    """Nibbles [start, end) of the frame hidden; ``fill``: what `masked_bytes` writes there, a
    character (two hex digits: "2A" is `*`, "30" is `0`) for text, or a nibble ("F")."""

    start: int
    end: int
    fill: str


def _prefix_bytes(dialect: Dialect, kind: LengthKind) -> int:
    if kind is LengthKind.FIXED:
        return 0
    digits = 2 if kind is LengthKind.LLVAR else 3
    return (digits + 1) // 2 if dialect.length_encoding is Encoding.BCD else digits


def plan(message: Message, wire: bytes, body_start: int, failed_at: int | None = None) -> tuple[Span, ...]:
    """The hidden nibbles of ``wire``, a frame whose body starts at byte ``body_start`` and
    decodes to ``message`` (with its offsets). ``failed_at``: the body offset where decoding
    stopped, for a partial message (see the module's doc)."""
    dialect = message.dialect
    fields, offsets = message.fields, message.offsets
    masks = _masks(dialect)
    hidden = sorted(masks.keys() & fields.keys())
    if failed_at is None and not hidden:
        return ()  # most messages (network management, most answers): nothing to hide, no work
    body_length = len(wire) - body_start
    # A field ends where the next part starts (or the body, or the decode, ends).
    starts = sorted(offsets.values())
    starts.append(body_length if failed_at is None else failed_at)
    spans: list[Span] = []
    for number in hidden:
        at = offsets.get(str(number))
        if at is None:
            continue
        mask = masks[number]
        start = body_start + at + mask.prefix
        end = body_start + starts[bisect_right(starts, at)]
        spans += _field_spans(mask.kind, fields[number], 2 * start, 2 * end, mask.fill, bcd=mask.bcd, text=mask.text)
    if failed_at is not None and _sensitive_after(message, wire[body_start:]):
        spans.append(Span(2 * (body_start + failed_at), 2 * (body_start + body_length), _NIBBLE))
    return tuple(spans)


@dataclass(frozen=True, slots=True)
class _FieldMask:
    """How a sensitive field of a dialect lies on the wire: what a plan needs of its spec."""

    kind: Sensitivity
    prefix: int  # bytes of its length prefix
    bcd: bool  # digits as BCD nibbles
    text: bool  # one character a byte (not BCD, not raw binary)
    fill: str  # what masked_bytes writes over it


def _masks(dialect: Dialect) -> dict[int, _FieldMask]:
    """The dialect's sensitive fields, worked out once a dialect (which is not hashable: by
    identity, the dialect kept beside its answer so that its id cannot be reused)."""
    known = _MASKS.get(id(dialect))
    if known is not None and known[0] is dialect:
        return known[1]
    masks: dict[int, _FieldMask] = {}
    for number, spec in dialect.fields.items():
        if spec.sensitivity is Sensitivity.NONE:
            continue
        bcd = spec.type.counts_digits and dialect.numeric_encoding is Encoding.BCD
        raw_binary = spec.type.name == "B" and dialect.binary_encoding is not Encoding.HEX
        text = not bcd and not raw_binary
        fill = (_DIGIT if spec.type.counts_digits else _CHAR) if text else _NIBBLE
        masks[number] = _FieldMask(spec.sensitivity, _prefix_bytes(dialect, spec.length_kind), bcd, text, fill)
    _MASKS[id(dialect)] = (dialect, masks)
    return masks


_MASKS: dict[int, tuple[Dialect, dict[int, _FieldMask]]] = {}


def _field_spans(
    kind: Sensitivity, value: str, start: int, end: int, fill: str, *, bcd: bool, text: bool
) -> list[Span]:
    if kind is Sensitivity.PAN:
        digits = len(value)
        keep_head = 6 if digits >= 13 else 0
        hidden = range(keep_head, max(keep_head, digits - 4))
        per_digit = 1 if bcd else 2  # a BCD digit is a nibble, an ASCII one a byte
        if not hidden:
            return []
        # variable BCD digits are left-aligned (a pad nibble, if any, comes last)
        return [Span(start + hidden.start * per_digit, start + hidden.stop * per_digit, fill)]
    if kind is Sensitivity.TLV:
        masked = mask_tlv_hex(value)  # b values are held as hex text
        per_char = 2 if text else 1  # hex text on the wire: one character a byte
        return _runs(masked, start, per_char, fill)
    return [Span(start, end, fill)]


def _runs(masked: str, start: int, per_char: int, fill: str) -> list[Span]:
    spans: list[Span] = []
    run_start: int | None = None
    for index, char in enumerate([*masked, ""]):
        if char == _STAR and run_start is None:
            run_start = index
        elif char != _STAR and run_start is not None:
            spans.append(Span(start + run_start * per_char, start + index * per_char, fill))
            run_start = None
    return spans


def _sensitive_after(message: Message, body: bytes) -> bool:
    """Whether the part of a body that did not decode may hold a sensitive field: one the
    bitmap names and that was not decoded (any, when the bitmap itself is unreadable)."""
    dialect = message.dialect
    named = _bitmap_fields(message, body)
    rest = (named if named is not None else set(dialect.fields)) - set(message.fields)
    return any(dialect.fields[n].sensitivity is not Sensitivity.NONE for n in rest if n in dialect.fields)


def _bitmap_fields(message: Message, body: bytes) -> set[int] | None:
    """The field numbers a body's bitmap names; None when it cannot be read."""
    at = message.offsets.get("bitmap")
    if at is None:
        return None
    hex_bitmap = message.dialect.bitmap_encoding is Encoding.HEX
    size = 16 if hex_bitmap else 8
    numbers: set[int] = set()
    for index in range(2):
        raw = body[at + index * size : at + (index + 1) * size]
        if len(raw) < size:
            return None if index == 0 else numbers
        try:
            bits = int(raw, 16) if hex_bitmap else int.from_bytes(raw, "big")
        except ValueError:
            return None
        numbers |= {64 * index + n for n in range(1, 65) if bits >> (64 - n) & 1}
        if not bits >> 63:
            break
    return numbers - {1}


def masked_hex(wire: bytes, spans: tuple[Span, ...]) -> str:
    """The frame's hex, each hidden nibble a `*`."""
    text = wire.hex().upper()
    if not spans:
        return text  # most frames: nothing hidden
    pieces: list[str] = []
    at = 0
    for span in sorted(spans, key=lambda s: s.start):
        start = max(span.start, at)  # spans may touch or overlap: a nibble is hidden once
        if span.end <= start:
            continue
        pieces += (text[at:start], _STAR * (span.end - start))
        at = span.end
    pieces.append(text[at:])
    return "".join(pieces)


def masked_bytes(wire: bytes, spans: tuple[Span, ...]) -> bytes:
    """The frame with its hidden parts overwritten: `0` for digits and `*` for other characters
    of text fields, `F` for nibbles."""
    nibbles = list(wire.hex().upper())
    for span in spans:
        for i in range(span.start, span.end):
            nibbles[i] = span.fill[i % 2] if len(span.fill) == 2 else span.fill
    return bytes.fromhex("".join(nibbles))
