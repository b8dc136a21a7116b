"""ISO 9564-1 PIN blocks, formats 0-4 (clear blocks; encryption is the caller's).

Formats 0-3 are 8-byte blocks. Format 4 is the AES format: ``build_pinblock`` returns its
16-byte plaintext PIN field, and ``build_iso4_encrypted`` / ``parse_iso4_encrypted`` do the
whole encipher-XOR-encipher construction.

PAN arguments take the full PAN. A 12-digit argument is taken as already being the payShield
"account number" field (rightmost 12 digits excluding the check digit), since no card PAN is
that short and host commands carry exactly that field.
"""

from __future__ import annotations

import re
import secrets
from enum import IntEnum
from functools import lru_cache

from hsm_sim.ciphers import aes_ecb_decrypt, aes_ecb_encrypt
from hsm_sim.cryptoerrors import InputError, PinBlockContentError, PinBlockFormatError, PinLengthError

MIN_PIN_LENGTH = 4
MAX_PIN_LENGTH = 12
_DIGITS = frozenset("0123456789")
_HEX_UPPER = "0123456789ABCDEF"


class PinBlockFormat(IntEnum):
    """ISO 9564-1 format code (the control nibble)."""

    ISO0 = 0
    ISO1 = 1
    ISO2 = 2
    ISO3 = 3
    ISO4 = 4


def _check_pin(pin: str) -> None:
    if not MIN_PIN_LENGTH <= len(pin) <= MAX_PIN_LENGTH:
        raise PinLengthError(
            f"PIN has {len(pin)} digits, allowed {MIN_PIN_LENGTH}..{MAX_PIN_LENGTH}",
        )
    if not _DIGITS.issuperset(pin):
        raise InputError("PIN contains a non-decimal character")


def _check_pan(pan: str) -> None:
    if not pan:
        raise InputError("this PIN block format needs the PAN")
    if not _DIGITS.issuperset(pan):
        raise InputError("PAN contains a non-decimal character")
    if len(pan) > 19:
        raise InputError(f"PAN has {len(pan)} digits, at most 19 allowed")


def pan12(pan: str) -> str:
    """The 12 PAN digits ISO formats 0 and 3 use: rightmost 12 excluding the check digit.

    A 12-digit argument is returned unchanged (it already is that field); shorter PANs are
    zero-padded on the left after dropping the check digit.
    """
    _check_pan(pan)
    if len(pan) == 12:
        return pan
    return pan[:-1][-12:].rjust(12, "0")


def _random_nibbles(n: int, alphabet: str) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _xor(a: bytes, b: bytes) -> bytes:
    if len(a) != len(b):
        raise ValueError("XOR of blocks of different lengths")
    # One big-integer XOR instead of a Python loop per byte: this sits on every PIN translation.
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


@lru_cache(maxsize=4096)
def _pan_block_03(pan: str) -> bytes:
    return bytes.fromhex("0000" + pan12(pan))


@lru_cache(maxsize=4096)
def _pan_int_03(pan: str) -> int:
    return int.from_bytes(_pan_block_03(pan), "big")


def build_pinblock(fmt: PinBlockFormat | int, pin: str, pan: str = "") -> bytes:
    """Build a clear PIN block (format 4: the 16-byte plaintext PIN field)."""
    fmt = _format(fmt)
    _check_pin(pin)
    head = f"{int(fmt)}{len(pin):X}{pin}"
    if fmt is PinBlockFormat.ISO4:
        field = head + "A" * (16 - len(head)) + _random_nibbles(16, _HEX_UPPER)
        return bytes.fromhex(field)
    fill_n = 16 - len(head)
    if fmt is PinBlockFormat.ISO0:
        return _xor(bytes.fromhex(head + "F" * fill_n), _pan_block_03(pan))
    if fmt is PinBlockFormat.ISO1:
        return bytes.fromhex(head + _random_nibbles(fill_n, _HEX_UPPER))
    if fmt is PinBlockFormat.ISO2:
        return bytes.fromhex(head + "F" * fill_n)
    return _xor(bytes.fromhex(head + _random_nibbles(fill_n, "ABCDEF")), _pan_block_03(pan))


def _format(fmt: PinBlockFormat | int) -> PinBlockFormat:
    if type(fmt) is PinBlockFormat:
        return fmt
    try:
        return PinBlockFormat(fmt)
    except ValueError:
        raise PinBlockFormatError(f"PIN block format {fmt!r} unknown") from None


