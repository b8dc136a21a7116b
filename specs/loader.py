"""Load and validate dialect data files (TOML) into `Dialect` values.

A file may say ``extends = "other-dialect"`` to take every field and message rule of another
dialect and change only its encodings or a few fields; ISO 8583:1987 in binary and in ASCII
differ only in how the bitmap and the b fields are written.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from specs.dialect import (
    Align,
    CodeTable,
    Dialect,
    Encoding,
    FieldSpec,
    FieldType,
    LengthKind,
    MessageRule,
    Sensitivity,
    SubfieldSpec,
)
from specs.errors import SpecError
from specs.framing import DEFAULT_MAX_FRAME, FrameFormat, LengthHeader

DIALECT_DIR = Path(__file__).with_name("dialects")

E = TypeVar("E", FieldType, LengthKind, Align, Sensitivity, Encoding, LengthHeader)

_LIMITS = {LengthKind.LLVAR: 99, LengthKind.LLLVAR: 999}


def available() -> list[str]:
    # Message catalogues (NAME.messages.toml, see specs/catalogue.py) live beside the dialects.
    return sorted(p.stem for p in DIALECT_DIR.glob("*.toml") if not p.stem.endswith(".messages"))


@cache
def load(name: str) -> Dialect:
    """The built-in dialect called ``name``, or a dialect file given by path."""
    path = Path(name)
    if path.suffix != ".toml":
        path = DIALECT_DIR / f"{name}.toml"
    if not path.is_file():
        raise SpecError(str(path), "dialect", f"no such dialect; built-in: {', '.join(available())}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SpecError(str(path), "file", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(str(path), "file", f"not valid TOML: {exc}") from None
    return build(data, source=str(path))


def build(data: Mapping[str, Any], source: str = "<data>") -> Dialect:
    """Turn parsed file data into a validated Dialect; every problem names its place."""
    base: Dialect | None = None
    if "extends" in data:
        base = load(_str(data, "extends", source, "extends"))
    name = _str(data, "name", source, "name")
    encoding = data.get("encoding", {})
    framing = _framing(data.get("framing"), base, source)

    def enc(key: str, allowed: tuple[Encoding, ...], default: Encoding | None = None) -> Encoding:
        if key not in encoding:
            if base is None:
                if default is not None:
                    return default
                raise SpecError(source, f"encoding.{key}", "missing")
            value: Encoding = getattr(base, f"{key}_encoding")
            return value
        return _enum(Encoding, encoding[key], source, f"encoding.{key}", allowed)

    mti = enc("mti", (Encoding.BCD, Encoding.ASCII))
    bitmap = enc("bitmap", (Encoding.BINARY, Encoding.HEX))
    numeric = enc("numeric", (Encoding.BCD, Encoding.ASCII))
    length = enc("length", (Encoding.BCD, Encoding.ASCII))
    binary = enc("binary", (Encoding.BINARY, Encoding.HEX), Encoding.BINARY)
    if binary is Encoding.HEX and length is not Encoding.ASCII:
        raise SpecError(source, "encoding.binary", "hex-text b fields need ASCII lengths (encoding.length)")

    fields: dict[int, FieldSpec] = dict(base.fields) if base else {}
    for key, raw in data.get("fields", {}).items():
        spec = _field(str(key), raw, source)
        fields[spec.number] = spec
    if not fields:
        raise SpecError(source, "fields", "a dialect needs at least one field")

    messages: dict[str, MessageRule] = dict(base.messages) if base else {}
    for mti_key, raw in data.get("messages", {}).items():
        messages[mti_key] = _message(mti_key, raw, fields, source)

    tables = list(base.code_tables) if base else []
    for table_name, raw in data.get("codes", {}).items():
        tables.append(_codes(table_name, raw, source))

    return Dialect(
        name=name,
        description=str(data.get("description", base.description if base else "")),
        framing=framing,
        mti_encoding=mti,
        bitmap_encoding=bitmap,
        numeric_encoding=numeric,
        length_encoding=length,
        fields=MappingProxyType(dict(sorted(fields.items()))),
        messages=MappingProxyType(messages),
        code_tables=tuple(tables),
        source=str(data.get("source", base.source if base else "")),
        binary_encoding=binary,
    )


def _framing(raw: Any, base: Dialect | None, source: str) -> FrameFormat:
    if raw is None:
        if base is None:
            raise SpecError(source, "framing", "missing")
        return base.framing
    if not isinstance(raw, dict):
        raise SpecError(source, "framing", "must be a table")
    length = _enum(LengthHeader, raw.get("length", "binary2"), source, "framing.length")
    tpdu = raw.get("tpdu", False)
    header = raw.get("header", "none")
    max_frame = raw.get("max_frame", DEFAULT_MAX_FRAME)
    if not isinstance(tpdu, bool):
        raise SpecError(source, "framing.tpdu", "must be true or false")
    if header not in ("none", "cup"):
        raise SpecError(source, "framing.header", f"{header!r} is not 'none' or 'cup'")
    if not isinstance(max_frame, int) or not 16 <= max_frame <= 65535:
        raise SpecError(source, "framing.max_frame", "must be a whole number from 16 to 65535")
    return FrameFormat(length=length, tpdu=tpdu, cup_header=header == "cup", max_frame=max_frame)


def _field(key: str, raw: Any, source: str) -> FieldSpec:
    where = f"fields.{key}"
    if not key.isdigit() or not 2 <= int(key) <= 128:
        raise SpecError(source, where, "field numbers run from 2 to 128")
    if not isinstance(raw, dict):
        raise SpecError(source, where, "must be a table")
    unknown = set(raw) - {"name", "type", "length", "max", "align", "sensitive", "subfields", "note"}
    if unknown:
        raise SpecError(source, where, f"unknown keys {sorted(unknown)}")
    number = int(key)
    ftype = _enum(FieldType, raw.get("type"), source, f"{where}.type")
    kind = _enum(LengthKind, raw.get("length", "fixed"), source, f"{where}.length")
    max_length = raw.get("max")
    if not isinstance(max_length, int) or max_length < 1:
        raise SpecError(source, f"{where}.max", "must be a whole number of at least 1")
    if kind in _LIMITS and max_length > _LIMITS[kind]:
        raise SpecError(source, f"{where}.max", f"{max_length} does not fit a {kind.value} length")
    default_align = Align.RIGHT if kind is LengthKind.FIXED else Align.LEFT
    align = _enum(Align, raw.get("align", default_align.value), source, f"{where}.align")
    sensitivity = _enum(Sensitivity, raw.get("sensitive", "none"), source, f"{where}.sensitive")
    if sensitivity is Sensitivity.TLV and ftype is not FieldType.B:
        raise SpecError(source, f"{where}.sensitive", "only b fields hold BER-TLV")
    subfields = tuple(_subfield(number, i, sub, source) for i, sub in enumerate(raw.get("subfields", [])))
    if subfields:
        if ftype not in (FieldType.N, FieldType.AN, FieldType.ANS):
            raise SpecError(source, where, "only n, an and ans fields can have subfields")
        total = sum(s.length for s in subfields)
        if total > max_length:
            raise SpecError(source, where, f"subfields add up to {total}, above max {max_length}")
        seen_optional = False
        for sub in subfields:
            if seen_optional and not sub.optional:
                raise SpecError(source, f"{where}.{sub.id}", "a required subfield after an optional one")
            seen_optional = seen_optional or sub.optional
    return FieldSpec(
        number=number,
        name=_str(raw, "name", source, f"{where}.name"),
        type=ftype,
        length_kind=kind,
        max_length=max_length,
        align=align,
        sensitivity=sensitivity,
        subfields=subfields,
        note=str(raw.get("note", "")),
    )


def _subfield(number: int, index: int, raw: Any, source: str) -> SubfieldSpec:
    where = f"fields.{number}.subfields[{index}]"
    if not isinstance(raw, dict):
        raise SpecError(source, where, "must be a table")
    sub_id = f"{number}.{index + 1}"
    length = raw.get("length")
    if not isinstance(length, int) or length < 1:
        raise SpecError(source, f"{where}.length", "must be a whole number of at least 1")
    return SubfieldSpec(
        id=sub_id,
        name=_str(raw, "name", source, f"{where}.name"),
        length=length,
        optional=bool(raw.get("optional", False)),
    )


def _message(mti: str, raw: Any, fields: Mapping[int, FieldSpec], source: str) -> MessageRule:
    where = f"messages.{mti}"
    if len(mti) != 4 or not mti.isdigit():
        raise SpecError(source, where, "an MTI is four digits")
    if not isinstance(raw, dict):
        raise SpecError(source, where, "must be a table")
    unknown = set(raw) - {"name", "mandatory", "forbidden", "refusal"}
    if unknown:
        raise SpecError(source, where, f"unknown keys {sorted(unknown)}")

    def numbers(key: str) -> frozenset[int]:
        values = raw.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, int) for v in values):
            raise SpecError(source, f"{where}.{key}", "must be a list of field numbers")
        for v in values:
            if v not in fields:
                raise SpecError(source, f"{where}.{key}", f"field {v} is not defined")
        return frozenset(values)

    mandatory, forbidden = numbers("mandatory"), numbers("forbidden")
    if mandatory & forbidden:
        raise SpecError(source, where, f"fields {sorted(mandatory & forbidden)} both mandatory and forbidden")
    # A response (odd third digit: 0810, 0230) must say what a refusal carries: the switch
    # answers requests it could not read, and such an answer cannot echo what it did not read.
    response = int(mti[2]) % 2 == 1
    refusal: frozenset[int] | None = None
    if "refusal" in raw:
        if not response:
            raise SpecError(source, f"{where}.refusal", "only a response (odd third MTI digit) has a refusal set")
        refusal = numbers("refusal")
        if not refusal <= mandatory:
            extra = sorted(refusal - mandatory)
            raise SpecError(source, f"{where}.refusal", f"fields {extra} are not mandatory in an approval")
    elif response:
        raise SpecError(source, f"{where}.refusal", "missing: a response must list what a refusal carries")
    return MessageRule(
        mti=mti, name=str(raw.get("name", "")), mandatory=mandatory, forbidden=forbidden, refusal=refusal
    )


def _codes(name: str, raw: Any, source: str) -> CodeTable:
    where = f"codes.{name}"
    if not isinstance(raw, dict) or "field" not in raw or not isinstance(raw.get("values"), dict):
        raise SpecError(source, where, "needs 'field' and a 'values' table")
    return CodeTable(
        name=name,
        field=str(raw["field"]),
        codes=MappingProxyType({str(k): str(v) for k, v in raw["values"].items()}),
    )


def _str(raw: Mapping[str, Any], key: str, source: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise SpecError(source, where, "missing or not a string")
    return value


def _enum(cls: type[E], value: Any, source: str, where: str, allowed: tuple[E, ...] | None = None) -> E:
    try:
        member = cls(value)
    except ValueError:
        choices = ", ".join(m.value for m in (allowed or tuple(cls)))
        raise SpecError(source, where, f"{value!r} is not one of {choices}") from None
    if allowed is not None and member not in allowed:
        choices = ", ".join(m.value for m in allowed)
        raise SpecError(source, where, f"{value!r} is not one of {choices}")
    return member
