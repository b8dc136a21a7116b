"""The message codec: pyiso8583 encodes the fields, this layer adds what a dialect needs.

Added here: the pyiso8583 spec built from dialect data, character-set checks that pyiso8583
does not make (BCD digits, an/ans), subfields, per-MTI mandatory and forbidden fields, and
typed errors. Every failure is a `CodecError` carrying field, byte offset, reason and the
response code 30; nothing else escapes `decode` or `encode`.

Each message first tries the fast path compiled from the same pyiso8583 spec
(specs/fastcodec.py); when it gives up, the pyiso8583 path (`_decode_reference`,
`_encode_fields`) runs and names the error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any

import iso8583
from iso8583.decoder import DecodeError
from iso8583.encoder import EncodeError, _encode_field

from specs import hexbinary, loader
from specs.dialect import APPROVED, Align, Dialect, Encoding, FieldSpec, FieldType, LengthKind, Sensitivity
from specs.errors import CodecError
from specs.fastcodec import FastCodec
from specs.message import Message, split_subfields
from specs.track2 import SEPARATORS as TRACK_SEPARATORS

_DIGITS = frozenset("0123456789")
_AN = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz ")
_A = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz ")
_ANS = frozenset(chr(c) for c in range(0x20, 0x7F))
_HEX = frozenset("0123456789ABCDEF")


@dataclass(frozen=True, slots=True)
class _Check:
    """What one field's value may contain, precomputed per dialect for the hot path."""

    alphabet: frozenset[str]
    label: str
    exact: int  # exact length for fixed fields, 0 for variable ones
    maximum: int
    pad_left: str  # fixed n: fill to width with '0' on the left
    pad_right: str  # fixed an/ans: fill to width with ' ' on the right
    binary: bool = False  # a b field: hex text of whole bytes, so an even number of digits
    hex_text: bool = False  # a b field written as hex text: taken in either case, held in upper


@dataclass(frozen=True, slots=True)
class Partial:
    """What `Codec.decode_partial` could read of a body."""

    message: Message  # the fields that decoded, with their offsets
    end: int  # where in the body the decoded parts end
    error: CodecError | None  # why the rest did not decode; None when the whole body did


@dataclass(frozen=True, slots=True)
class FieldSlot:
    """An encoded body with one fixed-length field to fill in (``Codec.slot``)."""

    codec: Codec
    number: int
    head: bytes  # the body before the field
    tail: bytes  # the body after it
    size: int  # the field's bytes on the wire

    def fill(self, value: str) -> bytes:
        """The body with ``value`` in the field, as ``Codec.encode`` would write it."""
        data = self.codec.encode_field(self.number, value)
        if len(data) != self.size:  # a fixed field always encodes to the same size
            raise CodecError(str(self.number), len(self.head), f"encodes to {len(data)} bytes, slot holds {self.size}")
        return self.head + data + self.tail


