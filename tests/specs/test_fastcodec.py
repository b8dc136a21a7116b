"""The codec's fast path (specs/fastcodec.py) against its reference path (pyiso8583).

Properties for every built-in dialect: on valid messages the fast path is taken and gives the
reference's bytes, fields, offsets and field spans; on mutated, truncated or extended bodies and
on values the codec did not normalise, both paths give the same message or the same error.
Hand-written frames (the published UnionPay sign-in of /work/shared/vectors/cup_pos.json, a
chip purchase carrying the published field 55 of emv.json, hand-worked ISO 8583:1987 frames)
decode to their listed values with the reference path disabled, so the fast path read them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

import iso8583
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specs import loader
from specs.codec import Codec, codec_for
from specs.dialect import FieldSpec, FieldType, LengthKind
from specs.errors import CodecError
from specs.message import Message
from tests.specs.strategies import field_value, messages
from tests.vectorfiles import vector_path

DIALECTS = loader.available()
_PREFIX_LIMIT = {LengthKind.LLVAR: 99, LengthKind.LLLVAR: 999}  # the most a prefix can say
relaxed = settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
# Bytes that mean something somewhere: digits, BCD nibbles past 9, letters, separators, high bit.
INTERESTING = [
    0x00,
    0x01,
    0x09,
    0x0A,
    0x10,
    0x19,
    0x20,
    0x30,
    0x35,
    0x39,
    0x3D,
    0x41,
    0x44,
    0x61,
    0x7F,
    0x80,
    0x99,
    0x9A,
    0xFF,
]


@st.composite
def built(draw: st.DrawFn, codec: Codec) -> Message:
    """A message made by ``codec.message`` (normalised, checked) from values of each field's type."""
    dialect = codec.dialect
    bcd = dialect.numeric_encoding.value == "bcd"
    numbers = draw(st.sets(st.sampled_from(sorted(dialect.fields)), max_size=14))
    fields = {n: draw(field_value(dialect.fields[n], bcd)) for n in numbers}
    mti = draw(st.sampled_from(sorted(dialect.messages)) | st.text("0123456789", min_size=4, max_size=4))
    return codec.message(mti, fields)


def outcome(run: Callable[[], Any]) -> tuple[object, ...]:
    """What a call gave: the error's field, offset and reason, or the message with its offsets."""
    try:
        result = run()
    except CodecError as exc:
        return ("error", exc.field, exc.offset, exc.reason)
    if isinstance(result, Message):
        return ("message", result.mti, list(result.fields.items()), list(result.offsets.items()), result.checked)
    return ("value", result)


def reference_spans(codec: Codec, message: Message) -> dict[str, tuple[int, int]]:
    """Where each field lies in the reference body, from pyiso8583's own parts."""
    _, parts = codec._encode_reference(message, validate=False)
    spans: dict[str, tuple[int, int]] = {}
    at = 0
    for name, part in parts.items():
        size = len(part["len"]) + len(part["data"])
        spans[name] = (at, at + size)
        at += size
    return spans


@pytest.mark.parametrize("name", DIALECTS)
@relaxed
@given(data=st.data())
def test_fast_path_encodes_and_decodes_as_the_reference(name: str, data: st.DataObject) -> None:
    codec = codec_for(name)
    message = data.draw(built(codec))
    reference, _ = codec._encode_reference(message, validate=False)
    assert codec._fast.encode(message.mti, message.fields) is not None, "a valid message takes the fast path"
    assert codec.encode(message, validate=False) == reference

    fast = codec._fast.decode(reference)
    assert fast is not None, "a valid body takes the fast path"
    mti, fields, offsets = codec._decode_reference(reference)
    assert fast[0] == mti
    assert list(fast[1].items()) == list(fields.items())
    assert list(fast[2].items()) == list(offsets.items())  # same keys, same order
    assert outcome(lambda: codec.decode(reference, validate=False)) == outcome(
        lambda: codec._decode(reference, False, fast_path=False)
    )

    spans = reference_spans(codec, message)
    _, fast_spans = codec._field_spans(message, validate=False)
    assert fast_spans == {k: v for k, v in spans.items() if k.isdigit() and k != "1"}
    for number, value in message.fields.items():
        start, end = spans[str(number)]
        assert codec.encode_field(number, value) == reference[start:end]


