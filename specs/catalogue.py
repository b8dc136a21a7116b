"""The message catalogue: every request kind of a dialect once, as data beside the dialect.

A catalogue file (``specs/dialects/<name>.messages.toml``) says, for each kind a terminal can
ask for: its MTI, processing code (3), message type code (60.1) and network management code
(60.3, or 70 in ISO 8583:1987), whether it carries a MAC, what it needs (a signed-in terminal,
an operator, the supervisor), the response MTI, the fields its answer must echo and, for a
sign-in, the field 62 layout of each key mode. The switch routes by it, the virtual terminal
builds its requests and reads field 62 by it, and ``switchsim specs show NAME --messages``
prints it. docs/cup-pos.md explains the cup-pos facts behind the data.

An entry routes by what it declares: a kind that names no 60.1 matches any 60.1, and the
request builder fills what an entry leaves out from the catalogue's ``[defaults]``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from specs import loader
from specs.codec import Codec
from specs.dialect import Dialect
from specs.errors import SpecError
from specs.message import Message, join_subfields

#: The dialect a terminal, the fleet and the switch speak unless told otherwise.
DEFAULT_DIALECT = "cup-pos"
CATALOGUE_SUFFIX = ".messages.toml"
#: 39 for a request no entry serves, unless the catalogue's ``unmatched`` says otherwise.
FUNCTION_NOT_SUPPORTED = "40"
_MAC_FIELD = 64
_MAC_PLACEHOLDER = "0" * 16
_MAC_BYTES = 8


class CatalogueError(SpecError):
    """A catalogue file is invalid, or no catalogue serves a dialect: names file, entry, key."""


class Needs(StrEnum):
    """What a kind needs before a host serves it."""

    NOTHING = "nothing"
    SIGNED_IN = "signed_in"  # a terminal signed in (working keys)
    OPERATOR = "operator"  # as signed_in, and an operator signed in
    SUPERVISOR = "supervisor"  # as signed_in, and the supervisor (operator 00) signed in


class KeyName(StrEnum):
    """The working keys a sign-in answer carries in field 62."""

    PIK = "PIK"
    MAK = "MAK"
    TDK = "TDK"


class PartRole(StrEnum):
    KEY = "key"  # a key's ciphertext under the TMK
    CHECK = "check"  # the first bytes of E(clear key, 8 zero bytes)
    ZERO = "zero"  # filler, all zero


class KeyLayoutError(Exception):
    """Field 62 does not fit its layout. The reason names parts and lengths, never a key byte."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class LayoutPart:
    role: PartRole
    length: int
    key: KeyName | None = None  # None for filler

    def label(self) -> str:
        if self.role is PartRole.ZERO:
            return f"zero({self.length})"
        suffix = " CV" if self.role is PartRole.CHECK else ""
        return f"{self.key}{suffix}({self.length})"


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Field 62 of a sign-in answer for one key mode: the parts in wire order."""

    mode: str
    parts: tuple[LayoutPart, ...]

    @property
    def length(self) -> int:
        return sum(p.length for p in self.parts)

    @property
    def keys(self) -> tuple[KeyName, ...]:
        return tuple(p.key for p in self.parts if p.role is PartRole.KEY and p.key is not None)

    def key_length(self, key: KeyName) -> int:
        for part in self.parts:
            if part.role is PartRole.KEY and part.key is key:
                return part.length
        raise KeyError(key)

    def describe(self) -> str:
        return " + ".join(p.label() for p in self.parts)

    def build(self, keys: Mapping[KeyName, tuple[bytes, bytes]]) -> bytes:
        """Field 62 from each key's (ciphertext under the TMK, check value); a check value
        longer than its part is cut to the part (UnionPay sends the first 4 bytes)."""
        out = bytearray()
        for part in self.parts:
            if part.role is PartRole.ZERO:
                out += bytes(part.length)
                continue
            assert part.key is not None
            if part.key not in keys:
                raise KeyLayoutError(f"sign-in {self.mode} needs a {part.key}")
            encrypted, check = keys[part.key]
            value = encrypted if part.role is PartRole.KEY else check[: part.length]
            if len(value) != part.length:
                raise KeyLayoutError(f"{part.label()} given {len(value)} bytes")
            out += value
        return bytes(out)

    def parse(self, data: bytes, *, strict: bool = False) -> dict[KeyName, tuple[bytes, bytes]]:
        """Each key's (ciphertext, check value); ``strict`` also wants the filler zero."""
        if len(data) != self.length:
            raise KeyLayoutError(f"field 62 is {len(data)} bytes, sign-in {self.mode} needs {self.length}")
        encrypted: dict[KeyName, bytes] = {}
        checks: dict[KeyName, bytes] = {}
        pos = 0
        for part in self.parts:
            chunk = data[pos : pos + part.length]
            if part.role is PartRole.ZERO:
                if strict and any(chunk):
                    raise KeyLayoutError(f"field 62 bytes {pos}..{pos + part.length - 1} (filler) are not zero")
            elif part.key is not None:
                (encrypted if part.role is PartRole.KEY else checks)[part.key] = chunk
            pos += part.length
        return {key: (encrypted[key], checks[key]) for key in encrypted}


