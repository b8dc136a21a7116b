"""The codec's fast path: per-field readers and writers compiled once per dialect.

Why two paths: pyiso8583 reads a spec dict key by key for every field of every message and
expands each bitmap bit by bit, which is most of the time a switch spends on a message. This
module compiles the very spec dict `specs/codec.py` gives pyiso8583 into a tuple of small
readers and writers indexed by field number, and a plan per bitmap (cached), and runs only
those on the way through.

pyiso8583 stays the reference and the error path. The fast path handles only the success case:
the moment it meets anything it is not sure of (length digits that are not plain digits, a
length above the maximum, a body that ends early, a byte outside the field's alphabet, an odd
nibble count whose pad nibble is not the pad, bytes after the last field, a bitmap bit the
dialect does not define, a tertiary bitmap, a value that does not encode) it gives up, returns
None, and `Codec` runs pyiso8583 on the same input, so every error is the one pyiso8583 and the
codec's own checks give. On success the result is what that path gives: the same fields, the
same offsets in the same order, the same bytes (tests/specs/test_fastcodec.py checks both
paths against each other for every built-in dialect).
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from operator import methodcaller
from typing import Any, Final

# What a read gives: the field's value and where the next part starts.
Reader = Callable[[bytes, int], tuple[str, int]]
Writer = Callable[[str], bytes]

_HEX_BYTES: Final = b"0123456789ABCDEFabcdef"
_HEX_CHARS: Final = frozenset("0123456789ABCDEF")
_DIGITS: Final = frozenset("0123456789")
# A BCD byte's value, or -1 when a nibble is not a decimal digit (int(hex, 10) refuses it).
_BCD: Final = tuple((b >> 4) * 10 + (b & 15) if b >> 4 < 10 and b & 15 < 10 else -1 for b in range(256))
_PLAN_CACHE: Final = 4096  # bitmaps (or field sets) remembered per dialect; cleared when full


class _Abandon(Exception):  # not an error: the reference path takes over
    """The fast path is not sure: pyiso8583 decides."""


@dataclass(frozen=True, slots=True)
class _DecodePlan:
    """What one bitmap says: the fields that follow, in wire order, with their readers."""

    fields: tuple[tuple[str, int, Reader], ...]
    start: int  # where the first field starts
    secondary: bool


@dataclass(frozen=True, slots=True)
class _EncodePlan:
    """What one set of field numbers writes: the bitmap(s), then the fields in wire order."""

    bitmaps: tuple[bytes, ...]
    fields: tuple[tuple[int, Writer], ...]


_REFUSED: Final = object()  # a cached "the fast path does not handle this"


class FastCodec:
    """The success-only decoder and encoder of one dialect's pyiso8583 spec."""

    def __init__(
        self,
        spec: Mapping[str, Mapping[str, Any]],
        alphabets: Mapping[int, tuple[frozenset[str], bool]],
        allowed_bits: tuple[int, ...],
    ) -> None:
        """``spec``: the pyiso8583 spec the reference path uses; ``alphabets``: per defined
        field, the characters its value may hold and whether it is hex text (upper-cased on
        decode); ``allowed_bits``: the primary (and secondary) bitmap bits the dialect defines."""
        self._bcd_mti = spec["t"]["data_enc"] == "b"
        self._mti_len = 2 if self._bcd_mti else 4
        self._hex_bitmap = spec["p"]["data_enc"] != "b"
        self._bitmap_len = 16 if self._hex_bitmap else 8
        # first bitmap byte values that announce a secondary bitmap
        self._secondary_first = frozenset(b"89ABCDEFabcdef" if self._hex_bitmap else range(0x80, 0x100))
        self._allowed = allowed_bits
        readers: list[Reader | None] = [None] * 129
        writers: list[Writer | None] = [None] * 129
        if spec["h"]["max_len"] <= 0:  # a header part: the reference path reads it
            for number, (alphabet, hex_text) in alphabets.items():
                readers[number] = _reader(spec[str(number)], alphabet, hex_text)
                writers[number] = _writer(spec[str(number)])
        self._readers = tuple(readers)
        self._writers = tuple(writers)
        self._decode_plans: dict[bytes, _DecodePlan | object] = {}
        self._encode_plans: dict[tuple[int, ...], _EncodePlan | object] = {}

    # -- decode ---------------------------------------------------------------------------

    def decode(self, body: bytes) -> tuple[str, dict[int, str], dict[str, int]] | None:
        """MTI, fields and part offsets (as `Codec` names them), or None: ask pyiso8583."""
        try:
            return self._decode(body)
        except Exception:  # anything unforeseen: the reference path gives the answer
            return None

    def _decode(self, body: bytes) -> tuple[str, dict[int, str], dict[str, int]] | None:
        at = self._mti_len
        raw = body[:at]
        if len(raw) != at:
            return None
        if self._bcd_mti:
            mti = raw.hex()
            if not mti.isdigit():
                return None
        elif raw.isdigit():
            mti = raw.decode("ascii")
        else:
            return None
        size = self._bitmap_len * 2 if body[at] in self._secondary_first else self._bitmap_len
        key = body[at : at + size]
        plan = self._decode_plans.get(key)
        if plan is None:
            plan = self._decode_plan(key, size)
            if len(self._decode_plans) >= _PLAN_CACHE:
                self._decode_plans.clear()
            self._decode_plans[key] = plan
        if not isinstance(plan, _DecodePlan):
            return None
        offsets = {"mti": 0, "bitmap": at}
        if plan.secondary:
            offsets["1"] = at + self._bitmap_len
        fields: dict[int, str] = {}
        pos = plan.start
        for name, number, read in plan.fields:
            offsets[name] = pos
            fields[number], pos = read(body, pos)
        if pos != len(body):
            return None
        return mti, fields, offsets

    def _decode_plan(self, key: bytes, size: int) -> _DecodePlan | object:
        if len(key) != size:
            return _REFUSED
        width = self._bitmap_len
        maps = [key[i : i + width] for i in range(0, size, width)]
        if self._hex_bitmap:
            if any(m.translate(None, _HEX_BYTES) for m in maps):
                return _REFUSED
            bits = [int(m, 16) for m in maps]
        else:
            bits = [int.from_bytes(m, "big") for m in maps]
        if len(bits) > len(self._allowed):
            return _REFUSED
        if any(b & ~allowed for b, allowed in zip(bits, self._allowed, strict=False)):
            return _REFUSED  # a field the dialect does not define: the bitmap check says which
        if len(bits) == 2 and bits[1] >> 63:
            return _REFUSED  # field 65 set: pyiso8583 reads a tertiary bitmap
        numbers = [n for n in range(2, 65) if bits[0] >> (64 - n) & 1]
        if len(bits) == 2:
            numbers += [n for n in range(66, 129) if bits[1] >> (128 - n) & 1]
        fields = []
        for number in numbers:
            read = self._readers[number]
            if read is None:
                return _REFUSED
            fields.append((str(number), number, read))
        return _DecodePlan(tuple(fields), self._mti_len + size, len(bits) == 2)

    # -- encode ---------------------------------------------------------------------------

    def encode(self, mti: str, fields: Mapping[int, str]) -> list[bytes] | None:
        """The body's parts in wire order (MTI, bitmap, secondary bitmap if any, then one per
        field, sorted by number), or None: ask pyiso8583."""
        try:
            return self._encode(mti, fields)
        except Exception:  # anything unforeseen: the reference path gives the answer
            return None

    def _encode(self, mti: str, fields: Mapping[int, str]) -> list[bytes] | None:
        key = tuple(fields)
        plan = self._encode_plans.get(key)
        if plan is None:
            plan = self._encode_plan(key)
            if len(self._encode_plans) >= _PLAN_CACHE:
                self._encode_plans.clear()
            self._encode_plans[key] = plan
        if not isinstance(plan, _EncodePlan):
            return None
        if self._bcd_mti:
            head = binascii.a2b_hex(mti)
            if len(head) != 2:
                return None
        else:
            head = mti.encode("ascii")
            if len(head) != 4:
                return None
        parts = [head, *plan.bitmaps]
        for number, write in plan.fields:
            parts.append(write(fields[number]))
        return parts

    def _encode_plan(self, key: tuple[int, ...]) -> _EncodePlan | object:
        numbers = sorted(set(key))
        if len(numbers) != len(key) or any(type(n) is not int or not 2 <= n <= 128 or n == 65 for n in numbers):
            return _REFUSED  # pyiso8583 drops 1 and 65 and refuses what is out of range
        writers = []
        for number in numbers:
            write = self._writers[number]
            if write is None:
                return _REFUSED
            writers.append((number, write))
        secondary = any(n > 64 for n in numbers)
        primary = sum(1 << (64 - n) for n in numbers if n <= 64) | (secondary << 63)
        maps = [primary.to_bytes(8, "big")]
        if secondary:
            maps.append(sum(1 << (128 - n) for n in numbers if n > 64).to_bytes(8, "big"))
        if self._hex_bitmap:
            maps = [m.hex().upper().encode("ascii") for m in maps]
        return _EncodePlan(tuple(maps), tuple(writers))

    def encode_field(self, number: int, value: str) -> bytes | None:
        """One field's prefix and data, or None: ask pyiso8583."""
        write = self._writers[number] if 0 <= number <= 128 else None
        if write is None:
            return None
        try:
            return write(value)
        except Exception:  # anything unforeseen: the reference path gives the answer
            return None


