"""Masking of sensitive values, on by default everywhere a value is shown."""

from __future__ import annotations

from specs.dialect import Sensitivity


def mask_pan(pan: str) -> str:
    """First 6 and last 4 digits, the rest as '*'; shorter numbers show only the last 4."""
    if len(pan) >= 13:
        return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]
    return "*" * max(0, len(pan) - 4) + pan[-4:]


def mask_value(sensitivity: Sensitivity, value: str) -> str:
    if sensitivity is Sensitivity.NONE:
        return value
    if sensitivity is Sensitivity.PAN:
        return mask_pan(value)
    return "*" * len(value)


def mask_bytes(sensitivity: Sensitivity, raw: bytes) -> str:
    """The raw bytes of a field as hex for a dump, hidden unless the field is not sensitive."""
    if sensitivity is Sensitivity.NONE:
        return raw.hex().upper()
    return "**" * len(raw)