class Codec:
    """Encode and decode message bodies (MTI onward) for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._spec = _pyiso_spec(dialect)
        self._checks = {n: _check_for(spec, dialect) for n, spec in dialect.fields.items()}
        self._normalised: dict[tuple[int, str], str] = {}  # (_normalise)
        self._bcd_mti = dialect.mti_encoding is Encoding.BCD
        self._hex_bitmap = dialect.bitmap_encoding is Encoding.HEX
        self._bitmap_len = 16 if self._hex_bitmap else 8
        self._with_subfields = tuple(n for n, s in dialect.fields.items() if s.subfields)
        # The fields every view masks (specs/masking.py): the journal asks for each entry.
        self.sensitive = frozenset(n for n, s in dialect.fields.items() if s.sensitivity is not Sensitivity.NONE)
        self._hex_text = frozenset(str(n) for n, c in self._checks.items() if c.hex_text)
        has_secondary = any(n > 64 for n in dialect.fields)
        primary = sum(1 << (64 - n) for n in dialect.fields if n <= 64) | (has_secondary << 63)
        secondary = sum(1 << (128 - n) for n in dialect.fields if n > 64)
        self._allowed_bits = (primary, secondary) if has_secondary else (primary,)
        # split_subfields' verdict depends only on a value's length: the lengths it accepts
        self._subfield_lengths = {
            n: frozenset(size for size in range(self._checks[n].maximum + 1) if _splits(n, size, dialect))
            for n in self._with_subfields
        }
        alphabets = {n: (c.alphabet, c.hex_text) for n, c in self._checks.items()}
        self._fast = FastCodec(self._spec, alphabets, self._allowed_bits)

    # -- decode ---------------------------------------------------------------------------

    def decode(self, body: bytes, *, validate: bool = True, base_offset: int = 0) -> Message:
        """Decode a message body; ``base_offset`` shifts reported offsets (frame position)."""
        try:
            return self._decode(body, validate)
        except CodecError as exc:
            if not base_offset:
                raise
            raise CodecError(exc.field, exc.offset + base_offset, exc.reason) from None

    def _decode(self, body: bytes, validate: bool, *, fast_path: bool = True) -> Message:
        """The message in ``body``; ``fast_path=False`` takes pyiso8583's path only (tests, bench)."""
        fast = self._fast.decode(body) if fast_path else None
        mti, fields, offsets = self._decode_reference(body) if fast is None else fast
        for number in self._with_subfields:
            if number in fields and len(fields[number]) not in self._subfield_lengths[number]:
                try:
                    split_subfields(number, fields[number], self.dialect)
                except CodecError as exc:
                    raise CodecError(exc.field, offsets[str(number)], exc.reason) from None
        message = Message(
            checked=True,
            mti=mti,
            fields=MappingProxyType(fields),
            dialect=self.dialect,
            offsets=MappingProxyType(offsets),
        )
        if validate:
            self.check_rules(message)
        return message

    def _decode_reference(self, body: bytes) -> tuple[str, dict[int, str], dict[str, int]]:
        """MTI, fields and part offsets by pyiso8583: the reference the fast path (specs/fastcodec.py)
        must match, and the path that names every error."""
        self._check_bitmap(body)
        try:
            decoded, encoded = iso8583.decode(body, self._spec)
        except DecodeError as exc:
            reason = _reason(exc.msg)
            if exc.field in self._hex_text and reason.startswith("Field data is"):
                reason = reason.replace(" bytes", " hex characters", 1)  # pyiso8583 counts characters
            raise CodecError(_part_name(exc.field), exc.pos, reason) from None
        except (ValueError, TypeError, IndexError) as exc:  # defensive: never leak these
            raise CodecError(None, 0, f"undecodable message ({type(exc).__name__})") from None
        mti = decoded["t"]
        if len(mti) != 4 or not mti.isdigit():
            raise CodecError("mti", 0, "MTI is not four digits")
        # pyiso8583 fills `encoded` in wire order, so offsets are a running sum.
        offsets: dict[str, int] = {}
        fields: dict[int, str] = {}
        checks = self._checks
        pos = 0
        for key, part in encoded.items():
            offsets[_PART_NAMES.get(key, key)] = pos
            if key not in _PART_NAMES:
                number = int(key)
                value = decoded[key]
                check = checks[number]
                if check.hex_text:
                    value = value.upper()
                if not check.alphabet.issuperset(value):
                    raise CodecError(key, pos, f"value is not {check.label}")
                fields[number] = value
            pos += len(part["len"]) + len(part["data"])
        return mti, fields, offsets

    def decode_partial(self, body: bytes, *, base_offset: int = 0) -> Partial:
        """As much of a body as decodes: a message holding the fields before the one that
        failed, with their offsets, where they end, and the error (None when the body decodes
        and passes the rules). For dumps of a malformed message; never raises. The message's
        offsets and ``end`` are the body's, the error's offset is shifted by ``base_offset``."""
        try:
            return Partial(self._decode(body, True), len(body), None)
        except CodecError as exc:
            error = CodecError(exc.field, exc.offset + base_offset, exc.reason)
        try:
            decoded, encoded = iso8583.decode(body, self._spec)
            failed = error.field
        except DecodeError as exc:
            decoded, encoded, failed = exc.doc_dec, exc.doc_enc, exc.field
        except Exception:
            return Partial(Message.build(self.dialect, self._readable_mti(body) or "", {}), 0, error)
        if error.field in ("mti", "bitmap", "1"):
            failed = "t" if error.field == "mti" else "p" if error.field == "bitmap" else "1"
        offsets: dict[str, int] = {}
        fields: dict[int, str] = {}
        pos = 0
        for key, part in encoded.items():
            if key == failed:
                break
            if key not in _PART_NAMES:
                value = decoded.get(key)
                if not isinstance(value, str) or not self._readable(int(key), value):
                    break  # the first field that does not hold: the dump stops before it
                fields[int(key)] = value.upper() if self._checks[int(key)].hex_text else value
            offsets[_PART_NAMES.get(key, key)] = pos
            pos += len(part["len"]) + len(part["data"])
        mti = decoded.get("t") if isinstance(decoded.get("t"), str) else self._readable_mti(body)
        message = Message(
            mti=mti or "",
            fields=MappingProxyType(fields),
            dialect=self.dialect,
            offsets=MappingProxyType(offsets),
        )
        return Partial(message, pos, error)

    def _readable(self, number: int, value: str) -> bool:
        """A decoded field's value in its alphabet, cut into its subfields when it has some."""
        check = self._checks.get(number)
        if check is None or not check.alphabet.issuperset(value.upper() if check.hex_text else value):
            return False
        if number in self._with_subfields:
            try:
                split_subfields(number, value, self.dialect)
            except CodecError:
                return False
        return True

    def salvage(self, body: bytes) -> tuple[str | None, dict[int, str]]:
        """MTI and the well-formed fields of a body that failed to decode, for an answer that
        echoes what it can. A field is kept only if it would encode again as it is (alphabet,
        length, subfields), so an answer built from these cannot fail on them; fields before
        the one pyiso8583 stopped at are kept, the rest are lost. Never raises."""
        mti = self._readable_mti(body)
        try:
            decoded, _ = iso8583.decode(body, self._spec)
        except DecodeError as exc:
            decoded = {k: v for k, v in exc.doc_dec.items() if k != exc.field}
        except Exception:
            return mti, {}
        fields: dict[int, str] = {}
        for key, value in decoded.items():  # in wire order
            if not key.isdigit() or key == "1":
                continue
            number = int(key)
            if number not in self._checks:
                break  # a field the dialect does not define: where the next one starts is unknown
            try:
                if self._normalise(number, value) == value:
                    fields[number] = value
            except CodecError:
                continue
        return mti, fields

    def _readable_mti(self, body: bytes) -> str | None:
        raw = body[:2].hex() if self._bcd_mti else body[:4].decode("latin-1")
        return raw if len(raw) == 4 and raw.isdigit() else None

    def _check_bitmap(self, body: bytes) -> None:
        """Refuse a bitmap that names fields the dialect does not define, before decoding."""
        start = 2 if self._bcd_mti else 4
        for index, allowed in enumerate(self._allowed_bits):
            at = start + index * self._bitmap_len
            raw = body[at : at + self._bitmap_len]
            if len(raw) < self._bitmap_len:
                raise CodecError("bitmap", min(len(body), at), "message ends inside the bitmap")
            try:
                bits = int(raw, 16) if self._hex_bitmap else int.from_bytes(raw, "big")
            except ValueError:
                raise CodecError("bitmap", at, "bitmap is not hexadecimal") from None
            unknown = bits & ~allowed
            if unknown:
                number = 64 * index + 65 - unknown.bit_length()
                what = "a secondary bitmap" if number == 1 else f"field {number}"
                raise CodecError("bitmap", at, f"bitmap sets {what}, undefined in {self.dialect.name}")
            if not bits >> 63:  # no secondary bitmap follows
                return

    # -- encode ---------------------------------------------------------------------------

    def _prepare(self, message: Message, validate: bool) -> Mapping[int, str]:
        """The rules and the MTI checked, the values normalised: what both encoders take."""
        if validate:
            self.check_rules(message)
        if len(message.mti) != 4 or not message.mti.isdigit():
            raise CodecError("mti", 0, "MTI must be four digits")
        if message.checked:
            return message.fields
        return {number: self._normalise(number, value) for number, value in message.fields.items()}

    def _encode_reference(self, message: Message, validate: bool = True) -> tuple[bytes, dict[str, dict[str, bytes]]]:
        """The body and pyiso8583's encoded parts (in wire order): the reference the fast path
        (specs/fastcodec.py) must match, and the path that names every error."""
        return self._encode_fields(message.mti, self._prepare(message, validate))

    def _encode_fields(self, mti: str, fields: Mapping[int, str]) -> tuple[bytes, dict[str, dict[str, bytes]]]:
        doc: dict[str, str] = {"t": mti}
        doc.update((str(number), value) for number, value in fields.items())
        try:
            raw, parts = iso8583.encode(doc, self._spec)
        except EncodeError as exc:
            raise CodecError(_part_name(exc.field), 0, _reason(exc.msg)) from None
        return bytes(raw), parts

    def _encode(self, message: Message, validate: bool) -> tuple[bytes, list[bytes]]:
        """The body and its parts in wire order (MTI, bitmap, secondary bitmap if any, then the
        fields by number): by the fast path, or pyiso8583's when the fast path gives up."""
        fields = self._prepare(message, validate)
        parts = self._fast.encode(message.mti, fields)
        if parts is None:
            body, encoded = self._encode_fields(message.mti, fields)
            return body, [part["len"] + part["data"] for part in encoded.values()]
        return b"".join(parts), parts

    def _field_spans(self, message: Message, validate: bool = True) -> tuple[bytes, dict[str, tuple[int, int]]]:
        """The body and where each field lies in it ({"11": (start, end)})."""
        body, parts = self._encode(message, validate)
        end = len(body)
        spans: dict[str, tuple[int, int]] = {}
        # the fields are the last parts, one each, in number order
        for number, part in zip(sorted(message.fields, reverse=True), reversed(parts), strict=False):
            spans[str(number)] = (end - len(part), end)
            end -= len(part)
        return body, dict(reversed(spans.items()))

    def encode(self, message: Message, *, validate: bool = True) -> bytes:
        """Encode a message body (MTI, bitmap, fields)."""
        return self._encode(message, validate)[0]

    def slot(self, message: Message, number: int) -> FieldSlot:
        """``message`` encoded once, with fixed-length field ``number`` left to fill in: a sender
        that changes only that field (a STAN) reuses the rest of the codec's own output."""
        check = self._checks.get(number)
        if check is None or not check.exact:
            raise CodecError(str(number), 0, "only a fixed-length field can be filled in place")
        if number not in message.fields:
            raise CodecError(str(number), 0, "absent from the message to fill in")
        if number == max(message.fields):  # the last field (a MAC): the last part, no spans to work out
            body, parts = self._encode(message, True)
            start, end = len(body) - len(parts[-1]), len(body)
        else:
            body, spans = self._field_spans(message)
            start, end = spans[str(number)]
        return FieldSlot(self, number, body[:start], body[end:], end - start)

    def encode_field(self, number: int, value: str) -> bytes:
        """One field as encode() writes it into a body (length prefix, if any, and data),
        by the same pyiso8583 field encoder; the value is normalised and checked first."""
        key = str(number)
        value = self._normalise(number, value)
        fast = self._fast.encode_field(number, value)
        if fast is not None:
            return fast
        try:
            # pyiso8583 has no public single-field encoder; this is the one encode() runs per field.
            return _encode_field({key: value}, {}, key, self._spec[key])
        except EncodeError as exc:
            raise CodecError(key, 0, _reason(exc.msg)) from None

    def message(self, mti: str, fields: Mapping[int, str]) -> Message:
        """A message of this dialect, values normalised (fixed fields padded) and checked."""
        normalised = {n: self._normalise(n, v) for n, v in fields.items()}
        return Message.build(self.dialect, mti, normalised, checked=True)

    def amend(self, message: Message, changes: Mapping[int, str | None]) -> Message:
        """``message`` with fields set or removed (None); only the new values are checked."""
        return self.extend(message.mti, dict(message.fields), changes, checked=message.checked)

    def extend(self, mti: str, fields: dict[int, str], changes: Mapping[int, str | None], *, checked: bool) -> Message:
        """A message of ``fields`` (values already normalised, ``checked`` saying whether they
        were checked too; the dict is taken, not copied) with ``changes`` made: what `amend`
        does without first building the message it amends (an answer made of a request's echo)."""
        for number, value in changes.items():
            if value is None:
                fields.pop(number, None)
            else:
                fields[number] = self._normalise(number, value)
        return Message.build(self.dialect, mti, fields, checked=checked)

    def _normalise(self, number: int, value: str) -> str:
        """``value`` padded as the field's format says, or a CodecError naming what is wrong.
        A value met before is answered from a small memo: the same codes, times and dates
        come back in every answer (the memo is emptied when full, keeps no error and no value
        of a sensitive field: a PIN block or a track is not kept past its message)."""
        if type(value) is str:
            known = self._normalised.get((number, value))
            if known is not None:
                return known
        normalised = self._check_value(number, value)
        if number in self.sensitive:
            return normalised
        if len(self._normalised) >= _NORMALISED_MEMO:
            self._normalised.clear()
        self._normalised[number, value] = normalised
        return normalised

    def _check_value(self, number: int, value: str) -> str:
        check = self._checks.get(number)
        if check is None:
            raise CodecError(str(number), 0, f"field {number} is not defined in {self.dialect.name}")
        if not isinstance(value, str):
            raise CodecError(str(number), 0, "value must be text")
        if check.exact and len(value) < check.exact:
            if check.pad_left:
                value = value.rjust(check.exact, check.pad_left)
            elif check.pad_right:
                value = value.ljust(check.exact, check.pad_right)
        if not check.alphabet.issuperset(value):
            raise CodecError(str(number), 0, f"value is not {check.label}")
        if check.binary and len(value) % 2:
            raise CodecError(str(number), 0, "hex text of whole bytes needs an even number of digits")
        if check.exact and len(value) != check.exact:
            raise CodecError(str(number), 0, f"length {len(value)}, must be {check.exact}")
        if len(value) > check.maximum:
            raise CodecError(str(number), 0, f"length {len(value)} above maximum {check.maximum}")
        if number in self._with_subfields:
            split_subfields(number, value, self.dialect)
        return value

    # -- rules ----------------------------------------------------------------------------

    def check_rules(self, message: Message) -> None:
        """Per-MTI mandatory and forbidden fields, as the dialect data says (for a response, the
        mandatory set depends on field 39: an approval's, or a refusal's)."""
        rule = self.dialect.messages.get(message.mti)
        if rule is None:
            return
        code = message.fields.get(39)
        required = rule.required(code)
        if message.fields.keys() >= required and rule.forbidden.isdisjoint(message.fields):
            return  # the usual case, in two set operations; the loops below name what is wrong
        offset = message.offsets.get("bitmap", 0)
        kind = "" if rule.refusal is None else " approval" if code == APPROVED else " refusal"
        for number in sorted(required):
            if number not in message.fields:
                raise CodecError(str(number), offset, f"mandatory in {message.mti}{kind} but absent")
        for number in sorted(rule.forbidden):
            if number in message.fields:
                raise CodecError(
                    str(number),
                    message.offsets.get(str(number), offset),
                    f"not allowed in {message.mti}",
                )