# -- readers --------------------------------------------------------------------------------


def _reader(fs: Mapping[str, Any], alphabet: frozenset[str], hex_text: bool) -> Reader | None:
    """A reader for one field of a pyiso8583 spec, or None when the fast path leaves it to
    pyiso8583 (a length encoding it does not know)."""
    len_type: int = fs["len_type"]
    max_len: int = fs["max_len"]
    nibbles = fs.get("len_count", "bytes") == "nibbles"
    data = _data_reader(fs, alphabet, hex_text, nibbles)
    if data is None:
        return None
    if len_type == 0:
        count = max_len
        size = (count + 1) // 2 if nibbles else count
        if count <= 0:
            return None
        fused = _fixed_reader(fs, alphabet, hex_text, nibbles, count)
        if fused is not None:
            return fused

        def read_fixed(body: bytes, pos: int) -> tuple[str, int]:
            end = pos + size
            raw = body[pos:end]
            if len(raw) != size:
                raise _Abandon
            return data(raw, count), end

        return read_fixed
    length = _length_reader(fs["len_enc"], len_type)
    if length is None:
        return None

    def read_variable(body: bytes, pos: int) -> tuple[str, int]:
        count = length(body, pos)
        if count > max_len:
            raise _Abandon
        pos += len_type
        if count == 0:
            return "", pos
        size = (count + 1) // 2 if nibbles else count
        end = pos + size
        raw = body[pos:end]
        if len(raw) != size:
            raise _Abandon
        return data(raw, count), end

    return read_variable


