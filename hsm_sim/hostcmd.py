"""Host-command field codec: a cursor over request bytes, field specs, and the response builder.

A payShield host command is ``command code (2A)`` followed by positional fields with no
separators except where a field is variable-length or optional (``;`` delimiters). Every field
read here fails with an ``HsmError`` naming the field, its offset and the payShield code a
command answers with, so handlers never build error responses themselves.

The same ``FieldSpec`` objects drive parsing (``FieldCursor.read``) and the generated reference
(``hsm_sim.reference``), so the documented layout is the parsed layout.
"""

from __future__ import annotations

import re
import string
from binascii import unhexlify
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from operator import itemgetter

from hsm_sim.errors import ErrorCode, HsmError
from hsm_sim.lmk import KeyScheme, Lmk, format_key_field

_HEX = frozenset(string.hexdigits.upper() + string.hexdigits.lower())
_PRINTABLE = bytes(range(0x20, 0x7F))
_DIGITS = frozenset(string.digits)
_HEX_BYTES = (string.hexdigits.upper() + string.hexdigits.lower()).encode("ascii")
_SCHEMES = {scheme.value: scheme for scheme in KeyScheme}

#: End-message delimiter: what follows it is a trailer the HSM echoes back unchanged.
END_OF_MESSAGE = b"\x19"
MAX_TRAILER = 32


