"""Local Master Key set (Thales variant LMKs) and the host-command key notation.

A key of type ``VPP`` (variant digit V, LMK code PP) is stored under the LMK pair that code PP
names. The key-type variant is XORed into the first byte of the pair's left key; for double- and
triple-length keys each 8-byte component is also encrypted under its own scheme variant, XORed
into the first byte of the pair's right key. This is how every public Thales simulator behaves
(see ``tests/hsm_sim/test_lmk.py`` for the published examples it reproduces).
"""

from __future__ import annotations

import json
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hsm_sim.ciphers import tdes_ecb_decrypt, tdes_ecb_encrypt
from hsm_sim.errors import ErrorCode, HsmError

PAIR_NAMES: tuple[str, ...] = tuple(f"{i:02d}-{i + 1:02d}" for i in range(0, 40, 2))

# Key-type variants 1..9 (variant 0 leaves the LMK unchanged).
KEY_TYPE_VARIANTS: tuple[int, ...] = (0x00, 0xA6, 0x5A, 0x6A, 0xDE, 0x2B, 0x50, 0x74, 0x9C, 0xFA)
# Scheme variants, one per 8-byte component of a double- or triple-length key.
DOUBLE_KEY_VARIANTS: tuple[int, ...] = (0xA6, 0x5A)
TRIPLE_KEY_VARIANTS: tuple[int, ...] = (0x6A, 0xDE, 0x2B)

# LMK code (last two characters of a key type) -> LMK pair.
LMK_CODES: Mapping[str, str] = MappingProxyType(
    {
        "00": "04-05",
        "01": "06-07",
        "02": "14-15",
        "03": "16-17",
        "04": "18-19",
        "05": "20-21",
        "06": "22-23",
        "07": "24-25",
        "08": "26-27",
        "09": "28-29",
        "0A": "30-31",
        "0B": "32-33",
        "0C": "34-35",
        "0D": "36-37",
        "0E": "38-39",
    }
)

# The public Thales test LMK set (variant LMKs), as shipped by every payShield simulator.
_TEST_LMK_PAIRS: dict[str, str] = {
    "00-01": "01010101010101017902CD1FD36EF8BA",
    "02-03": "20202020202020203131313131313131",
    "04-05": "40404040404040405151515151515151",
    "06-07": "61616161616161617070707070707070",
    "08-09": "80808080808080809191919191919191",
    "10-11": "A1A1A1A1A1A1A1A1B0B0B0B0B0B0B0B0",
    "12-13": "C1C1010101010101D0D0010101010101",
    "14-15": "E0E0010101010101F1F1010101010101",
    "16-17": "1C587F1C13924FEF0101010101010101",
    "18-19": "01010101010101010101010101010101",
    "20-21": "02020202020202020404040404040404",
    "22-23": "07070707070707071010101010101010",
    "24-25": "13131313131313131515151515151515",
    "26-27": "16161616161616161919191919191919",
    "28-29": "1A1A1A1A1A1A1A1A1C1C1C1C1C1C1C1C",
    "30-31": "23232323232323232525252525252525",
    "32-33": "26262626262626262929292929292929",
    "34-35": "2A2A2A2A2A2A2A2A2C2C2C2C2C2C2C2C",
    "36-37": "2F2F2F2F2F2F2F2F3131313131313131",
    "38-39": "01010101010101010101010101010101",
}

_HEX = frozenset(string.hexdigits)


class KeyScheme(StrEnum):
    """Key scheme tag of the host-command key notation.

    Z/U/T are the variant schemes (single, double, triple); X/Y are the X9.17 (no variant)
    double and triple schemes, which only differ from U/T when a key travels under a ZMK.
    """

    Z = "Z"
    U = "U"
    T = "T"
    X = "X"
    Y = "Y"

    @property
    def key_length(self) -> int:
        return _SCHEME_LENGTHS[self]

    @property
    def is_variant(self) -> bool:
        return self in (KeyScheme.Z, KeyScheme.U, KeyScheme.T)

    @classmethod
    def for_length(cls, length: int, *, variant: bool = True) -> KeyScheme:
        """The scheme a key of ``length`` bytes is written with (U/T, or X/Y if not variant)."""
        if length == 8:
            return cls.Z
        if length == 16:
            return cls.U if variant else cls.X
        if length == 24:
            return cls.T if variant else cls.Y
        raise HsmError(ErrorCode.KEY_LENGTH, f"no key scheme for a {length}-byte key")


