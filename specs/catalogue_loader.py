"""Find, load and validate message catalogues (``specs/dialects/NAME.messages.toml``) into
`Catalogue` values (specs/catalogue.py), as specs/loader.py does for dialects: every problem is
a `CatalogueError` naming the file, the entry and the key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from specs import loader
from specs.catalogue import Catalogue, CatalogueError, IccList, IccRules, MessageKind, Needs, response_mti
from specs.dialect import Dialect
from specs.errors import SpecError
from specs.keylayout import KeyLayout, LayoutSyntaxError, parse_layout
from specs.tlv import tag_problem

CATALOGUE_SUFFIX = ".messages.toml"


def available() -> list[str]:
    return sorted(p.name.removesuffix(CATALOGUE_SUFFIX) for p in loader.DIALECT_DIR.glob(f"*{CATALOGUE_SUFFIX}"))


def catalogue_for(dialect: Dialect | str) -> Catalogue:
    """The catalogue that serves a dialect (by its name)."""
    return _for_dialect(dialect.name if isinstance(dialect, Dialect) else dialect)


@cache
def _for_dialect(name: str) -> Catalogue:
    for catalogue_name in available():
        catalogue = load(catalogue_name)
        if name in catalogue.dialects:
            return catalogue
    raise CatalogueError(
        str(loader.DIALECT_DIR), "dialects", f"no message catalogue serves dialect {name!r}; have {available()}"
    )


@cache
def load(name: str) -> Catalogue:
    """The built-in catalogue ``name`` ("cup-pos", "iso87") or a catalogue file by path."""
    path = Path(name)
    if not path.name.endswith(CATALOGUE_SUFFIX):
        path = loader.DIALECT_DIR / f"{name}{CATALOGUE_SUFFIX}"
    if not path.is_file():
        raise CatalogueError(str(path), "catalogue", f"no such catalogue; built-in: {', '.join(available())}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(str(path), "file", f"not valid TOML: {exc}") from None
    return build(data, name=path.name.removesuffix(CATALOGUE_SUFFIX), source=str(path))


_TOP_KEYS = frozenset(
    {"dialects", "description", "network_code_field", "type_code_field", "batch_field", "defaults",
     "unmatched", "icc", "kinds"}
)
_KIND_KEYS = frozenset(
    {"title", "mti", "response_mti", "processing_code", "type_code", "network_code", "maced", "needs",
     "echo", "from_original", "field62", "entry_mode", "icc", "arqc"}
)
_ICC_KEYS = frozenset(
    {"field", "read_capability_field", "condition_field", "fallback_value", "swiped_entry_mode",
     "chip_service_codes", "lists"}
)


def build(data: Mapping[str, Any], *, name: str = "<data>", source: str = "<data>") -> Catalogue:
    """Turn parsed catalogue data into a validated Catalogue; every problem names its place."""
    _no_unknown(data, _TOP_KEYS, source, "catalogue")
    dialect_names = data.get("dialects")
    if not isinstance(dialect_names, list) or not dialect_names or not all(isinstance(d, str) for d in dialect_names):
        raise CatalogueError(source, "dialects", "must be a non-empty list of dialect names")
    dialects = []
    for dialect_name in dialect_names:
        try:
            dialects.append(loader.load(dialect_name))
        except SpecError as exc:
            raise CatalogueError(source, "dialects", f"{dialect_name!r}: {exc.problem}") from None
    network_field = _text(data, "network_code_field", source, "network_code_field")
    type_field = _optional_text(data, "type_code_field", source, "type_code_field")
    batch_field = _optional_text(data, "batch_field", source, "batch_field")
    for dialect in dialects:
        for key, item in (("network_code_field", network_field), ("type_code_field", type_field),
                          ("batch_field", batch_field)):
            if item is not None and not _defined(dialect, item):
                raise CatalogueError(source, key, f"{item} is not defined in dialect {dialect.name}")
    if type_field is not None and "." not in type_field:
        raise CatalogueError(source, "type_code_field", "must be a subfield such as 60.1")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise CatalogueError(source, "defaults", "must be a table")
    _no_unknown(defaults, frozenset({"type_code", "network_code"}), source, "defaults")
    default_type = defaults.get("type_code")
    if default_type is not None:
        default_type = _digits(default_type, 2, source, "defaults.type_code")
    default_network = defaults.get("network_code")
    if default_network is not None:
        default_network = _digits(default_network, 3, source, "defaults.network_code")
    unmatched = data.get("unmatched", {})
    if not isinstance(unmatched, dict):
        raise CatalogueError(source, "unmatched", "must be a table of MTI = response code")
    for mti, code in unmatched.items():
        _mti(mti, source, f"unmatched.{mti}")
        if not isinstance(code, str) or len(code) != 2 or not code.isalnum():
            raise CatalogueError(source, f"unmatched.{mti}", "must be a two-character response code")
    icc = _icc(data.get("icc"), dialects, source) if "icc" in data else None
    raw_kinds = data.get("kinds")
    if not isinstance(raw_kinds, dict) or not raw_kinds:
        raise CatalogueError(source, "kinds", "a catalogue needs at least one kind")
    kinds = {
        kind_name: _kind(kind_name, raw, dialects, source, type_field is not None, icc)
        for kind_name, raw in raw_kinds.items()
    }
    catalogue = Catalogue(
        name=name,
        source=source,
        dialects=tuple(dialect_names),
        description=str(data.get("description", "")),
        network_code_field=network_field,
        type_code_field=type_field,
        batch_field=batch_field,
        default_type_code=default_type,
        default_network_code=default_network,
        kinds=MappingProxyType(kinds),
        unmatched=MappingProxyType(dict(unmatched)),
        dialect=dialects[0],
        icc=icc,
        routes=_routes(kinds.values()),
        answers=MappingProxyType({k.mti: k.response_mti for k in kinds.values()}),
    )
    _check_routes(catalogue)
    return catalogue


def _kind(
    name: str, raw: Any, dialects: list[Dialect], source: str, has_type_field: bool, icc: IccRules | None
) -> MessageKind:
    where = f"kinds.{name}"
    if not name.isidentifier() or not name.islower():
        raise CatalogueError(source, where, "a kind's name is a lower-case identifier (it is a scenario step)")
    if not isinstance(raw, dict):
        raise CatalogueError(source, where, "must be a table")
    _no_unknown(raw, _KIND_KEYS, source, where)
    mti = _mti(raw.get("mti"), source, f"{where}.mti")
    answer = _mti(raw.get("response_mti", response_mti(mti)), source, f"{where}.response_mti")
    pcode = raw.get("processing_code")
    if pcode is not None:
        pcode = _digits(pcode, 6, source, f"{where}.processing_code")
    type_code = raw.get("type_code")
    if type_code is not None:
        if not has_type_field:
            raise CatalogueError(source, f"{where}.type_code", "this catalogue has no type_code_field")
        type_code = _digits(type_code, 2, source, f"{where}.type_code")
    codes_raw = raw.get("network_code", [])
    codes_list = [codes_raw] if isinstance(codes_raw, str) else codes_raw
    if not isinstance(codes_list, list):
        raise CatalogueError(source, f"{where}.network_code", "must be a code or a list of codes")
    codes = tuple(_digits(c, 3, source, f"{where}.network_code") for c in codes_list)
    maced = raw.get("maced", False)
    if not isinstance(maced, bool):
        raise CatalogueError(source, f"{where}.maced", "must be true or false")
    needs_raw = raw.get("needs", Needs.NOTHING.value)
    try:
        needs = Needs(needs_raw)
    except ValueError:
        choices = ", ".join(n.value for n in Needs)
        raise CatalogueError(source, f"{where}.needs", f"{needs_raw!r} is not one of {choices}") from None
    echo = tuple(_echo_item(item, dialects, source, f"{where}.echo") for item in _list(raw, "echo", source, where))
    from_original = tuple(
        _field_number(item, dialects, source, f"{where}.from_original")
        for item in _list(raw, "from_original", source, where)
    )
    layouts: dict[str, KeyLayout] = {}
    field62 = raw.get("field62", {})
    if not isinstance(field62, dict):
        raise CatalogueError(source, f"{where}.field62", "must be a table of key mode = layout")
    for mode, parts in field62.items():
        if mode not in codes:
            raise CatalogueError(source, f"{where}.field62.{mode}", "a key mode is one of the kind's network codes")
        layouts[mode] = _layout(mode, parts, source, f"{where}.field62.{mode}")
    if layouts and set(layouts) != set(codes):
        missing = sorted(set(codes) - set(layouts))
        raise CatalogueError(source, f"{where}.field62", f"no layout for network codes {missing}")
    title = raw.get("title", "")
    if not isinstance(title, str):
        raise CatalogueError(source, f"{where}.title", "must be a string")
    modes_raw = raw.get("entry_mode", [])
    modes_list = [modes_raw] if isinstance(modes_raw, str) else modes_raw
    if not isinstance(modes_list, list):
        raise CatalogueError(source, f"{where}.entry_mode", "must be two digits of field 22 or a list of them")
    entry_modes = tuple(_digits(m, 2, source, f"{where}.entry_mode") for m in modes_list)
    icc_list = raw.get("icc")
    if icc_list is not None:
        if icc is None:
            raise CatalogueError(source, f"{where}.icc", "this catalogue has no [icc] table")
        if icc_list not in icc.lists:
            raise CatalogueError(source, f"{where}.icc", f"{icc_list!r} is not one of [icc.lists] {sorted(icc.lists)}")
    arqc = raw.get("arqc", False)
    if not isinstance(arqc, bool):
        raise CatalogueError(source, f"{where}.arqc", "must be true or false")
    if arqc and icc_list is None:
        raise CatalogueError(source, f"{where}.arqc", "an ARQC comes in field 55: name the kind's icc list")
    return MessageKind(
        name=name,
        title=title,
        mti=mti,
        response_mti=answer,
        processing_code=pcode,
        type_code=type_code,
        network_codes=codes,
        maced=maced,
        needs=needs,
        echo=echo,
        from_original=from_original,
        key_layouts=MappingProxyType(layouts),
        entry_modes=entry_modes,
        icc=icc_list,
        arqc=arqc,
    )


def _icc(raw: Any, dialects: list[Dialect], source: str) -> IccRules:
    """The [icc] table: where chip data goes and the tag lists of field 55."""
    if not isinstance(raw, dict):
        raise CatalogueError(source, "icc", "must be a table")
    _no_unknown(raw, _ICC_KEYS, source, "icc")
    number = raw.get("field")
    if isinstance(number, bool) or not isinstance(number, int) or not all(number in d.fields for d in dialects):
        raise CatalogueError(source, "icc.field", "must be the number of a field of every dialect served (55)")
    subs = {}
    for key in ("read_capability_field", "condition_field"):
        item = _text(raw, key, source, f"icc.{key}")
        if "." not in item or not all(_defined(d, item) for d in dialects):
            raise CatalogueError(source, f"icc.{key}", f"{item} is not a subfield of every dialect served")
        subs[key] = item
    fallback = _text(raw, "fallback_value", source, "icc.fallback_value")
    swiped = _digits(raw.get("swiped_entry_mode"), 2, source, "icc.swiped_entry_mode")
    codes = raw.get("chip_service_codes", [])
    if not isinstance(codes, list) or not all(isinstance(c, str) and len(c) == 1 and c.isdigit() for c in codes):
        raise CatalogueError(source, "icc.chip_service_codes", "must be a list of single digits")
    lists_raw = raw.get("lists")
    if not isinstance(lists_raw, dict) or not lists_raw:
        raise CatalogueError(source, "icc.lists", "must be a table of named tag lists")
    lists: dict[str, IccList] = {}
    for list_name, entry in lists_raw.items():
        where = f"icc.lists.{list_name}"
        if not isinstance(entry, dict):
            raise CatalogueError(source, where, "must be a table with tags and optional")
        _no_unknown(entry, frozenset({"tags", "optional"}), source, where)
        tags = _tags(entry.get("tags"), source, f"{where}.tags")
        optional = _tags(entry.get("optional", []), source, f"{where}.optional")
        if len(set(tags)) != len(tags):
            raise CatalogueError(source, f"{where}.tags", "a tag is listed twice")
        stray = sorted(set(optional) - set(tags))
        if stray:
            raise CatalogueError(source, f"{where}.optional", f"{stray} are not in the list's tags")
        lists[list_name] = IccList(list_name, tuple(tags), frozenset(optional))
    return IccRules(
        field=number,
        read_capability_field=subs["read_capability_field"],
        condition_field=subs["condition_field"],
        fallback_value=fallback,
        swiped_entry_mode=swiped,
        chip_service_codes=tuple(codes),
        lists=MappingProxyType(lists),
    )


def _tags(value: Any, source: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise CatalogueError(source, where, 'must be a list of tags such as ["9F26", "95"]')
    for tag in value:
        problem = tag_problem(tag)
        if problem is not None:
            raise CatalogueError(source, where, f"{tag!r}: {problem}")
    return value


def _layout(mode: str, raw: Any, source: str, where: str) -> KeyLayout:
    if not isinstance(raw, list) or not raw or not all(isinstance(p, str) for p in raw):
        raise CatalogueError(source, where, 'must be a list such as ["PIK 8", "PIK check 4", "zero 8"]')
    try:
        return parse_layout(mode, raw)
    except LayoutSyntaxError as exc:
        at = where if exc.index is None else f"{where}[{exc.index}]"
        raise CatalogueError(source, at, exc.reason) from None


def _check_routes(catalogue: Catalogue) -> None:
    """Two kinds that route alike would make the catalogue ambiguous; one MTI answers one way."""
    seen: dict[tuple[object, ...], str] = {}
    answers: dict[str, tuple[str, str]] = {}
    for kind in catalogue.kinds.values():
        codes = kind.network_codes or (None,)
        modes = kind.entry_modes or (None,)
        for code in codes:
            for mode in modes:
                key = (kind.mti, kind.processing_code, kind.type_code, code, mode)
                if key in seen:
                    raise CatalogueError(
                        catalogue.source, f"kinds.{kind.name}", f"routes exactly like kinds.{seen[key]}"
                    )
                seen[key] = kind.name
        previous = answers.setdefault(kind.mti, (kind.response_mti, kind.name))
        if previous[0] != kind.response_mti:
            raise CatalogueError(
                catalogue.source,
                f"kinds.{kind.name}.response_mti",
                f"{kind.mti} is answered {previous[0]} by kinds.{previous[1]}",
            )


def _routes(kinds: Iterable[MessageKind]) -> Mapping[str, tuple[MessageKind, ...]]:
    """Kinds by MTI, the most specific first (an entry routes by what it declares)."""
    by_mti: dict[str, list[MessageKind]] = {}
    for kind in kinds:
        by_mti.setdefault(kind.mti, []).append(kind)

    def specificity(kind: MessageKind) -> int:
        declared = sum(x is not None for x in (kind.processing_code, kind.type_code))
        return declared + bool(kind.network_codes) + bool(kind.entry_modes)

    return MappingProxyType({mti: tuple(sorted(ks, key=specificity, reverse=True)) for mti, ks in by_mti.items()})


# -- small validators --------------------------------------------------------------------------


def _defined(dialect: Dialect, item: str) -> bool:
    if "." in item:
        return dialect.subfield_spec(item) is not None
    return item.isdigit() and int(item) in dialect.fields


def _echo_item(item: Any, dialects: list[Dialect], source: str, where: str) -> str:
    text = str(item) if isinstance(item, int) and not isinstance(item, bool) else item
    if not isinstance(text, str) or not all(_defined(d, text) for d in dialects):
        raise CatalogueError(source, where, f"{item!r} is not a field or subfield of every dialect served")
    return text


def _field_number(item: Any, dialects: list[Dialect], source: str, where: str) -> int:
    if isinstance(item, bool) or not isinstance(item, int) or not all(item in d.fields for d in dialects):
        raise CatalogueError(source, where, f"{item!r} is not a field of every dialect served")
    return item


def _list(raw: Mapping[str, Any], key: str, source: str, where: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise CatalogueError(source, f"{where}.{key}", "must be a list")
    return value


def _mti(value: Any, source: str, where: str) -> str:
    if not isinstance(value, str) or len(value) != 4 or not value.isdigit():
        raise CatalogueError(source, where, "an MTI is four digits in quotes")
    return value


def _digits(value: Any, width: int, source: str, where: str) -> str:
    if not isinstance(value, str) or len(value) != width or not value.isdigit():
        raise CatalogueError(source, where, f"must be {width} digits in quotes")
    return value


def _text(raw: Mapping[str, Any], key: str, source: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise CatalogueError(source, where, "missing or not a string")
    return value


def _optional_text(raw: Mapping[str, Any], key: str, source: str, where: str) -> str | None:
    return None if key not in raw else _text(raw, key, source, where)


def _no_unknown(raw: Mapping[str, Any], allowed: frozenset[str], source: str, where: str) -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise CatalogueError(source, where, f"unknown keys {sorted(unknown)}")