def parse_pinblock(block: bytes, pan: str = "", fmt: PinBlockFormat | int | None = None) -> str:
    """Recover the PIN from a clear PIN block, validating every nibble.

    ``fmt`` None takes the format from the control nibble. Errors: 23 wrong or unknown
    format code, 24 PIN length outside 4..12, 20 non-decimal PIN digit or wrong fill.
    """
    expected = fmt if type(fmt) is PinBlockFormat else None if fmt is None else _format(fmt)
    if len(block) not in (8, 16):
        raise InputError(f"PIN block must be 8 or 16 bytes, got {len(block)}")
    control = block[0] >> 4
    actual = _BY_CONTROL.get(control)
    if actual is None:
        raise PinBlockFormatError(f"control nibble {control:X} unknown")
    if expected is not None and actual is not expected:
        raise PinBlockFormatError(
            f"control nibble {control:X} does not match format {int(expected)}",
        )
    want_len = 16 if control == 4 else 8
    if len(block) != want_len:
        raise InputError(f"format {control} PIN block must be {want_len} bytes")
    # Tables are keyed by the control nibble (an int): hashing an enum member is a Python call.
    if control in _PAN_CONTROLS:  # 8 bytes, checked above: XOR the PAN field as one integer
        nibbles = f"{int.from_bytes(block, 'big') ^ _pan_int_03(pan):016X}"
    else:
        nibbles = block.hex().upper()
    if _WELL_FORMED[control].fullmatch(nibbles) is not None:  # the usual case, in one match
        return nibbles[2 : 2 + _NIBBLE[nibbles[1]]]
    n = _NIBBLE[nibbles[1]]  # something is wrong: find what, in the order the errors are ranked
    if not MIN_PIN_LENGTH <= n <= MAX_PIN_LENGTH:
        raise PinLengthError(f"PIN length nibble {n} outside 4..12")
    pin = nibbles[2 : 2 + n]
    if not _DIGITS.issuperset(pin):
        raise PinBlockContentError("PIN digit not decimal")
    if not _FILL[control].issuperset(nibbles[2 + n : 16]):
        raise PinBlockContentError(f"fill digits invalid for format {control}")
    return pin


_BY_CONTROL = {int(f): f for f in PinBlockFormat}
_PAN_CONTROLS = frozenset((PinBlockFormat.ISO0.value, PinBlockFormat.ISO3.value))
_NIBBLE = {digit: int(digit, 16) for digit in _HEX_UPPER}
_FILL_CLASS = {0: "F", 1: "0-9A-F", 2: "F", 3: "A-F", 4: "A"}
#: A valid block's nibbles by control nibble: length nibble, that many decimal digits, then fill
#: (to 16 nibbles; format 4's random second half is not checked, as below).
_WELL_FORMED = {
    control: re.compile(
        "|".join(
            f"{control}{length:X}[0-9]{{{length}}}[{fill}]{{{16 - 2 - length}}}"
            + ("[0-9A-F]{16}" if control == 4 else "")
            for length in range(MIN_PIN_LENGTH, MAX_PIN_LENGTH + 1)
        )
    )
    for control, fill in _FILL_CLASS.items()
}
_FILL = {
    PinBlockFormat.ISO0.value: frozenset("F"),
    PinBlockFormat.ISO1.value: frozenset(_HEX_UPPER),
    PinBlockFormat.ISO2.value: frozenset("F"),
    PinBlockFormat.ISO3.value: frozenset("ABCDEF"),
    PinBlockFormat.ISO4.value: frozenset("A"),
}


def iso4_pan_field(pan: str) -> bytes:
    """Format 4 plaintext PAN field: M (PAN length - 12), the PAN (left-padded to 12), zeros."""
    _check_pan(pan)
    m = max(len(pan) - 12, 0)
    digits = pan.rjust(12, "0")
    return bytes.fromhex(f"{m}{digits}".ljust(32, "0"))


def build_iso4_encrypted(aes_key: bytes, pin: str, pan: str) -> bytes:
    """Enciphered format 4 PIN block: E(K, E(K, PIN field) XOR PAN field)."""
    field = build_pinblock(PinBlockFormat.ISO4, pin)
    intermediate = _xor(aes_ecb_encrypt(aes_key, field), iso4_pan_field(pan))
    return aes_ecb_encrypt(aes_key, intermediate)


def parse_iso4_encrypted(aes_key: bytes, block: bytes, pan: str) -> str:
    """Decipher a format 4 PIN block and return the PIN."""
    if len(block) != 16:
        raise InputError(f"format 4 PIN block is {len(block)} bytes, not 16")
    intermediate = _xor(aes_ecb_decrypt(aes_key, block), iso4_pan_field(pan))
    return parse_pinblock(aes_ecb_decrypt(aes_key, intermediate), fmt=PinBlockFormat.ISO4)
