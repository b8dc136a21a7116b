"""Decoded messages: immutable values with typed access to fields and subfields.

`repr` is masked: a PAN shows 6+4 digits, tracks, PIN blocks and key material show nothing.
The clear view is the explicitly named `unmasked_fields()`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from specs.dialect import Dialect, Sensitivity
from specs.errors import CodecError
from specs.masking import mask_value

_EMPTY: Mapping[str, int] = MappingProxyType({})
# Subfields already cut, by (id of the dialect, field, value), the dialect kept beside them so
# that its id cannot be reused: a terminal sends the same 60 all day (Message.subfields).
_SPLIT: dict[tuple[int, int, str], tuple[Dialect, dict[str, str]]] = {}
_SPLIT_MEMO = 4096


@dataclass(frozen=True, slots=True, repr=False)
class Message:
    """An ISO 8583 message: MTI and field values as text (b fields as uppercase hex)."""

    mti: str
    fields: Mapping[int, str]
    dialect: Dialect = field(compare=False)
    # Byte offset of each part inside the body ("mti", "bitmap", "11", ...); decode fills it.
    offsets: Mapping[str, int] = field(default_factory=lambda: _EMPTY, compare=False)
    # True when every value is known to be valid and normalised for the dialect (the codec
    # built or decoded it), so encoding can skip checking each field again.
    checked: bool = field(default=False, compare=False)

    @classmethod
    def build(cls, dialect: Dialect, mti: str, fields: Mapping[int, str], *, checked: bool = False) -> Message:
        return cls(mti=mti, fields=MappingProxyType(dict(sorted(fields.items()))), dialect=dialect, checked=checked)

    def __getitem__(self, number: int) -> str:
        return self.fields[number]

    def __contains__(self, number: object) -> bool:
        return number in self.fields

    def __iter__(self) -> Iterator[int]:
        return iter(self.fields)

    def get(self, number: int, default: str | None = None) -> str | None:
        return self.fields.get(number, default)

    def subfields(self, number: int) -> dict[str, str]:
        """The subfields present in field ``number`` ({"60.1": "00", ...})."""
        value = self.fields.get(number)
        if value is None:
            return {}
        dialect = self.dialect
        key = (id(dialect), number, value)
        known = _SPLIT.get(key)
        if known is not None and known[0] is dialect:
            return dict(known[1])
        spec = dialect.field_spec(number)
        if spec is None or not spec.subfields:
            return {}
        parts = split_subfields(number, value, dialect)
        if spec.sensitivity is Sensitivity.NONE:  # no key material kept past its message
            if len(_SPLIT) >= _SPLIT_MEMO:
                _SPLIT.clear()
            _SPLIT[key] = (dialect, parts)
        return dict(parts)

    def sub(self, subfield_id: str) -> str | None:
        """One subfield ("60.3"), or None when its field or the subfield is absent."""
        number = int(subfield_id.partition(".")[0])
        return self.subfields(number).get(subfield_id)

    def replace(self, mti: str | None = None, **changes: str | None) -> Message:
        """A copy with fields set (f11="000001") or removed (f62=None)."""
        fields = dict(self.fields)
        for key, value in changes.items():
            number = int(key.removeprefix("f"))
            if value is None:
                fields.pop(number, None)
            else:
                fields[number] = value
        return Message.build(self.dialect, mti or self.mti, fields)

    def masked_fields(self) -> dict[int, str]:
        return {
            n: mask_value(self.dialect.fields[n].sensitivity, v) if n in self.dialect.fields else v
            for n, v in self.fields.items()
        }

    def unmasked_fields(self) -> dict[int, str]:
        """The clear values. Callers own what they do with them: never log this."""
        return dict(self.fields)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={v!r}" for n, v in self.masked_fields().items())
        return f"Message({self.dialect.name} {self.mti}: {inner})"

    __str__ = __repr__


def split_subfields(number: int, value: str, dialect: Dialect) -> dict[str, str]:
    """Cut a field into its fixed-width subfields; optional trailing ones may be absent."""
    spec = dialect.fields[number]
    out: dict[str, str] = {}
    pos = 0
    for sub in spec.subfields:
        if pos == len(value) and sub.optional:
            break
        end = pos + sub.length
        if end > len(value):
            raise CodecError(
                str(number),
                0,
                f"{len(value)} characters end inside subfield {sub.id} ({sub.name})",
            )
        out[sub.id] = value[pos:end]
        pos = end
    if pos != len(value):
        raise CodecError(str(number), 0, f"{len(value) - pos} characters after the last subfield")
    return out


def join_subfields(number: int, parts: Mapping[str, str], dialect: Dialect) -> str:
    """Build a field from subfields given by id; each must have its exact width."""
    spec = dialect.fields[number]
    chunks: list[str] = []
    for sub in spec.subfields:
        value = parts.get(sub.id)
        if value is None:
            if sub.optional:
                break
            raise CodecError(sub.id, 0, f"subfield {sub.id} ({sub.name}) is required")
        if len(value) != sub.length:
            raise CodecError(sub.id, 0, f"subfield {sub.id} must be {sub.length} long")
        chunks.append(value)
    unknown = set(parts) - {s.id for s in spec.subfields}
    if unknown:
        raise CodecError(str(number), 0, f"unknown subfields {sorted(unknown)}")
    return "".join(chunks)