def _fixed_reader(
    fs: Mapping[str, Any], alphabet: frozenset[str], hex_text: bool, nibbles: bool, count: int
) -> Reader | None:
    """One call for the commonest fixed fields (BCD digits, binary, ASCII text without case
    folding): the generic reader's work without its second call."""
    data_enc = fs["data_enc"]
    if data_enc == "b" and nibbles and alphabet == _DIGITS:
        size = (count + 1) // 2
        width = size * 2
        if not count & 1:

            def read_digits(body: bytes, pos: int) -> tuple[str, int]:
                end = pos + size
                value = body[pos:end].hex()  # digits only, so lower or upper case is the same
                if len(value) != width or not value.isdigit():
                    raise _Abandon
                return value, end

            return read_digits
        if fs.get("left_pad", "")[:1] == "0":

            def read_digits_left(body: bytes, pos: int) -> tuple[str, int]:
                end = pos + size
                value = body[pos:end].hex()
                if len(value) != width or value[0] != "0" or not value.isdigit():
                    raise _Abandon
                return value[1:], end

            return read_digits_left
        if fs.get("right_pad", "")[:1] == "0" and not fs.get("left_pad"):

            def read_digits_right(body: bytes, pos: int) -> tuple[str, int]:
                end = pos + size
                value = body[pos:end].hex()
                if len(value) != width or value[-1] != "0" or not value.isdigit():
                    raise _Abandon
                return value[:-1], end

            return read_digits_right
        return None
    if data_enc == "b" and not nibbles and alphabet >= _HEX_CHARS:

        def read_binary(body: bytes, pos: int) -> tuple[str, int]:
            end = pos + count
            raw = body[pos:end]
            if len(raw) != count:
                raise _Abandon
            return raw.hex().upper(), end

        return read_binary
    if data_enc == "ascii" and not nibbles and not hex_text:
        allowed = _allowed_bytes(alphabet, hex_text)

        def read_text(body: bytes, pos: int) -> tuple[str, int]:
            end = pos + count
            raw = body[pos:end]
            if len(raw) != count or raw.translate(None, allowed):
                raise _Abandon
            return raw.decode("ascii"), end

        return read_text
    return None


def _allowed_bytes(alphabet: frozenset[str], hex_text: bool) -> bytes:
    """The ASCII bytes whose character (upper-cased for hex text) is in the alphabet."""
    return bytes(b for b in range(128) if (chr(b).upper() if hex_text else chr(b)) in alphabet)


def _length_reader(len_enc: str, width: int) -> Callable[[bytes, int], int] | None:
    """The count a length prefix says, as pyiso8583 reads it; _Abandon unless plain digits."""
    if len_enc == "bcd" and width in (1, 2):
        if width == 1:

            def bcd1(body: bytes, pos: int) -> int:
                count = _BCD[body[pos]]
                if count < 0:
                    raise _Abandon
                return count

            return bcd1

        def bcd2(body: bytes, pos: int) -> int:
            high, low = _BCD[body[pos]], _BCD[body[pos + 1]]
            if high < 0 or low < 0:
                raise _Abandon
            return high * 100 + low

        return bcd2
    # ASCII digits; the hex-text codecs (specs/hexbinary.py) count bytes, pyiso8583 characters
    unit = 1 if len_enc == "ascii" else 2 if len_enc.startswith("switchsim_hexlen") else 0
    if not unit:
        return None

    def digits(body: bytes, pos: int) -> int:
        raw = body[pos : pos + width]
        if len(raw) != width or not raw.isdigit():
            raise _Abandon
        return int(raw) * unit

    return digits