@dataclass(frozen=True, slots=True)
class MessageKind:
    """One request kind: how it looks on the wire and what a host does before serving it."""

    name: str
    title: str
    mti: str
    response_mti: str
    processing_code: str | None  # 3; None: any (routing) and none or the original's (building)
    type_code: str | None  # 60.1; None: any
    network_codes: tuple[str, ...]  # 60.3 or 70; () any; a sign-in has one per key mode
    maced: bool
    needs: Needs
    echo: tuple[str, ...]  # "11", "60.3": what the answer must give back unchanged
    from_original: tuple[int, ...]  # fields a request repeats from the one it refers to
    key_layouts: Mapping[str, KeyLayout]  # by network code (key mode); empty: no keys

    @property
    def network_code(self) -> str | None:
        """The one network code of a kind that has exactly one."""
        return self.network_codes[0] if len(self.network_codes) == 1 else None

    def layout(self, mode: str) -> KeyLayout:
        try:
            return self.key_layouts[mode]
        except KeyError:
            raise KeyLayoutError(f"{self.name} has no field 62 layout for key mode {mode}") from None


@dataclass(frozen=True, slots=True)
class Skeleton:
    """What a request of one kind starts as: its MTI, 3 and 60 (or 70)."""

    mti: str
    fields: Mapping[int, str]


