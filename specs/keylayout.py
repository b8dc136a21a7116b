"""Field 62 of a sign-in answer: where each working key and its check value sits, per key
mode (docs/cup-pos.md, "Field 62"). The layouts are data in the message catalogue
(``[kinds.signin.field62]``); this module parses their text, and builds and parses field 62
by them. Errors name parts and lengths, never a key byte.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


class KeyName(StrEnum):
    """The working keys a sign-in answer carries in field 62."""

    PIK = "PIK"
    MAK = "MAK"
    TDK = "TDK"


class PartRole(StrEnum):
    KEY = "key"  # a key's ciphertext under the TMK
    CHECK = "check"  # the first bytes of E(clear key, 8 zero bytes)
    ZERO = "zero"  # filler, all zero


class KeyLayoutError(Exception):
    """Field 62 does not fit its layout. The reason names parts and lengths, never a key byte."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class LayoutSyntaxError(ValueError):
    """A layout's text is not a layout; ``index`` is the part at fault, None for the whole."""

    def __init__(self, reason: str, index: int | None = None) -> None:
        self.reason = reason
        self.index = index
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class LayoutPart:
    role: PartRole
    length: int
    key: KeyName | None = None  # None for filler

    def label(self) -> str:
        if self.role is PartRole.ZERO:
            return f"zero({self.length})"
        suffix = " CV" if self.role is PartRole.CHECK else ""
        return f"{self.key}{suffix}({self.length})"


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Field 62 of a sign-in answer for one key mode: the parts in wire order."""

    mode: str
    parts: tuple[LayoutPart, ...]

    @property
    def length(self) -> int:
        return sum(p.length for p in self.parts)

    @property
    def keys(self) -> tuple[KeyName, ...]:
        return tuple(p.key for p in self.parts if p.role is PartRole.KEY and p.key is not None)

    def key_length(self, key: KeyName) -> int:
        for part in self.parts:
            if part.role is PartRole.KEY and part.key is key:
                return part.length
        raise KeyError(key)

    def describe(self) -> str:
        return " + ".join(p.label() for p in self.parts)

    def build(self, keys: Mapping[KeyName, tuple[bytes, bytes]]) -> bytes:
        """Field 62 from each key's (ciphertext under the TMK, check value); a check value
        longer than its part is cut to the part (UnionPay sends the first 4 bytes)."""
        out = bytearray()
        for part in self.parts:
            if part.role is PartRole.ZERO:
                out += bytes(part.length)
                continue
            assert part.key is not None
            if part.key not in keys:
                raise KeyLayoutError(f"sign-in {self.mode} needs a {part.key}")
            encrypted, check = keys[part.key]
            value = encrypted if part.role is PartRole.KEY else check[: part.length]
            if len(value) != part.length:
                raise KeyLayoutError(f"{part.label()} given {len(value)} bytes")
            out += value
        return bytes(out)

    def parse(self, data: bytes, *, strict: bool = False) -> dict[KeyName, tuple[bytes, bytes]]:
        """Each key's (ciphertext, check value); ``strict`` also wants the filler zero."""
        if len(data) != self.length:
            raise KeyLayoutError(f"field 62 is {len(data)} bytes, sign-in {self.mode} needs {self.length}")
        encrypted: dict[KeyName, bytes] = {}
        checks: dict[KeyName, bytes] = {}
        pos = 0
        for part in self.parts:
            chunk = data[pos : pos + part.length]
            if part.role is PartRole.ZERO:
                if strict and any(chunk):
                    raise KeyLayoutError(f"field 62 bytes {pos}..{pos + part.length - 1} (filler) are not zero")
            elif part.key is not None:
                (encrypted if part.role is PartRole.KEY else checks)[part.key] = chunk
            pos += part.length
        return {key: (encrypted[key], checks[key]) for key in encrypted}


def parse_layout(mode: str, texts: Sequence[str]) -> KeyLayout:
    """A layout from its catalogue text: parts "PIK 16", "PIK check 4", "zero 8", in order."""
    parts: list[LayoutPart] = []
    for index, text in enumerate(texts):
        words = text.split()
        if not words or not words[-1].isdigit() or int(words[-1]) < 1:
            raise LayoutSyntaxError(f"{text!r} must end with a length in bytes", index)
        length = int(words[-1])
        head = words[:-1]
        if head == ["zero"]:
            parts.append(LayoutPart(PartRole.ZERO, length))
            continue
        if len(head) not in (1, 2) or head[0] not in KeyName.__members__ or head[1:] not in ([], ["check"]):
            raise LayoutSyntaxError(f"{text!r} is not 'KEY n', 'KEY check n' or 'zero n' (KEY: PIK, MAK, TDK)", index)
        key = KeyName(head[0])
        role = PartRole.CHECK if head[1:] else PartRole.KEY
        if role is PartRole.KEY and length not in (8, 16, 24):
            raise LayoutSyntaxError(f"a DES key is 8, 16 or 24 bytes, not {length}", index)
        if role is PartRole.CHECK and length > 8:
            raise LayoutSyntaxError("a check value is at most 8 bytes", index)
        parts.append(LayoutPart(role, length, key))
    for key in {p.key for p in parts if p.key is not None}:
        if [p.role for p in parts if p.key is key] != [PartRole.KEY, PartRole.CHECK]:
            raise LayoutSyntaxError(f"{key} needs its key and then its check value, once each")
    if not {KeyName.PIK, KeyName.MAK} <= {p.key for p in parts}:
        raise LayoutSyntaxError("a sign-in layout carries at least a PIK and a MAK")
    return KeyLayout(mode, tuple(parts))
