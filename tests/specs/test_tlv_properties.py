"""Property tests of the BER-TLV codec: round trips, garbage gives only TlvError, masking never
leaks a sensitive value, and pyemv's decoder (a test-only cross-check) reads what we build."""

from __future__ import annotations

import pyemv.tlv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specs import tlv
from specs.dialect import Sensitivity
from specs.masking import mask_tlv_hex
from specs.tlv import Tlv, TlvError
from tests.specs.tlv_strategies import object_lists, objects, primitives

relaxed = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)


@relaxed
@given(object_lists())
def test_build_then_parse_is_identity(items: list[Tlv]) -> None:
    wire = tlv.build(items)
    assert list(tlv.parse(wire)) == items
    assert tlv.build(tlv.parse(wire)) == wire


@relaxed
@given(object_lists(), st.integers(0, 1000))
def test_offsets_point_at_each_object(items: list[Tlv], base: int) -> None:
    wire = tlv.build(items)

    def walk(found: tuple[Tlv, ...]) -> None:
        for obj in found:
            at = obj.offset - base
            assert wire[at : at + len(obj.encode())] == obj.encode()
            start = obj.value_offset - base
            assert wire[start : start + len(obj.value)] == obj.value
            walk(obj.children)

    walk(tlv.parse(wire, base_offset=base))


@relaxed
@given(st.binary(max_size=300))
def test_garbage_gives_objects_or_tlv_error(blob: bytes) -> None:
    try:
        found = tlv.parse(blob, base_offset=5, field="55")
    except TlvError as exc:
        assert exc.response_code == "30" and exc.field == "55"
        assert 5 <= exc.offset <= 5 + len(blob)
        return
    # A value that parsed re-encodes canonically: never longer (non-minimal lengths shrink), and
    # the canonical form parses back to the same objects.
    again = tlv.build(found)
    assert len(again) <= len(blob)
    assert tlv.parse(again) == found


@relaxed
@given(object_lists(), st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=3))
def test_corrupted_lists_give_objects_or_tlv_error(items: list[Tlv], flips: list[tuple[int, int]]) -> None:
    wire = bytearray(tlv.build(items))
    if not wire:
        return
    for pos, xor in flips:
        wire[pos % len(wire)] ^= xor
    try:
        tlv.parse(bytes(wire))
    except TlvError as exc:
        assert 0 <= exc.offset <= len(wire)


@relaxed
@given(object_lists(), st.binary(min_size=4, max_size=19), st.integers(0, 6))
def test_mask_never_shows_a_track_or_the_middle_of_a_pan(items: list[Tlv], secret: bytes, where: int) -> None:
    pan = Tlv("5A", bytes.fromhex("6228009876543210"))
    placed = [*items[:where], Tlv("57", secret), pan, *items[where:]]
    clear = tlv.build(placed).hex().upper()
    shown = mask_tlv_hex(clear)
    assert len(shown) == len(clear)
    assert shown.count("*") >= 2 * len(secret) + 6
    assert "987654" not in shown
    untouched = tlv.build(items).hex().upper()
    if not any(tlv.sensitivity(t) is not Sensitivity.NONE for t in _tags(items)):
        assert mask_tlv_hex(untouched) == untouched


def _tags(items: list[Tlv] | tuple[Tlv, ...]) -> list[str]:
    return [t for o in items for t in (o.tag, *_tags(o.children))]


@relaxed
@given(st.lists(primitives(), max_size=8, unique_by=lambda o: o.tag))
def test_pyemv_reads_what_we_build(items: list[Tlv]) -> None:
    assert pyemv.tlv.decode(tlv.build(items)) == {o.tag: o.value for o in items}


@relaxed
@given(objects())
def test_repr_never_raises(obj: Tlv) -> None:
    assert repr(obj).startswith("Tlv(")