class FieldKind(StrEnum):
    """How a field is encoded on the wire."""

    HEX = "hex"  # fixed number of hex characters
    DIGITS = "digits"  # fixed number of decimal digits
    CHOICE = "choice"  # fixed-length code out of a closed set
    CHARS = "chars"  # fixed number of printable characters
    KEY = "key"  # key notation: 16H | U+32H | T+48H | X+32H | Y+48H
    TEXT = "text"  # printable characters up to a ';' delimiter
    BYTES = "bytes"  # raw bytes whose length was given by a previous field
    BINARY = "binary"  # fixed number of raw bytes (EMV data: PAN/PSN, ATC, ARQC)


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldSpec:
    """One request or response field, as documented and as parsed.

    ``length`` counts characters; for KEY it is ignored (the notation carries it) and for TEXT it
    is the maximum. ``choices`` maps each allowed value to its meaning. ``error`` is the code a
    malformed value answers with (15 unless the field has its own, e.g. 23 for a PIN block format
    code). ``condition`` says when an optional field is present.
    """

    name: str
    kind: FieldKind
    length: int = 0
    description: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    error: ErrorCode = ErrorCode.INPUT_DATA
    condition: str = ""
    key_schemes: str = "ZUT"
    # The allowed codes of a CHOICE field, precomputed: read() runs on every command.
    codes: frozenset[str] = field(init=False, default=frozenset(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "codes", frozenset(code for code, _ in self.choices))

    @property
    def wire_format(self) -> str:
        """The payShield-manual style length/type column, e.g. ``3H`` or ``16H or U+32H``."""
        match self.kind:
            case FieldKind.KEY:
                return " or ".join(_KEY_FORMS[s] for s in self.key_schemes)
            case FieldKind.TEXT:
                return f"up to {self.length}A + ';'"
            case FieldKind.BYTES:
                return "n bytes (length from a previous field)"
            case FieldKind.BINARY:
                return f"{self.length}B"
            case FieldKind.HEX:
                return f"{self.length}H"
            case FieldKind.DIGITS:
                return f"{self.length}N"
            case FieldKind.CHOICE | FieldKind.CHARS:
                return f"{self.length}A"


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandSpec:
    """Everything the reference documents about one host command."""

    code: str
    name: str
    request: tuple[FieldSpec, ...]
    response: tuple[FieldSpec, ...]
    errors: tuple[ErrorCode, ...]
    notes: str = ""
    test_mode_only: bool = False
    # What an error code means for this command where payShield gives it its own meaning
    # (KQ's 04 is "invalid mode flag", not the general "invalid key type code").
    error_meanings: tuple[tuple[ErrorCode, str], ...] = ()

    @property
    def response_code(self) -> str:
        return response_code(self.code)

    def error_description(self, code: ErrorCode) -> str:
        for known, meaning in self.error_meanings:
            if known is code:
                return meaning
        return code.description

    def field(self, name: str) -> FieldSpec:
        for spec in self.request:
            if spec.name == name:
                return spec
        raise KeyError(name)


# Documented wire form of each key scheme (a leading hex digit means an untagged single key).
# "Z"+16H is accepted on input too, but single-length keys are always written untagged.
_KEY_FORMS: dict[str, str] = {"Z": "16H", "U": "U+32H", "T": "T+48H", "X": "X+32H", "Y": "Y+48H"}


@dataclass(frozen=True, slots=True)
class KeyField:
    """A key as it appeared in a request: its scheme and its encrypted bytes.

    Z is the untagged 16H single-length form; U/T are variant double/triple; X/Y are ANSI X9.17
    double/triple (only meaningful under a ZMK or TMK). The repr hides the bytes even though
    they are encrypted: key material stays out of logs.
    """

    scheme: KeyScheme
    enc: bytes

    def __repr__(self) -> str:
        return f"KeyField(scheme={self.scheme.value!r}, length={len(self.enc)})"

    @property
    def text(self) -> str:
        return format_key_field(self.scheme, self.enc)


class FixedRun:
    """Consecutive fixed-length HEX, DIGITS and CHOICE fields, read with one match.

    ``FieldCursor.read_run`` checks the whole run against one compiled pattern and slices the
    values out; only when that fails does it read the fields one by one with ``read``, which
    raises the error of the first bad field. So a run answers exactly what reading its fields in
    order answers, error codes and reasons included, at a fraction of the calls.
    """

    __slots__ = ("_pattern", "_values", "length", "specs")

    def __init__(self, *specs: FieldSpec) -> None:
        if len(specs) < 2:
            raise TypeError("a fixed run is two or more fields: read one field with read()")
        parts: list[bytes] = []
        slices: list[slice] = []
        start = 0
        for spec in specs:
            n = spec.length
            match spec.kind:
                case FieldKind.HEX:
                    parts.append(b"[0-9A-Fa-f]{%d}" % n)
                case FieldKind.DIGITS:
                    parts.append(b"[0-9]{%d}" % n)
                case FieldKind.CHOICE:
                    # take_choice upper-cases before it compares: accept either case here too.
                    codes = sorted(c for c in spec.codes if len(c) == n)
                    if not codes:  # an empty alternation would match nothing as a value
                        raise TypeError(f"{spec.name}: a choice with no {n}-character code")
                    parts.append(b"(?i:" + b"|".join(re.escape(c.encode("ascii")) for c in codes) + b")")
                case _:
                    raise TypeError(f"{spec.name}: a {spec.kind} field cannot be part of a fixed run")
            slices.append(slice(start, start + n))
            start += n
        self.specs = specs
        self.length = start
        self._pattern = re.compile(b"".join(parts))
        # Slices the run's text into its values in one C call (a tuple, as there are 2 or more).
        self._values: Callable[[str], tuple[str, ...]] = itemgetter(*slices)


# First byte of a key field -> (scheme tag, characters the tag takes, hex characters after it).
_KEY_TAG_OF: dict[bytes, tuple[str, int, int]] = {
    **{bytes([c]): ("Z", 0, 16) for c in _HEX_BYTES},
    **{
        tag.encode("ascii"): (tag.upper(), 1, 2 * _SCHEMES[tag.upper()].key_length)
        for tag in "ZUTXYzutxy"
    },
}


class FieldCursor:
    """Reads host-command fields left to right from the bytes after the command code.

    Offsets in error reasons count from the start of the command code, matching what an
    operator sees in a trace.
    """

    __slots__ = ("_data", "_pos", "trailer")

    _BASE = 2  # the command code precedes the fields

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0
        self.trailer = b""

    @property
    def offset(self) -> int:
        return self._pos + self._BASE

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def at_end(self) -> bool:
        """True when no field data is left (an end-message trailer counts as the end)."""
        return self._data[self._pos : self._pos + 1] in (b"", END_OF_MESSAGE)

    def peek(self, n: int = 1) -> str:
        """The next ``n`` characters without consuming them ('' past the end)."""
        return self._data[self._pos : self._pos + n].decode("latin-1")

    def _short(self, name: str, wanted: int) -> HsmError:
        return HsmError(
            ErrorCode.INPUT_DATA,
            f"{name}: expected {wanted} characters at offset {self.offset}, only {self.remaining} left",
        )

    def take_bytes(self, n: int, name: str) -> bytes:
        if n < 0 or self.remaining < n:
            raise self._short(name, n)
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def take(self, n: int, name: str) -> str:
        """``n`` printable ASCII characters."""
        pos = self._pos
        end = pos + n
        if n < 0 or end > len(self._data):
            raise self._short(name, n)
        raw = self._data[pos:end]
        if raw.translate(None, _PRINTABLE):  # anything left after deleting printables is not
            raise HsmError(ErrorCode.INPUT_DATA, f"{name}: non-printable data at offset {pos + self._BASE}")
        self._pos = end
        return raw.decode("ascii")

    def take_hex_text(self, n: int, name: str, code: ErrorCode = ErrorCode.INPUT_DATA) -> str:
        """``n`` hex characters, upper-cased, as text."""
        pos = self._pos
        raw = self._data[pos : pos + n]
        if len(raw) == n and n >= 0 and not raw.translate(None, _HEX_BYTES):  # well formed: done
            self._pos = pos + n
            return raw.decode("ascii").upper()
        start = self.offset  # the checked way, for the error
        text = self.take(n, name)
        if not _HEX.issuperset(text):
            raise HsmError(code, f"{name}: expected {n} hex characters at offset {start}")
        return text.upper()

    def take_hex(self, n: int, name: str, code: ErrorCode = ErrorCode.INPUT_DATA) -> bytes:
        """``n`` hex characters decoded to ``n // 2`` bytes."""
        pos = self._pos
        end = pos + n
        if n < 0 or end > len(self._data):
            raise self._short(name, n)
        raw = self._data[pos:end]
        # Deleting every hex digit must leave nothing (fromhex alone would accept spaces).
        if raw.translate(None, _HEX_BYTES) or n % 2:
            raise HsmError(code, f"{name}: expected {n} hex characters at offset {pos + self._BASE}")
        self._pos = end
        return bytes.fromhex(raw.decode("ascii"))

    def take_digits(self, n: int, name: str, code: ErrorCode = ErrorCode.INPUT_DATA) -> str:
        start = self.offset
        text = self.take(n, name)
        if not _DIGITS.issuperset(text):
            raise HsmError(code, f"{name}: expected {n} decimal digits at offset {start}")
        return text

    def take_choice(
        self, n: int, name: str, allowed: Collection[str], code: ErrorCode = ErrorCode.INPUT_DATA
    ) -> str:
        start = self.offset
        text = self.take(n, name).upper()
        if text not in allowed:
            raise HsmError(code, f"{name}: value not allowed at offset {start}")
        return text

    def take_key(self, name: str, schemes: str = "ZUT") -> KeyField:
        """A key in payShield notation: 16H, or a scheme tag followed by 32H or 48H."""
        data = self._data
        pos = self._pos
        # Fast path for a well-formed key; anything else goes the checked way for its error.
        form = _KEY_TAG_OF.get(data[pos : pos + 1])
        if form is not None and form[0] in schemes:
            tag, skip, n = form
            start = pos + skip
            raw = data[start : start + n]
            if len(raw) == n and not raw.translate(None, _HEX_BYTES):
                self._pos = start + n
                return KeyField(_SCHEMES[tag], unhexlify(raw))
        return self._take_key_checked(name, schemes)

    def _take_key_checked(self, name: str, schemes: str) -> KeyField:
        first = self.peek()
        if not first:
            raise self._short(name, 16)
        tag = first.upper()
        if first in _HEX:
            tag = "Z"
        elif tag not in _KEY_FORMS:
            raise HsmError(ErrorCode.KEY_SCHEME, f"{name}: invalid key scheme tag at offset {self.offset}")
        else:
            self._pos += 1
        if tag not in schemes:
            raise HsmError(ErrorCode.KEY_SCHEME, f"{name}: key scheme {tag} not accepted for this field")
        scheme = _SCHEMES[tag]
        return KeyField(scheme, self.take_hex(scheme.key_length * 2, name))

    def take_until(self, delimiter: str, name: str, max_len: int) -> str:
        """Characters up to ``delimiter`` (consumed, not returned); at most ``max_len`` of them."""
        mark = delimiter.encode("ascii")
        end = self._data.find(mark, self._pos, self._pos + max_len + 1)
        if end < 0:
            raise HsmError(
                ErrorCode.INPUT_DATA,
                f"{name}: no '{delimiter}' within {max_len} characters of offset {self.offset}",
            )
        text = self.take(end - self._pos, name)
        self._pos += len(mark)
        return text

    def take_if(self, literal: str) -> bool:
        """Consume ``literal`` if it comes next; report whether it did (optional delimiters)."""
        raw = literal.encode("ascii")
        if self._data.startswith(raw, self._pos):
            self._pos += len(raw)
            return True
        return False

    def read(self, spec: FieldSpec, *, length: int | None = None) -> str:
        """Read a HEX, DIGITS, CHOICE or TEXT field as its spec says, returning its text."""
        n = spec.length if length is None else length
        match spec.kind:
            case FieldKind.HEX:
                return self.take_hex_text(n, spec.name, spec.error)
            case FieldKind.DIGITS:
                return self.take_digits(n, spec.name, spec.error)
            case FieldKind.CHOICE:
                return self.take_choice(n, spec.name, spec.codes, spec.error)
            case FieldKind.CHARS:
                return self.take(n, spec.name)
            case FieldKind.TEXT:
                return self.take_until(";", spec.name, n)
            case FieldKind.BYTES | FieldKind.BINARY:
                return self.take_bytes(n, spec.name).decode("latin-1")
            case FieldKind.KEY:  # pragma: no cover - keys have their own typed reader
                raise TypeError("use read_key() for key fields")

    def read_run(self, run: FixedRun) -> tuple[str, ...]:
        """The fields of ``run`` in order, as ``read`` would return them one by one."""
        pos = self._pos
        if run._pattern.match(self._data, pos) is not None:  # match anchors at pos
            end = pos + run.length
            text = self._data[pos:end].decode("ascii").upper()  # HEX and CHOICE are upper-cased
            self._pos = end
            return run._values(text)
        return tuple(self.read(spec) for spec in run.specs)  # raises the first field's error

    def read_key(self, spec: FieldSpec) -> KeyField:
        return self.take_key(spec.name, spec.key_schemes)

    def finish(self) -> None:
        """Require the message to end here, keeping an optional X'19' trailer to echo back."""
        if self._pos == len(self._data):
            return
        rest = self._data[self._pos :]
        if rest.startswith(END_OF_MESSAGE) and len(rest) - 1 <= MAX_TRAILER:
            self.trailer = rest
            self._pos = len(self._data)
            return
        raise HsmError(
            ErrorCode.INPUT_DATA,
            f"{len(rest)} unexpected characters after the last field at offset {self.offset}",
        )


# --- responses ----------------------------------------------------------------------------

_CODE_ALPHABET = string.digits + string.ascii_uppercase


@lru_cache(maxsize=1024)
def response_code(command: str) -> str:
    """payShield convention: the response code is the command code with its second character
    incremented (A0->A1, NC->ND, M8->M9, M9->MA). A second character of Z wraps to 0."""
    if len(command) != 2 or command[1].upper() not in _CODE_ALPHABET:
        raise ValueError(f"not a host command code: {command!r}")
    nxt = _CODE_ALPHABET[(_CODE_ALPHABET.index(command[1].upper()) + 1) % len(_CODE_ALPHABET)]
    return command[0].upper() + nxt


Field = str | bytes


@lru_cache(maxsize=1024)
def _response_head(command: str, code: str) -> bytes:
    return (response_code(command) + code).encode("ascii")


@dataclass(frozen=True, slots=True)
class Reply:
    """What a handler answers: an error code (00, or 01 for a failed verification) and fields."""

    code: ErrorCode = ErrorCode.NO_ERROR
    fields: tuple[Field, ...] = field(default=())


def ok(*fields: Field) -> Reply:
    return Reply(ErrorCode.NO_ERROR, tuple(fields))


#: The two answers of a verification without fields, built once: a Reply is frozen, so one
#: instance serves every command, and building a frozen dataclass costs more than the check.
VERIFIED = Reply(ErrorCode.NO_ERROR)
NOT_VERIFIED = Reply(ErrorCode.VERIFICATION_FAILURE)


def verdict(passed: bool) -> Reply:
    """00 when a verification passed, 01 when it did not."""
    return VERIFIED if passed else NOT_VERIFIED


def build_response(command: str, code: ErrorCode | str, *fields: Field) -> bytes:
    """``response code (2A) + error code (2A) + fields``; text fields are ASCII."""
    head = _response_head(command, code)
    if not fields:
        return head
    return head + b"".join(f if isinstance(f, bytes) else f.encode("ascii") for f in fields)


@dataclass(frozen=True, slots=True)
class HsmContext:
    """What a handler may use besides its request: the LMK set and the HSM's settings."""

    lmk: Lmk
    test_mode: bool = False
    firmware: str = "0007-E000"


Handler = Callable[[HsmContext, FieldCursor], Reply]


@dataclass(frozen=True, slots=True)
class Command:
    """A registered host command: its documented spec and the function that executes it."""

    spec: CommandSpec
    handler: Handler