@dataclass(frozen=True, slots=True)
class Catalogue:
    name: str
    source: str
    dialects: tuple[str, ...]
    description: str
    network_code_field: str  # "60.3" or "70"
    type_code_field: str | None  # "60.1"
    batch_field: str | None  # "60.2"
    default_type_code: str | None  # 60.1 of a request whose kind names none
    default_network_code: str | None  # 60.3 (or 70) of a request whose kind names none
    kinds: Mapping[str, MessageKind]
    unmatched: Mapping[str, str]  # MTI -> 39 when no entry serves its codes
    dialect: Dialect  # the first of ``dialects``, which every check was made against
    # Kinds by MTI, the most specific first, and the answer MTI of each request MTI.
    routes: Mapping[str, tuple[MessageKind, ...]] = field(default_factory=dict, repr=False)
    answers: Mapping[str, str] = field(default_factory=dict, repr=False)

    # -- looking up -------------------------------------------------------------------------

    def get(self, name: str) -> MessageKind | None:
        return self.kinds.get(name)

    def kind(self, name: str) -> MessageKind:
        found = self.kinds.get(name)
        if found is None:
            raise CatalogueError(self.source, f"kinds.{name}", f"no such kind in the {self.name} catalogue")
        return found

    def lookup(self, message: Message) -> MessageKind | None:
        """The kind a decoded request is, or None when no entry serves it."""
        candidates = self.routes.get(message.mti)
        if not candidates:
            return None
        pcode = message.get(3)
        parts = message.subfields(60) if "." in self.network_code_field or self.type_code_field else {}
        type_code = parts.get(self.type_code_field) if self.type_code_field else None
        network = parts.get(self.network_code_field) if "." in self.network_code_field else message.get(70)
        for kind in candidates:
            if kind.processing_code is not None and kind.processing_code != pcode:
                continue
            if kind.type_code is not None and kind.type_code != type_code:
                continue
            if kind.network_codes and network not in kind.network_codes:
                continue
            return kind
        return None

    def unmatched_code(self, mti: str) -> str:
        """Field 39 for a request of ``mti`` that no entry serves."""
        return self.unmatched.get(mti, FUNCTION_NOT_SUPPORTED)

    def response_mti(self, mti: str) -> str:
        """The answer's MTI: what the catalogue says for ``mti``, else the ISO rule."""
        return self.answers.get(mti) or response_mti(mti)

    def network_code(self, message: Message) -> str | None:
        """60.3 (or 70) of a message."""
        if "." in self.network_code_field:
            return message.sub(self.network_code_field)
        return message.get(int(self.network_code_field))

    # -- building ---------------------------------------------------------------------------

    def request(
        self,
        name: str,
        *,
        batch: str = "000000",
        code: str | None = None,
        original: Skeleton | None = None,
    ) -> Skeleton:
        """MTI, 3 and 60 (subfields joined) or 70 of a request of kind ``name``.

        ``code`` chooses among a kind's network codes (a sign-in's key mode); ``original`` is
        the skeleton of the request this one refers to, whose ``from_original`` fields it repeats.
        """
        kind = self.kind(name)
        network = code if code is not None else kind.network_code
        if kind.network_codes and network not in kind.network_codes:
            raise CatalogueError(self.source, f"kinds.{name}", f"network code {network!r} is not one of the kind's")
        fields: dict[int, str] = {}
        if kind.processing_code is not None:
            fields[3] = kind.processing_code
        subfields: dict[str, str] = {}
        type_code = kind.type_code or self.default_type_code
        if self.type_code_field is not None and type_code is not None:
            subfields[self.type_code_field] = type_code
        if self.batch_field is not None:
            subfields[self.batch_field] = batch
        code_value = network or self.default_network_code
        if code_value is not None:
            if "." in self.network_code_field:
                subfields[self.network_code_field] = code_value
            else:
                fields[int(self.network_code_field)] = code_value
        for parent in sorted({int(sub.partition(".")[0]) for sub in subfields}):
            mine = {k: v for k, v in subfields.items() if k.startswith(f"{parent}.")}
            fields[parent] = join_subfields(parent, mine, self.dialect)
        if kind.from_original:
            if original is None:
                raise CatalogueError(self.source, f"kinds.{name}", "needs the original request it repeats")
            for number in kind.from_original:
                if number in original.fields:
                    fields[number] = original.fields[number]
        return Skeleton(kind.mti, MappingProxyType(dict(sorted(fields.items()))))


def echo_value(message: Message, item: str) -> str | None:
    """The value of an echo item ("11" or "60.3") in ``message``."""
    return message.sub(item) if "." in item else message.get(int(item))


def response_mti(mti: str) -> str:
    """ISO 8583 answers a request with the function digit (the third) one higher: 0800 -> 0810.
    A function digit of 9 stays 9: there is no higher one."""
    return mti[:2] + str(min(int(mti[2]) + 1, 9)) + mti[3]