@pytest.mark.parametrize("name", DIALECTS)
@relaxed
@given(data=st.data())
def test_validated_decode_and_encode_agree_with_the_reference(name: str, data: st.DataObject) -> None:
    codec = codec_for(name)
    message = data.draw(built(codec))
    body = codec._encode_reference(message, validate=False)[0]
    assert outcome(lambda: codec.decode(body)) == outcome(lambda: codec._decode(body, True, fast_path=False))
    assert outcome(lambda: codec.encode(message)) == outcome(lambda: codec._encode_reference(message)[0])


EDIT = st.tuples(
    st.sampled_from(["xor", "set", "cut", "drop", "insert"]),
    st.integers(0, 10_000),  # which part: near a part's start, where lengths and pads are
    st.integers(-1, 3),  # how far into it
    st.integers(1, 255) | st.sampled_from(INTERESTING),
)


@pytest.mark.parametrize("name", DIALECTS)
@relaxed
@given(data=st.data(), edits=st.lists(EDIT, min_size=1, max_size=3), validate=st.booleans())
def test_mutated_bodies_give_the_same_message_or_error_by_both_paths(
    name: str, data: st.DataObject, edits: list[tuple[str, int, int, int]], validate: bool
) -> None:
    codec = codec_for(name)
    body = bytearray(codec.encode(data.draw(messages(codec)), validate=False))
    anchors = sorted({*codec._decode_reference(bytes(body))[2].values(), len(body)})
    for kind, part, delta, byte in edits:
        at = min(max(anchors[part % len(anchors)] + delta, 0), len(body))
        if kind == "xor" and at < len(body):
            body[at] ^= byte
        elif kind == "set" and at < len(body):
            body[at] = byte
        elif kind == "cut":
            del body[at:]
        elif kind == "drop" and at < len(body):
            del body[at]
        elif kind == "insert":
            body.insert(at, byte)
    mutated = bytes(body)
    assert outcome(lambda: codec.decode(mutated, validate=validate, base_offset=3)) == outcome(
        lambda: _shifted(codec, mutated, validate, 3)
    )


def _sample(spec: FieldSpec, bcd: bool, size: int | None = None) -> str:
    """A valid value of a field, ``size`` long (digits, characters or bytes); by default a
    variable n or z field gets an odd count, so a pad nibble."""
    if size is None:
        size = spec.max_length if spec.is_fixed else min(spec.max_length, 3 if spec.type.counts_digits else 2)
    if spec.subfields:
        return "1" * sum(sub.length for sub in spec.subfields)
    if spec.type is FieldType.B:
        return "A5" * size
    if spec.type is FieldType.Z:
        return ("1D2" if bcd else "1=2").ljust(size, "3")[:size]
    return {FieldType.N: "7", FieldType.A: "Q", FieldType.AN: "Z", FieldType.ANS: "~"}[spec.type] * size


@pytest.mark.parametrize("name", DIALECTS)
def test_every_field_mutated_at_its_edges_gives_the_same_outcome_by_both_paths(name: str) -> None:
    """Each field alone, each byte at its start, second and last position (length prefix, pad
    nibble, data) set to each interesting value, xored, dropped or cut there."""
    codec = codec_for(name)
    bcd = codec.dialect.numeric_encoding.value == "bcd"
    for number, spec in codec.dialect.fields.items():
        message = codec.message("0000", {number: _sample(spec, bcd)})
        body = codec._encode_reference(message, validate=False)[0]
        start, end = reference_spans(codec, message)[str(number)]
        bodies = [body[:cut] for cut in (start + 1, end - 1)] + [body[:start] + body[start + 1 :]]
        for at in sorted({start, min(start + 1, end - 1), end - 1}):
            for byte in {*INTERESTING, body[at] ^ 0x01, body[at] ^ 0x10, body[at] ^ 0x80}:
                bodies.append(body[:at] + bytes([byte]) + body[at + 1 :])
        for mutated in bodies:
            fast = outcome(partial(codec.decode, mutated, validate=False))
            assert fast == outcome(partial(codec._decode, mutated, False, fast_path=False)), (number, mutated.hex())