@cache
def codec_for(name: str) -> Codec:
    """The shared codec of a built-in dialect (dialects and codecs are immutable)."""
    return Codec(loader.load(name))


def _check_for(spec: FieldSpec, dialect: Dialect) -> _Check:
    bcd = dialect.numeric_encoding is Encoding.BCD
    alphabet, label = {
        FieldType.N: (_DIGITS, "numeric"),
        # z: track data; ASCII terminals send `=` (ISO/IEC 7813) or `D` as the separator
        FieldType.Z: (_DIGITS | ({"D"} if bcd else TRACK_SEPARATORS), "track data (digits and separator)"),
        FieldType.A: (_A, "alphabetic"),
        FieldType.AN: (_AN, "alphanumeric"),
        FieldType.ANS: (_ANS, "printable ASCII"),
        FieldType.B: (_HEX, "uppercase hexadecimal"),
    }[spec.type]
    unit = 2 if spec.type is FieldType.B else 1  # b values are hex text: 2 characters a byte
    exact = spec.max_length * unit if spec.is_fixed else 0
    pad_left = "0" if spec.is_fixed and spec.type is FieldType.N and spec.align is Align.RIGHT else ""
    pad_right = " " if spec.is_fixed and spec.type in (FieldType.AN, FieldType.ANS, FieldType.A) else ""
    binary = spec.type is FieldType.B
    hex_text = binary and dialect.binary_encoding is Encoding.HEX
    return _Check(alphabet, label, exact, spec.max_length * unit, pad_left, pad_right, binary, hex_text)