_SCHEME_LENGTHS: Mapping[KeyScheme, int] = MappingProxyType(
    {KeyScheme.Z: 8, KeyScheme.U: 16, KeyScheme.T: 24, KeyScheme.X: 16, KeyScheme.Y: 24}
)


def _xor_first(key: bytes, value: int) -> bytes:
    return bytes([key[0] ^ value]) + key[1:]


@lru_cache(maxsize=1024)
def _component_lmk(pair: bytes, type_variant: int, scheme_variant: int) -> bytes:
    return _xor_first(pair[:8], type_variant) + _xor_first(pair[8:], scheme_variant)


def _scheme_variants(length: int) -> tuple[int, ...]:
    if length == 8:
        return (0,)
    if length == 16:
        return DOUBLE_KEY_VARIANTS
    if length == 24:
        return TRIPLE_KEY_VARIANTS
    raise HsmError(ErrorCode.KEY_LENGTH, f"key must be 8, 16 or 24 bytes, got {length}")


@lru_cache(maxsize=256)
def parse_key_type(key_type: str) -> tuple[str, int]:
    """Split a three-character key type code into (LMK pair name, key-type variant)."""
    if len(key_type) != 3 or key_type[0] not in string.digits:
        raise HsmError(ErrorCode.INVALID_KEY_TYPE, "key type code must be a digit and an LMK code")
    pair = LMK_CODES.get(key_type[1:].upper())
    if pair is None:
        raise HsmError(ErrorCode.INVALID_KEY_TYPE, f"unknown LMK code in key type {key_type!r}")
    return pair, KEY_TYPE_VARIANTS[int(key_type[0])]


