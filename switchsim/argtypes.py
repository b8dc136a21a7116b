"""Argument types for argparse: a value is checked where it is parsed, so a bad one is refused
with the option's name before anything is opened, started or written.

Each raises `argparse.ArgumentTypeError` with a message that says what was expected and what was
given (never a secret: a key or PIN argument is described by its length, not echoed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import re
from collections.abc import Callable

MAX_AMOUNT = 999_999_999_999  # field 4 holds 12 digits of minor units

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def port(text: str) -> int:
    """A TCP/UDP port, 0 (pick a free one) to 65535."""
    value = _int(text, "a port number")
    if not 0 <= value <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"port must be 0 to 65535, got {value}")
    return value


def positive_int(text: str) -> int:
    value = _int(text, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def amount(text: str) -> int:
    """Minor units (fen), 0 to what field 4's 12 digits hold."""
    value = _int(text, "a whole number of minor units")
    if not 0 <= value <= MAX_AMOUNT:
        raise argparse.ArgumentTypeError(f"must be 0 to {MAX_AMOUNT} minor units, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number above zero; a trailing "/s" is allowed (rates)."""
    try:
        value = float(text.removesuffix("/s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def duration(text: str) -> float:
    """Seconds from 60s, 2m, 500ms, 1h or a bare number of seconds."""
    match = _DURATION.match(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 60s, 2m, 500ms)")
    return float(match.group(1)) * _UNIT[match.group(2)]


def iso_time(text: str) -> float:
    """A local ISO 8601 time (2026-11-22T10:00, optionally with seconds and an offset) as a
    POSIX timestamp."""
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r} (e.g. 2026-11-22T10:00)") from None


def merchant_id(text: str) -> str:
    """Field 42: 15 printable characters."""
    return _printable(text, 15, "a merchant id (field 42)")


def terminal_id(text: str) -> str:
    """Field 41: 8 printable characters."""
    return _printable(text, 8, "a terminal id (field 41)")


def operator_id(text: str) -> str:
    if not (len(text) == 2 and text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"an operator id is two digits, got {text!r}")
    return text


def digits(low: int, high: int, what: str, *, secret: bool = False) -> Callable[[str], str]:
    """`low` to `high` ASCII digits; a secret (PIN, password) is described, never echoed."""

    def check(text: str) -> str:
        if not (text.isascii() and text.isdigit() and low <= len(text) <= high):
            size = str(low) if low == high else f"{low} to {high}"
            got = f"{len(text)} characters" if secret else repr(text)
            raise argparse.ArgumentTypeError(f"{what} is {size} digits, got {got}")
        return text

    return check


def des_key(text: str) -> bytes:
    """A clear test key: 16, 32 or 48 hex digits (single, double, triple length)."""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be hexadecimal (16, 32 or 48 hex digits)") from None
    if len(key) not in (8, 16, 24):
        raise argparse.ArgumentTypeError(f"must be 16, 32 or 48 hex digits, got {len(text)}")
    return key


def double_key(text: str) -> bytes:
    """A clear double-length test key (an IMK-AC): 32 hex digits."""
    key = des_key(text)
    if len(key) != 16:
        raise argparse.ArgumentTypeError(f"must be 32 hex digits (a double-length key), got {len(text)}")
    return key


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None


def _printable(text: str, length: int, what: str) -> str:
    if len(text) != length or not (text.isascii() and text.isprintable()):
        raise argparse.ArgumentTypeError(f"{what} is {length} printable characters, got {len(text)}: {text!r}")
    return text