@pytest.mark.parametrize("name", DIALECTS)
def test_a_length_prefix_above_the_maximum_falls_back_to_the_reference_error(name: str) -> None:
    """Each variable field one unit longer than its maximum, prefix and data consistent (written
    by pyiso8583 under a spec one unit wider): both paths give the reference's error."""
    codec = codec_for(name)
    bcd = codec.dialect.numeric_encoding.value == "bcd"
    for number, spec in codec.dialect.fields.items():
        if spec.is_fixed or spec.max_length == _PREFIX_LIMIT[spec.length_kind] or spec.subfields:
            continue
        wider = {key: dict(value) for key, value in codec._spec.items()}
        hex_text = spec.type is FieldType.B and wider[str(number)]["data_enc"] == "ascii"
        wider[str(number)]["max_len"] += 2 if hex_text else 1  # hex text: pyiso8583 counts characters
        value = _sample(spec, bcd, spec.max_length + 1)
        body = bytes(iso8583.encode({"t": "0000", str(number): value}, wider)[0])
        expected = outcome(partial(codec._decode, body, False, fast_path=False))
        assert expected[0] == "error" and "larger than maximum" in str(expected[3]), (number, expected)
        assert codec._fast.decode(body) is None
        assert outcome(partial(codec.decode, body, validate=False)) == expected


def _shifted(codec: Codec, body: bytes, validate: bool, base: int) -> Message:
    try:
        return codec._decode(body, validate, fast_path=False)
    except CodecError as exc:
        raise CodecError(exc.field, exc.offset + base, exc.reason) from None


@pytest.mark.parametrize("name", DIALECTS)
@relaxed
@given(data=st.data(), mti=st.text("0123456789AB", min_size=3, max_size=5))
def test_unnormalised_values_encode_or_fail_alike_by_both_paths(name: str, data: st.DataObject, mti: str) -> None:
    """A message that claims to be checked but holds anything: the fast writers must give
    pyiso8583's bytes or leave the error to it."""
    codec = codec_for(name)
    numbers = data.draw(st.sets(st.sampled_from(sorted(codec.dialect.fields)), min_size=1, max_size=6))
    values = st.text(st.sampled_from("0123456789abcdefABCDEF =Dé"), max_size=24)
    fields = {n: data.draw(values) for n in numbers}
    message = Message(mti=mti, fields=fields, dialect=codec.dialect, checked=True)
    assert outcome(lambda: codec.encode(message, validate=False)) == outcome(
        lambda: codec._encode_reference(message, validate=False)[0]
    )


# -- hand-written frames through the fast path ---------------------------------------------------


@pytest.fixture
def fast_only(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Codec]:
    """A codec whose reference paths fail the test if they run."""

    def codec(name: str) -> Codec:
        c = codec_for(name)

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError("the reference path ran: the fast path gave up")

        monkeypatch.setattr(c, "_decode_reference", refuse)
        monkeypatch.setattr(c, "_encode_fields", refuse)
        return c

    return codec


