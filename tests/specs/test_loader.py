"""Dialect data: built-ins load, bad files name file, field and problem, reference is generated."""

from __future__ import annotations

from pathlib import Path

import pytest

from specs import loader, reference
from specs.dialect import Encoding, FieldType, LengthKind
from specs.errors import SpecError


def test_builtin_dialects_load() -> None:
    assert {"cup-pos", "iso87-binary", "iso87-ascii"} <= set(loader.available())
    cup = loader.load("cup-pos")
    assert cup.framing.tpdu and cup.framing.cup_header
    assert cup.fields[60].length_kind is LengthKind.LLLVAR
    assert [s.id for s in cup.fields[60].subfields][:3] == ["60.1", "60.2", "60.3"]
    assert cup.fields[62].type is FieldType.B
    assert cup.messages["0800"].mandatory == frozenset({11, 41, 42, 60})


def test_a_response_rule_says_what_an_approval_and_a_refusal_carry() -> None:
    cup, iso = loader.load("cup-pos"), loader.load("iso87-binary")
    assert cup.messages["0810"].required("00") == frozenset({11, 39, 41, 42, 60})
    assert cup.messages["0810"].required("30") == frozenset({39})
    assert cup.messages["0810"].required(None) == frozenset({39})
    assert cup.messages["0800"].required("30") == frozenset({11, 41, 42, 60})  # a request: always
    assert iso.messages["0210"].required("96") == frozenset({39})


def test_iso87_ascii_extends_binary_changing_only_bitmap_and_b_fields() -> None:
    binary, ascii_ = loader.load("iso87-binary"), loader.load("iso87-ascii")
    assert ascii_.bitmap_encoding is Encoding.HEX and binary.bitmap_encoding is Encoding.BINARY
    assert ascii_.binary_encoding is Encoding.HEX and binary.binary_encoding is Encoding.BINARY
    assert ascii_.fields == binary.fields


def test_iso87_ascii_rawbin_is_iso87_ascii_with_raw_b_fields() -> None:
    ascii_, rawbin = loader.load("iso87-ascii"), loader.load("iso87-ascii-rawbin")
    assert "iso87-ascii-rawbin" in loader.available()
    assert rawbin.binary_encoding is Encoding.BINARY and rawbin.bitmap_encoding is Encoding.HEX
    assert rawbin.fields == ascii_.fields and rawbin.messages == ascii_.messages
    assert loader.load("cup-pos").binary_encoding is Encoding.BINARY  # the default, unsaid


def test_hex_b_fields_need_ascii_lengths(tmp_path: Path) -> None:
    text = BASE.replace('length = "ascii"', 'length = "bcd"') + 'binary = "hex"\n'
    text += '[fields]\n52 = { name = "PIN", type = "b", max = 8 }'
    with pytest.raises(SpecError) as info:
        loader.load(_write(tmp_path, text))
    assert info.value.where == "encoding.binary" and "ASCII lengths" in info.value.problem


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return str(path)


BASE = """
name = "t"
[framing]
length = "binary2"
[encoding]
mti = "ascii"
bitmap = "binary"
numeric = "ascii"
length = "ascii"
"""


RC = '[fields]\n11 = { name = "S", type = "n", max = 6 }\n39 = { name = "RC", type = "an", max = 2 }\n'


@pytest.mark.parametrize(
    ("fields", "where", "problem"),
    [
        ('[fields]\n11 = { name = "STAN", type = "q", max = 6 }', "fields.11.type", "'q' is not one of"),
        ('[fields]\n11 = { name = "STAN", type = "n" }', "fields.11.max", "whole number"),
        (
            '[fields]\n2 = { name = "PAN", type = "n", length = "llvar", max = 120 }',
            "fields.2.max",
            "does not fit",
        ),
        ('[fields]\n200 = { name = "X", type = "n", max = 1 }', "fields.200", "from 2 to 128"),
        ('binary = "raw"\n[fields]\n11 = { name = "S", type = "n", max = 6 }', "encoding.binary", "not one of"),
        ('[fields]\n11 = { name = "STAN", type = "n", max = 6, colour = 1 }', "fields.11", "unknown keys"),
        (
            '[fields]\n48 = { name = "X", type = "ans", length = "lllvar", max = 99, sensitive = "tlv" }',
            "fields.48.sensitive",
            "only b fields hold BER-TLV",
        ),
        (
            '[fields]\n11 = { name = "S", type = "n", max = 6 }\n[messages."0800"]\nmandatory = [41]',
            "messages.0800.mandatory",
            "field 41 is not defined",
        ),
        (
            RC + '[messages."0800"]\nmandatory = [11]\nrefusal = [39]',
            "messages.0800.refusal",
            "only a response",
        ),
        (RC + '[messages."0810"]\nmandatory = [11, 39]', "messages.0810.refusal", "missing"),
        (
            RC + '[messages."0810"]\nmandatory = [11]\nrefusal = [39]',
            "messages.0810.refusal",
            "fields [39] are not mandatory in an approval",
        ),
        (RC + '[messages."0810"]\nmandatory = [11, 39]\nrefusals = [39]', "messages.0810", "unknown keys"),
    ],
)
def test_bad_dialect_file_names_file_field_and_problem(
    tmp_path: Path, fields: str, where: str, problem: str
) -> None:
    path = _write(tmp_path, BASE + fields)
    with pytest.raises(SpecError) as info:
        loader.load(path)
    assert info.value.source == path
    assert info.value.where == where
    assert problem in info.value.problem


def test_invalid_toml_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not valid TOML"):
        loader.load(_write(tmp_path, "name = "))


def test_unknown_dialect_lists_builtins() -> None:
    with pytest.raises(SpecError, match="cup-pos"):
        loader.load("no-such-dialect")


def test_reference_is_generated_from_data() -> None:
    text = reference.render(loader.load("cup-pos"))
    assert " 60  n...017" in text
    assert "60.3" in text and "Network management information code" in text
    assert "011  0800 operator sign-in (switchsim extension)" in text
    assert "0810  11,39,41,42,60" in text
