"""Masking of sensitive values, on by default everywhere a value is shown."""

from __future__ import annotations

from specs import tlv
from specs.dialect import Sensitivity

_HEX = frozenset("0123456789ABCDEF")


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
    if sensitivity is Sensitivity.TLV:
        return mask_tlv_hex(value)
    return "*" * len(value)


def mask_bytes(sensitivity: Sensitivity, raw: bytes) -> str:
    """The raw bytes of a field as hex for a dump, hidden unless the field is not sensitive."""
    if sensitivity is Sensitivity.NONE:
        return raw.hex().upper()
    if sensitivity is Sensitivity.TLV:
        return mask_tlv_hex(raw.hex().upper())
    return "**" * len(raw)


def mask_tag_value(obj: tlv.Tlv) -> str:
    """One data object's value as hex, masked as its tag requires (5A shows 6+4 digits)."""
    text = obj.value.hex().upper()
    kind = tlv.sensitivity(obj.tag)
    if kind is Sensitivity.NONE:
        return text
    if kind is Sensitivity.PAN:
        digits = text.rstrip("F")
        return mask_pan(digits) + text[len(digits) :]
    return "*" * len(text)


def mask_tlv_hex(value: str) -> str:
    """A BER-TLV value (hex) with the values of its sensitive tags masked, at any depth; tags,
    lengths and other values stay as they are. A value that does not parse is hidden whole:
    nobody can tell where a track 2 inside it would start."""
    if not _HEX.issuperset(value):
        return "*" * len(value)
    try:
        objects = tlv.parse(bytes.fromhex(value))
    except (ValueError, tlv.TlvError):
        return "*" * len(value)
    chars = list(value)
    _mask_into(chars, objects)
    return "".join(chars)


def _mask_into(chars: list[str], objects: tuple[tlv.Tlv, ...]) -> None:
    for obj in objects:
        if obj.children:
            _mask_into(chars, obj.children)
        elif tlv.sensitivity(obj.tag) is not Sensitivity.NONE:
            start = 2 * obj.value_offset
            chars[start : start + 2 * len(obj.value)] = mask_tag_value(obj)