def _splits(number: int, size: int, dialect: Dialect) -> bool:
    try:
        split_subfields(number, "0" * size, dialect)
    except CodecError:
        return False
    return True


def _pyiso_spec(dialect: Dialect) -> dict[str, dict[str, Any]]:
    bcd_len = dialect.length_encoding is Encoding.BCD
    spec: dict[str, dict[str, Any]] = {
        "h": {"data_enc": "ascii", "len_enc": "ascii", "len_type": 0, "max_len": 0, "desc": "h"},
        "t": (
            {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 2, "desc": "MTI"}
            if dialect.mti_encoding is Encoding.BCD
            else {"data_enc": "ascii", "len_enc": "ascii", "len_type": 0, "max_len": 4, "desc": "MTI"}
        ),
    }
    bitmap = (
        {"data_enc": "ascii", "len_enc": "ascii", "len_type": 0, "max_len": 16}
        if dialect.bitmap_encoding is Encoding.HEX
        else {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 8}
    )
    spec["p"] = {**bitmap, "desc": "Bitmap"}
    spec["1"] = {**bitmap, "desc": "Secondary bitmap"}
    for number in range(2, 129):
        field = dialect.fields.get(number)
        if field is None:
            # Never reached: the bitmap check refuses undefined fields before pyiso8583 runs.
            spec[str(number)] = {"data_enc": "b", "len_enc": "b", "len_type": 0, "max_len": 0, "desc": ""}
            continue
        spec[str(number)] = _field_spec(field, dialect, bcd_len)
    return spec


