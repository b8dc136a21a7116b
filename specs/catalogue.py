"""The message catalogue: every request kind of a dialect once, as data beside the dialect.

A catalogue file (``specs/dialects/<name>.messages.toml``) says, for each kind a terminal can
ask for: its MTI, processing code (3), message type code (60.1) and network management code
(60.3, or 70 in ISO 8583:1987), whether it carries a MAC, what it needs (a signed-in terminal,
an operator, the supervisor), the response MTI, the fields its answer must echo and, for a
sign-in, the field 62 layout of each key mode. The switch routes by it, the virtual terminal
builds its requests and reads field 62 by it, and ``switchsim specs show NAME --messages``
prints it. docs/cup-pos.md explains the cup-pos facts behind the data.

This module holds the values and what is done with them (routing a decoded message, building
a request's skeleton, the MAC input, the answer MTI); specs/catalogue_loader.py finds and
validates the files, specs/keylayout.py the field 62 layouts.

An entry routes by what it declares: a kind that names no 60.1 matches any 60.1, and the
request builder fills what an entry leaves out from the catalogue's ``[defaults]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from specs.codec import Codec, FieldSlot
from specs.dialect import Dialect
from specs.errors import SpecError
from specs.keylayout import KeyLayout, KeyLayoutError
from specs.message import Message, join_subfields

#: The dialect a terminal, the fleet and the switch speak unless told otherwise.
DEFAULT_DIALECT = "cup-pos"
#: 39 for a request no entry serves, unless the catalogue's ``unmatched`` says otherwise.
FUNCTION_NOT_SUPPORTED = "40"
_FOUND_MEMO = 1024  # field combinations (Catalogue.lookup)
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
    entry_modes: tuple[str, ...] = ()  # the first two digits of 22 it routes on; () any
    icc: str | None = None  # the ICC tag list (the catalogue's ``icc_lists``) its field 55 carries
    arqc: bool = False  # the host verifies the card's ARQC and answers with tag 91

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
class IccList:
    """The data objects a kind's field 55 carries, in the order a terminal sends them."""

    name: str
    tags: tuple[str, ...]
    optional: frozenset[str]

    @property
    def mandatory(self) -> tuple[str, ...]:
        return tuple(tag for tag in self.tags if tag not in self.optional)


