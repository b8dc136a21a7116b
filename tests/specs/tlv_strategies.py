"""Hypothesis strategies for BER-TLV data objects, shared by the property tests and the fuzz target."""

from __future__ import annotations

from hypothesis import strategies as st

from specs.tlv import Tlv


def _first_bytes(constructed: bool, multi: bool) -> st.SearchStrategy[int]:
    allowed = [b for b in range(0x01, 0xFF) if bool(b & 0x20) == constructed and (b & 0x1F == 0x1F) == multi]
    return st.sampled_from(allowed)


def tags(constructed: bool) -> st.SearchStrategy[str]:
    """Well-formed one-, two- and three-byte tags, primitive or constructed."""
    one = _first_bytes(constructed, False).map(lambda b: bytes([b]))
    two = st.tuples(_first_bytes(constructed, True), st.integers(0x01, 0x7F)).map(bytes)
    three = st.tuples(_first_bytes(constructed, True), st.integers(0x81, 0xFF), st.integers(0x00, 0x7F)).map(bytes)
    return st.one_of(one, two, three).map(lambda raw: raw.hex().upper())


def primitives(max_value: int = 300) -> st.SearchStrategy[Tlv]:
    return st.builds(Tlv, tags(False), st.binary(max_size=max_value))


def objects(max_leaves: int = 12) -> st.SearchStrategy[Tlv]:
    """Trees of data objects: primitives, and templates holding lists of them."""
    return st.recursive(
        primitives(),
        lambda kids: st.builds(Tlv.template, tags(True), st.lists(kids, max_size=4)),
        max_leaves=max_leaves,
    )


def object_lists() -> st.SearchStrategy[list[Tlv]]:
    return st.lists(objects(), max_size=6)
