"""Hypothesis strategies for valid messages of any dialect, shared by property and fuzz tests."""

from __future__ import annotations

from hypothesis import strategies as st

from specs.codec import Codec
from specs.dialect import FieldSpec, FieldType
from specs.message import Message

_ALPHABETS = {
    FieldType.N: "0123456789",
    FieldType.A: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz ",
    FieldType.AN: "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz ",
    FieldType.ANS: "".join(chr(c) for c in range(0x20, 0x7F)),
    FieldType.B: "0123456789ABCDEF",
}


def field_value(spec: FieldSpec, bcd: bool) -> st.SearchStrategy[str]:
    if spec.subfields:
        parts = [
            st.text(_ALPHABETS[FieldType.N], min_size=s.length, max_size=s.length) for s in spec.subfields
        ]
        required = sum(1 for s in spec.subfields if not s.optional)
        return st.integers(required, len(parts)).flatmap(lambda k: st.tuples(*parts[:k]).map("".join))
    alphabet = "0123456789" + ("D" if bcd else "=D") if spec.type is FieldType.Z else _ALPHABETS[spec.type]
    if spec.type is FieldType.B:
        size = spec.max_length
        lo = size if spec.is_fixed else 0
        return st.binary(min_size=lo, max_size=size).map(lambda b: b.hex().upper())
    lo = spec.max_length if spec.is_fixed else 0
    return st.text(alphabet, min_size=lo, max_size=spec.max_length)


@st.composite
def messages(draw: st.DrawFn, codec: Codec) -> Message:
    dialect = codec.dialect
    bcd = dialect.numeric_encoding.value == "bcd"
    numbers = draw(st.sets(st.sampled_from(sorted(dialect.fields)), max_size=12))
    fields = {n: draw(field_value(dialect.fields[n], bcd)) for n in sorted(numbers)}
    mti = draw(st.text("0123456789", min_size=4, max_size=4))
    return Message.build(dialect, mti, fields)