def mac_input(codec: Codec, message: Message) -> bytes:
    """The bytes a POS MAC (field 64) covers, for building and for checking alike: the message
    encoded with field 64 present and zero, less those last 8 bytes; that is every byte from
    the MTI up to field 64 (docs/cup-pos.md, "The MAC"). Field 64 must be the last field."""
    if any(n > _MAC_FIELD for n in message.fields):
        raise ValueError("the POS MAC is field 64, so no field may follow it")
    body = codec.encode(codec.amend(message, {_MAC_FIELD: _MAC_PLACEHOLDER}), validate=False)
    return body[:-_MAC_BYTES]


# -- finding and loading ---------------------------------------------------------------------


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
     "unmatched", "kinds"}
)
_KIND_KEYS = frozenset(
    {"title", "mti", "response_mti", "processing_code", "type_code", "network_code", "maced", "needs",
     "echo", "from_original", "field62"}
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
    raw_kinds = data.get("kinds")
    if not isinstance(raw_kinds, dict) or not raw_kinds:
        raise CatalogueError(source, "kinds", "a catalogue needs at least one kind")
    kinds = {
        kind_name: _kind(kind_name, raw, dialects, source, type_field is not None)
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
        routes=_routes(kinds.values()),
        answers=MappingProxyType({k.mti: k.response_mti for k in kinds.values()}),
    )
    _check_routes(catalogue)
    return catalogue


def _kind(name: str, raw: Any, dialects: list[Dialect], source: str, has_type_field: bool) -> MessageKind:
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
    )


def _layout(mode: str, raw: Any, source: str, where: str) -> KeyLayout:
    if not isinstance(raw, list) or not raw or not all(isinstance(p, str) for p in raw):
        raise CatalogueError(source, where, 'must be a list such as ["PIK 8", "PIK check 4", "zero 8"]')
    parts: list[LayoutPart] = []
    for index, text in enumerate(raw):
        words = text.split()
        at = f"{where}[{index}]"
        if not words or not words[-1].isdigit() or int(words[-1]) < 1:
            raise CatalogueError(source, at, f"{text!r} must end with a length in bytes")
        length = int(words[-1])
        head = words[:-1]
        if head == ["zero"]:
            parts.append(LayoutPart(PartRole.ZERO, length))
            continue
        if len(head) not in (1, 2) or head[0] not in KeyName.__members__ or head[1:] not in ([], ["check"]):
            raise CatalogueError(source, at, f"{text!r} is not 'KEY n', 'KEY check n' or 'zero n' (KEY: PIK, MAK, TDK)")
        key = KeyName(head[0])
        role = PartRole.CHECK if head[1:] else PartRole.KEY
        if role is PartRole.KEY and length not in (8, 16, 24):
            raise CatalogueError(source, at, f"a DES key is 8, 16 or 24 bytes, not {length}")
        if role is PartRole.CHECK and length > 8:
            raise CatalogueError(source, at, "a check value is at most 8 bytes")
        parts.append(LayoutPart(role, length, key))
    for key in {p.key for p in parts if p.key is not None}:
        roles = [p.role for p in parts if p.key is key]
        if roles != [PartRole.KEY, PartRole.CHECK]:
            raise CatalogueError(source, where, f"{key} needs its key and then its check value, once each")
    if KeyName.PIK not in {p.key for p in parts} or KeyName.MAK not in {p.key for p in parts}:
        raise CatalogueError(source, where, "a sign-in layout carries at least a PIK and a MAK")
    return KeyLayout(mode, tuple(parts))


def _check_routes(catalogue: Catalogue) -> None:
    """Two kinds that route alike would make the catalogue ambiguous; one MTI answers one way."""
    seen: dict[tuple[object, ...], str] = {}
    answers: dict[str, tuple[str, str]] = {}
    for kind in catalogue.kinds.values():
        codes = kind.network_codes or (None,)
        for code in codes:
            key = (kind.mti, kind.processing_code, kind.type_code, code)
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
        return sum(x is not None for x in (kind.processing_code, kind.type_code)) + bool(kind.network_codes)

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