@dataclass(frozen=True, slots=True)
class IccRules:
    """What a chip card changes on the wire: where its data goes and how a terminal says how
    it read the card (docs/chip.md)."""

    field: int  # 55
    read_capability_field: str  # 60.4: 5 contact IC, 6 contact and contactless
    condition_field: str  # 60.5: 0 normal, 2 fallback (the chip could not be read)
    fallback_value: str  # "2"
    swiped_entry_mode: str  # 22 of a magnetic stripe read: "02"
    chip_service_codes: tuple[str, ...]  # first digits of a chip card's service code: 2, 6
    lists: Mapping[str, IccList]


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
    icc: IccRules | None = None  # chip card rules; None: the dialect has no chip kinds
    # Kinds by MTI, the most specific first, and the answer MTI of each request MTI.
    routes: Mapping[str, tuple[MessageKind, ...]] = field(default_factory=dict, repr=False)
    answers: Mapping[str, str] = field(default_factory=dict, repr=False)
    # What lookup found for the fields it reads (dialect, MTI, 3, 22, 60, 70): a fleet sends the same
    # few combinations all day. Emptied when full.
    _found: dict[tuple[str | None, ...], MessageKind | None] = field(
        default_factory=dict, repr=False, compare=False
    )

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
        fields = message.fields
        key = (message.dialect.name, message.mti, fields.get(3), fields.get(22), fields.get(60), fields.get(70))
        try:
            return self._found[key]
        except KeyError:
            pass
        kind = self._match(message)
        if len(self._found) >= _FOUND_MEMO:
            self._found.clear()
        self._found[key] = kind
        return kind

    def _match(self, message: Message) -> MessageKind | None:
        candidates = self.routes.get(message.mti)
        if not candidates:
            return None
        pcode = message.get(3)
        parts = message.subfields(60) if "." in self.network_code_field or self.type_code_field else {}
        type_code = parts.get(self.type_code_field) if self.type_code_field else None
        network = parts.get(self.network_code_field) if "." in self.network_code_field else message.get(70)
        entry = (message.get(22) or "")[:2]
        for kind in candidates:
            if kind.entry_modes and entry not in kind.entry_modes:
                continue
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
        subfields: Mapping[str, str] | None = None,
    ) -> Skeleton:
        """MTI, 3 and 60 (subfields joined) or 70 of a request of kind ``name``.

        ``code`` chooses among a kind's network codes (a sign-in's key mode); ``original`` is
        the skeleton of the request this one refers to, whose ``from_original`` fields it repeats;
        ``subfields`` adds subfields the kind leaves to the terminal (60.4 and 60.5 of a chip
        request: how the card was read).
        """
        kind = self.kind(name)
        network = code if code is not None else kind.network_code
        if kind.network_codes and network not in kind.network_codes:
            raise CatalogueError(self.source, f"kinds.{name}", f"network code {network!r} is not one of the kind's")
        fields: dict[int, str] = {}
        if kind.processing_code is not None:
            fields[3] = kind.processing_code
        parts: dict[str, str] = dict(subfields or {})
        type_code = kind.type_code or self.default_type_code
        if self.type_code_field is not None and type_code is not None:
            parts[self.type_code_field] = type_code
        if self.batch_field is not None:
            parts[self.batch_field] = batch
        code_value = network or self.default_network_code
        if code_value is not None:
            if "." in self.network_code_field:
                parts[self.network_code_field] = code_value
            else:
                fields[int(self.network_code_field)] = code_value
        for parent in sorted({int(sub.partition(".")[0]) for sub in parts}):
            mine = {k: v for k, v in parts.items() if k.startswith(f"{parent}.")}
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
    """ISO 8583 answers a request with the function digit (the third) one higher: 0800 -> 0810,
    0220 -> 0230. A message that is itself an answer (odd third digit: a stray 0210) is answered
    with its own MTI, as nothing answers an answer and an advice MTI (0220) would claim to be a
    request it is not; 9 stays 9."""
    return mti[:2] + str(int(mti[2]) | 1) + mti[3]


def mac_input(codec: Codec, message: Message, received: bytes | None = None) -> bytes:
    """The bytes a POS MAC (field 64) covers, for building and for checking alike: every byte
    from the MTI up to field 64 (docs/cup-pos.md, "The MAC"). Field 64 must be the last field.

    ``received``: the body ``message`` was decoded from. A request's MAC is checked over those
    bytes as they arrived (the body before field 64's offset), as a host must: a re-encoded copy
    costs an encode and would differ from what the terminal MACed wherever the codec normalises
    (lower-case hex). Without it, the message is encoded with field 64 present and zero, less
    those last 8 bytes."""
    if message.fields and max(message.fields) > _MAC_FIELD:
        raise ValueError("the POS MAC is field 64, so no field may follow it")
    at = message.offsets.get(str(_MAC_FIELD)) if received is not None else None
    if received is not None and at is not None:
        return received[:at]
    body = codec.encode(codec.amend(message, {_MAC_FIELD: _MAC_PLACEHOLDER}), validate=False)
    return body[:-_MAC_BYTES]


def mac_slot(codec: Codec, message: Message) -> FieldSlot:
    """``message`` with a zero field 64, encoded (and checked against the dialect's rules) once:
    the slot's ``head`` is the MAC input (`mac_input`), and ``fill`` puts the MAC in its place,
    so an answer is encoded once whether it carries a MAC or not."""
    if message.fields and max(message.fields) > _MAC_FIELD:
        raise ValueError("the POS MAC is field 64, so no field may follow it")
    return codec.slot(codec.amend(message, {_MAC_FIELD: _MAC_PLACEHOLDER}), _MAC_FIELD)