def _data_reader(
    fs: Mapping[str, Any], alphabet: frozenset[str], hex_text: bool, nibbles: bool
) -> Callable[[bytes, int], str] | None:
    """Field data to its value as the codec holds it (pyiso8583's decode, then the codec's
    upper-casing of hex text and its alphabet check); _Abandon when that would fail."""
    if fs["data_enc"] == "b":
        left = fs.get("left_pad", "")[:1]
        right = fs.get("right_pad", "")[:1]
        digits_only = alphabet == _DIGITS
        any_hex = alphabet >= _HEX_CHARS

        def hex_data(raw: bytes, count: int) -> str:
            value = raw.hex().upper()
            if nibbles and count & 1:
                if left and value[:1] == left:
                    value = value[1:]
                elif right and value[-1:] == right:
                    value = value[:-1]
                else:
                    raise _Abandon
            if any_hex:
                return value
            if digits_only:
                if not value.isdigit():
                    raise _Abandon
            elif not alphabet.issuperset(value):
                raise _Abandon
            return value

        return hex_data
    if fs["data_enc"] != "ascii" or nibbles:
        return None
    allowed = _allowed_bytes(alphabet, hex_text)

    def text_data(raw: bytes, count: int) -> str:
        if raw.translate(None, allowed):
            raise _Abandon
        value = raw.decode("ascii")
        return value.upper() if hex_text else value

    return text_data


# -- writers --------------------------------------------------------------------------------


_ASCII: Callable[[str], bytes] = methodcaller("encode", "ascii")  # str -> bytes, UnicodeEncodeError past ASCII

def _writer(fs: Mapping[str, Any]) -> Writer | None:
    """A writer for one field of a pyiso8583 spec: what pyiso8583's field encoder writes, or
    _Abandon wherever it would refuse."""
    len_type: int = fs["len_type"]
    max_len: int = fs["max_len"]
    nibbles = fs.get("len_count", "bytes") == "nibbles"
    binary = fs["data_enc"] == "b"
    data_enc: str = fs["data_enc"]
    left = fs.get("left_pad", "")[:1]
    right = fs.get("right_pad", "")[:1]
    if not binary and (data_enc != "ascii" or nibbles):
        return None

    def data(value: str) -> tuple[bytes, int]:
        if binary:
            if nibbles and len(value) & 1:
                raw = binascii.a2b_hex(left + value if left else value + right)
                return raw, len(value)
            raw = binascii.a2b_hex(value)
            return raw, len(value) if nibbles else len(raw)
        raw = value.encode("ascii")
        return raw, len(raw)

    # The usual field, text or bytes given as hex and counted in bytes, is written in one call:
    # both conversions are C callables (no Python frame between the writer and the bytes).
    to_bytes: Callable[[str], bytes] = binascii.a2b_hex if binary else _ASCII
    if len_type == 0 and not nibbles:

        def write_exact(value: str) -> bytes:
            raw = to_bytes(value)
            if len(raw) != max_len:
                raise _Abandon
            return raw

        return write_exact
    if len_type == 0:

        def write_fixed(value: str) -> bytes:
            raw, count = data(value)
            if count != max_len:
                raise _Abandon
            return raw

        return write_fixed
    prefixes = _prefixes(fs["len_enc"], len_type, max_len)
    if not nibbles:

        def write_counted(value: str) -> bytes:
            raw = to_bytes(value)
            if len(raw) > max_len:
                raise _Abandon
            prefix = prefixes[len(raw)]
            if prefix is None:
                raise _Abandon
            return prefix + raw

        return write_counted

    def write_variable(value: str) -> bytes:
        raw, count = data(value)
        if count > max_len:
            raise _Abandon
        prefix = prefixes[count]
        if prefix is None:
            raise _Abandon
        return prefix + raw

    return write_variable


@cache
def _prefixes(len_enc: str, len_type: int, max_len: int) -> tuple[bytes | None, ...]:
    """Each count's length prefix, made as pyiso8583 makes it; None where it refuses."""
    out: list[bytes | None] = []
    for count in range(max_len + 1):
        prefix: bytes | None
        if len_enc == "bcd":
            text = f"{count:0{len_type * 2}d}"
            prefix = binascii.a2b_hex(text) if len(text) <= len_type * 2 else None
        else:
            try:
                prefix = bytes(f"{count:0{len_type}d}", len_enc)
            except (LookupError, ValueError):
                prefix = None
            if prefix is not None and len(prefix) > len_type:
                prefix = None
        out.append(prefix)
    return tuple(out)