@dataclass(frozen=True, slots=True)
class Lmk:
    """A set of 20 double-length LMK pairs, named "00-01" .. "38-39"."""

    pairs: Mapping[str, bytes] = field(repr=False, hash=False)

    def __post_init__(self) -> None:
        missing = [name for name in PAIR_NAMES if name not in self.pairs]
        if missing:
            raise HsmError(ErrorCode.INVALID_LMK, f"LMK pair {missing[0]} missing")
        extra = sorted(set(self.pairs) - set(PAIR_NAMES))
        if extra:
            raise HsmError(ErrorCode.INVALID_LMK, f"unknown LMK pair name {extra[0]!r}")
        for name in PAIR_NAMES:
            value = self.pairs[name]
            if not isinstance(value, bytes) or len(value) != 16:
                raise HsmError(ErrorCode.INVALID_LMK, f"LMK pair {name} must be 16 bytes")
        object.__setattr__(self, "pairs", MappingProxyType({n: bytes(self.pairs[n]) for n in PAIR_NAMES}))

    @classmethod
    def default(cls) -> Lmk:
        """The public Thales test LMK set."""
        return cls({name: bytes.fromhex(value) for name, value in _TEST_LMK_PAIRS.items()})

    @classmethod
    def load(cls, path: str | Path) -> Lmk:
        """Read an LMK set from a TOML or JSON file holding ``pairs = {"00-01" = "<32 hex>"}``."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise HsmError(ErrorCode.INVALID_LMK, f"{p}: cannot read LMK file ({exc.strerror})") from exc
        except UnicodeDecodeError:
            raise HsmError(ErrorCode.INVALID_LMK, f"{p}: not UTF-8 text") from None
        doc: Any
        try:
            doc = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            kind = "JSON" if p.suffix.lower() == ".json" else "TOML"
            # from None: a parser message may quote the offending line, i.e. key material.
            raise HsmError(ErrorCode.INVALID_LMK, f"{p}: not valid {kind} ({type(exc).__name__})") from None
        pairs = doc.get("pairs") if isinstance(doc, dict) else None
        if not isinstance(pairs, dict):
            raise HsmError(ErrorCode.INVALID_LMK, f"{p}: no 'pairs' table")
        decoded: dict[str, bytes] = {}
        for name in PAIR_NAMES:
            value = pairs.get(name)
            if value is None:
                raise HsmError(ErrorCode.INVALID_LMK, f"{p}: pair {name} missing")
            if not isinstance(value, str) or len(value) != 32 or not set(value) <= _HEX:
                raise HsmError(ErrorCode.INVALID_LMK, f"{p}: pair {name} must be 32 hex digits")
            decoded[name] = bytes.fromhex(value)
        extra = sorted(set(pairs) - set(PAIR_NAMES))
        if extra:
            raise HsmError(ErrorCode.INVALID_LMK, f"{p}: unknown pair name {extra[0]!r}")
        return cls(decoded)

    def pair(self, name: str) -> bytes:
        """The clear 16-byte LMK pair ``name`` (e.g. "02-03" for PINs under LMK)."""
        try:
            return self.pairs[name]
        except KeyError:
            raise HsmError(ErrorCode.INVALID_LMK, f"unknown LMK pair {name!r}") from None

    def encrypt_key(self, key_type: str, key: bytes) -> bytes:
        """Encrypt a clear key for storage under the LMK pair and variant of ``key_type``.

        The scheme follows from the key length: 8 bytes single, 16 bytes U, 24 bytes T.
        """
        return self._apply(key_type, key, encrypt=True)

    def decrypt_key(self, key_type: str, encrypted: bytes) -> bytes:
        """Inverse of :meth:`encrypt_key` (parity is the caller's to check)."""
        pair_name, type_variant = parse_key_type(key_type)
        return _decrypt_cached(self.pairs[pair_name], type_variant, bytes(encrypted))

    def _apply(self, key_type: str, data: bytes, *, encrypt: bool) -> bytes:
        pair_name, type_variant = parse_key_type(key_type)
        return _variant_crypt(self.pairs[pair_name], type_variant, data, encrypt=encrypt)

    def check_value(self) -> bytes:
        """The 8-byte LMK check value reported by NC (hex it for the 16 characters).

        payShield does not publish its algorithm. We use the one the open-source Thales
        simulator uses, so clients that pinned its value keep working: XOR all 20 pairs
        together, then XOR the left and right halves of the result. For the test LMK this
        gives 7B44AC1DDEE2A94B, the value in the published simulator walkthroughs.
        """
        acc = bytes(16)
        for name in PAIR_NAMES:
            acc = bytes(a ^ b for a, b in zip(acc, self.pairs[name], strict=True))
        return bytes(a ^ b for a, b in zip(acc[:8], acc[8:], strict=True))


def parse_key_field(text: str) -> tuple[KeyScheme, bytes]:
    """Parse host-command key notation: 16 hex, or Z/U/T/X/Y followed by 16/32/48 hex.

    Unprefixed 32 or 48 hex digits are the legacy X9.17 forms and parse as X / Y.
    """
    if not text:
        raise HsmError(ErrorCode.INPUT_DATA, "key field is empty")
    first = text[0]
    if first in _HEX:
        body = text
        by_length = {16: KeyScheme.Z, 32: KeyScheme.X, 48: KeyScheme.Y}
        scheme = by_length.get(len(body))
        if scheme is None:
            raise HsmError(ErrorCode.KEY_LENGTH, f"key field has {len(body)} hex digits")
    else:
        try:
            scheme = KeyScheme(first)
        except ValueError:
            raise HsmError(ErrorCode.KEY_SCHEME, "key scheme tag not one of Z U T X Y") from None
        body = text[1:]
        if len(body) != 2 * scheme.key_length:
            raise HsmError(
                ErrorCode.KEY_LENGTH,
                f"scheme {scheme} needs {2 * scheme.key_length} hex digits, got {len(body)}",
            )
    if not set(body) <= _HEX:
        raise HsmError(ErrorCode.INPUT_DATA, "key field is not hexadecimal")
    return scheme, bytes.fromhex(body)


def format_key_field(scheme: KeyScheme, encrypted: bytes) -> str:
    """Write a key in host-command notation (single-length keys carry no tag)."""
    if len(encrypted) != scheme.key_length:
        raise HsmError(
            ErrorCode.KEY_LENGTH,
            f"scheme {scheme} needs a {scheme.key_length}-byte key, got {len(encrypted)}",
        )
    body = encrypted.hex().upper()
    return body if scheme is KeyScheme.Z else f"{scheme}{body}"


def _variant_crypt(pair: bytes, type_variant: int, data: bytes, *, encrypt: bool) -> bytes:
    op = tdes_ecb_encrypt if encrypt else tdes_ecb_decrypt
    out = bytearray()
    for i, scheme_variant in enumerate(_scheme_variants(len(data))):
        lmk = _component_lmk(pair, type_variant, scheme_variant)
        out += op(lmk, data[8 * i : 8 * i + 8])
    return bytes(out)


# Working keys arrive under the LMK with every command; like a real HSM's key cache, keep the
# clear values of recently used ones inside the HSM process (never outside it) so a PIN
# translation does not pay two variant decryptions per request.
@lru_cache(maxsize=8192)
def _decrypt_cached(pair: bytes, type_variant: int, encrypted: bytes) -> bytes:
    return _variant_crypt(pair, type_variant, encrypted, encrypt=False)