def test_published_signin_decodes_and_encodes_by_the_fast_path(fast_only: Callable[[str], Codec]) -> None:
    example = json.loads(vector_path("cup_pos.json").read_text())["examples"][0]
    body = bytes.fromhex(example["hex"])
    codec = fast_only("cup-pos")
    message = codec.decode(body)
    assert message.mti == "0800"
    assert {str(k): v for k, v in message.fields.items()} == example["decoded"]
    # MTI 2, bitmap 8, 11 n6 in 3 BCD bytes, 41 ans8, 42 ans15, 60 LLL (2) + 6, 63 LLL (2) + 3
    assert dict(message.offsets) == {"mti": 0, "bitmap": 2, "11": 10, "41": 13, "42": 21, "60": 36, "63": 44}
    assert codec.encode(codec.message("0800", message.fields)) == body
    slot = codec.slot(message, 11)
    assert (len(slot.head), slot.size, len(slot.tail)) == (10, 3, len(body) - 13)
    assert slot.fill("000105") == body


def test_chip_purchase_with_published_field_55_decodes_by_the_fast_path(fast_only: Callable[[str], Codec]) -> None:
    tlv = json.loads(vector_path("emv.json").read_text())["tlv_examples"][0]
    icc = bytes.fromhex(tlv["hex"])
    assert len(icc) == 145  # LLL prefix 01 45, BCD
    body = (
        bytes.fromhex("02003020048000C08211")  # fields 3 4 11 22 25 41 42 49 55 60 64
        + bytes.fromhex("000000000000000100000001051000")  # 3, 4, 11, 22 left-aligned, 25
        + b"00000764"
        + b"848100058126002"
        + b"156"  # 41, 42, 49
        + bytes.fromhex("0145")
        + icc  # 55
        + bytes.fromhex("0011220000010000")  # 60: 11 digits, left-aligned
        + bytes.fromhex("0123456789ABCDEF")  # 64
    )
    codec = fast_only("cup-pos")
    message = codec.decode(body)
    assert message.mti == "0200"
    assert dict(message.fields) == {
        3: "000000",
        4: "000000000100",
        11: "000001",
        22: "051",
        25: "00",
        41: "00000764",
        42: "848100058126002",
        49: "156",
        55: tlv["hex"],
        60: "22000001000",
        64: "0123456789ABCDEF",
    }
    assert dict(message.offsets) == {
        "mti": 0, "bitmap": 2, "3": 10, "4": 13, "11": 19, "22": 22, "25": 24,
        "41": 25, "42": 33, "49": 48, "55": 51, "60": 198, "64": 206,
    }  # fmt: skip
    assert codec.encode(message) == body


@pytest.mark.parametrize(
    ("name", "bitmaps"),
    [
        ("iso87-binary", bytes.fromhex("82200000000000000400000000000000")),
        ("iso87-ascii", b"82200000000000000400000000000000"),
    ],
)
def test_iso87_0800_with_a_secondary_bitmap_decodes_by_the_fast_path(
    fast_only: Callable[[str], Codec], name: str, bitmaps: bytes
) -> None:
    # fields 1 (secondary bitmap), 7, 11 | 70; ASCII MTI and numerics
    body = b"0800" + bitmaps + b"1122123456" + b"000123" + b"301"
    codec = fast_only(name)
    message = codec.decode(body)
    assert (message.mti, dict(message.fields)) == ("0800", {7: "1122123456", 11: "000123", 70: "301"})
    width = len(bitmaps) // 2
    fields_at = 4 + 2 * width
    assert list(message.offsets.items()) == [
        ("mti", 0), ("bitmap", 4), ("1", 4 + width), ("7", fields_at), ("11", fields_at + 10), ("70", fields_at + 16)
    ]  # fmt: skip
    assert codec.encode(message) == body


def test_a_bad_length_digit_falls_back_to_the_reference_error() -> None:
    # the published sign-in with field 60's LLL prefix 00 11 made 00 1A: not BCD
    body = bytearray.fromhex(
        "08000020000000C00012000105303030303037363438343831303030353831323630303200110000000100300003303031"
    )
    body[37] = 0x1A
    codec = codec_for("cup-pos")
    assert codec._fast.decode(bytes(body)) is None
    with pytest.raises(CodecError) as caught:
        codec.decode(bytes(body))
    assert (caught.value.field, caught.value.offset) == ("60", 36)
    assert "invalid BCD" in caught.value.reason