def _field_spec(field: FieldSpec, dialect: Dialect, bcd_len: bool) -> dict[str, Any]:
    len_type = {
        LengthKind.FIXED: 0,
        LengthKind.LLVAR: 1 if bcd_len else 2,
        LengthKind.LLLVAR: 2 if bcd_len else 3,
    }[field.length_kind]
    out: dict[str, Any] = {
        "len_enc": "bcd" if bcd_len else "ascii",
        "len_type": len_type,
        "max_len": field.max_length,
        "desc": field.name,
    }
    if field.type.counts_digits and dialect.numeric_encoding is Encoding.BCD:
        out["data_enc"] = "b"
        out["len_count"] = "nibbles"
        out["left_pad" if field.align is Align.RIGHT else "right_pad"] = "0"
    elif field.type is FieldType.B and dialect.binary_encoding is Encoding.HEX:
        # two hex characters a byte; a variable field's prefix still counts bytes (specs/hexbinary.py)
        out["data_enc"] = "ascii"
        out["max_len"] = field.max_length * 2
        if field.length_kind is not LengthKind.FIXED:
            out["len_enc"] = hexbinary.length_codec(len_type)
    elif field.type is FieldType.B:
        out["data_enc"] = "b"
    else:
        out["data_enc"] = "ascii"
    return out


_NORMALISED_MEMO = 4096  # values (Codec._normalise)
_PART_NAMES = {"t": "mti", "p": "bitmap", "1": "1", "h": "header"}


def _part_name(key: str) -> str:
    return _PART_NAMES.get(key, key)


def _reason(msg: str) -> str:
    # pyiso8583 messages may quote data (e.g. "invalid hex 'xyz'"): keep only the sentence head.
    return msg.split(":", 1)[0].split("'", 1)[0].strip().rstrip(".")
