"""The IC data the switch hands out: CA public keys, IC parameters per AID, the card blacklist.

The published UnionPay CA public keys and a default AID set ship with the package
(switch/data/unionpay-capk.toml, switch/data/default-aids.toml); ``[[capk]]``, ``[[aid]]`` and
``[[blacklist]]`` in the switch config replace entries with the same key or add new ones. A CA
key's checksum (DF03) is checked here, when it is loaded. The records' wire form is
specs/icrecords.py; the download flows are switch/icdownload.py.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from specs.icrecords import AidParameters, CaPublicKey, IcRecordError, blacklist_entry, version_of
from specs.tlv import Tlv, TlvError

CAPK_KEYS = frozenset(
    {"rid", "index", "expiry", "hash_algorithm", "key_algorithm", "exponent", "modulus", "checksum"}
)
# AID record keys and the tag each becomes, in the order of the record (emv.json aid_param_tags).
# Kind: "hex" bytes as written, "fen4" a 4-byte binary amount, "n12" 12 BCD digits of minor units.
_AID_TAGS: tuple[tuple[str, str, str], ...] = (
    ("selection", "DF01", "hex"),
    ("version", "9F09", "hex"),
    ("tac_default", "DF11", "hex"),
    ("tac_online", "DF12", "hex"),
    ("tac_denial", "DF13", "hex"),
    ("floor_limit", "9F1B", "fen4"),
    ("threshold", "DF15", "fen4"),
    ("max_target", "DF16", "hex"),
    ("target", "DF17", "hex"),
    ("ddol", "DF14", "hex"),
    ("online_pin", "DF18", "hex"),
    ("ec_limit", "9F7B", "n12"),
    ("contactless_floor_limit", "DF19", "n12"),
    ("contactless_limit", "DF20", "n12"),
    ("contactless_cvm_limit", "DF21", "n12"),
)
AID_KEYS = frozenset({"name", "aid", *(key for key, _, _ in _AID_TAGS)})
BLACKLIST_KEYS = frozenset({"pan"})
_MAX_N12 = 999_999_999_999


class IcParamError(ValueError):
    """An entry that cannot be used: ``where`` is its key as written ("capk[2].checksum")."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


@dataclass(frozen=True, slots=True)
class IcParameters:
    """What the switch serves in the IC downloads, each set in the order it is listed."""

    capks: tuple[CaPublicKey, ...] = ()
    aids: tuple[AidParameters, ...] = ()
    blacklist: tuple[str, ...] = field(default=(), repr=False)  # PANs or BIN prefixes

    def versions(self) -> Mapping[str, str]:
        """A fingerprint of each set: a terminal whose last download had another is stale."""
        return {
            "capk": version_of(k.record() for k in self.capks),
            "aid": version_of(a.record() for a in self.aids),
            "blacklist": version_of(p.encode("ascii") for p in self.blacklist),
        }

    def capk(self, rid: bytes, index: int) -> CaPublicKey | None:
        return next((k for k in self.capks if k.ident == (rid, index)), None)

    def aid(self, aid: bytes) -> AidParameters | None:
        return next((a for a in self.aids if a.aid == aid), None)

    def blacklist_entries(self) -> list[bytes]:
        return [blacklist_entry(pan) for pan in self.blacklist]


def parse_capk(raw: Mapping[str, Any], where: str) -> CaPublicKey:
    _known(raw, CAPK_KEYS, where)
    values = {key: _hex(raw, key, where) for key in ("rid", "index", "exponent", "modulus", "checksum")}
    expiry = raw.get("expiry", "00000000")
    if not (isinstance(expiry, str) and len(expiry) == 8 and expiry.isdigit()):
        raise IcParamError(f"{where}.expiry", "must be YYYYMMDD")
    algorithms = {}
    for name in ("hash_algorithm", "key_algorithm"):
        value = _hex(raw, name, where) if name in raw else b"\x01"
        if len(value) != 1:
            raise IcParamError(f"{where}.{name}", 'must be one byte, e.g. "01"')
        algorithms[name] = value[0]
    if len(values["index"]) != 1:
        raise IcParamError(f"{where}.index", "must be one byte, e.g. \"03\"")
    try:
        key = CaPublicKey(
            rid=values["rid"],
            index=values["index"][0],
            modulus=values["modulus"],
            exponent=values["exponent"],
            expiry=expiry,
            checksum=values["checksum"],
            hash_algorithm=algorithms["hash_algorithm"],
            key_algorithm=algorithms["key_algorithm"],
        )
        key.check()
    except IcRecordError as exc:
        raise IcParamError(f"{where}.checksum" if "checksum" in str(exc) else where, str(exc)) from None
    return key


def parse_aid(raw: Mapping[str, Any], where: str) -> AidParameters:
    _known(raw, AID_KEYS, where)
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise IcParamError(f"{where}.name", "must be text")
    objects = [Tlv("9F06", _hex(raw, "aid", where))]
    for key, tag, kind in _AID_TAGS:
        if key not in raw:
            continue
        value = raw[key]
        if kind == "hex":
            data = _hex(raw, key, where)
        else:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_N12:
                raise IcParamError(f"{where}.{key}", f"must be a whole number of minor units (fen), 0 to {_MAX_N12}")
            if kind == "fen4":
                if value > 0xFFFFFFFF:
                    raise IcParamError(f"{where}.{key}", "must fit 4 bytes")
                data = value.to_bytes(4, "big")
            else:
                data = bytes.fromhex(f"{value:012d}")
        try:
            objects.append(Tlv(tag, data))
        except TlvError as exc:
            raise IcParamError(f"{where}.{key}", exc.describe()) from None
    try:
        return AidParameters(tuple(objects))
    except IcRecordError as exc:
        raise IcParamError(f"{where}.aid", str(exc)) from None


def parse_blacklist(raw: Mapping[str, Any], where: str) -> str:
    _known(raw, BLACKLIST_KEYS, where)
    pan = raw.get("pan")
    if not (isinstance(pan, str) and pan.isascii() and pan.isdigit() and 1 <= len(pan) <= 19):
        raise IcParamError(f"{where}.pan", "must be 1 to 19 digits (a card number or its first digits)")
    return pan


@cache
def shipped() -> IcParameters:
    """The keys and AIDs that ship with the package (checked: a bad one is a packaging bug)."""
    folder = resources.files("switch") / "data"
    capk = tomllib.loads((folder / "unionpay-capk.toml").read_text(encoding="utf-8"))
    aids = tomllib.loads((folder / "default-aids.toml").read_text(encoding="utf-8"))
    return IcParameters(
        capks=tuple(parse_capk(raw, f"unionpay-capk.toml: capk[{i}]") for i, raw in enumerate(capk["capk"])),
        aids=tuple(parse_aid(raw, f"default-aids.toml: aid[{i}]") for i, raw in enumerate(aids["aid"])),
    )


def merged(
    capks: Sequence[CaPublicKey], aids: Sequence[AidParameters], blacklist: Sequence[str]
) -> IcParameters:
    """The shipped set with the config's entries: same key replaces, new key is added."""
    base = shipped()
    keys = {k.ident: k for k in base.capks}
    keys.update({k.ident: k for k in capks})
    apps = {a.aid: a for a in base.aids}
    apps.update({a.aid: a for a in aids})
    return IcParameters(tuple(keys.values()), tuple(apps.values()), tuple(dict.fromkeys(blacklist)))


def _known(raw: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise IcParamError(f"{where}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(allowed))})")


def _hex(raw: Mapping[str, Any], key: str, where: str) -> bytes:
    value = raw.get(key)
    if not isinstance(value, str) or len(value) % 2 or not value:
        raise IcParamError(f"{where}.{key}", "must be hex digits, two a byte")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise IcParamError(f"{where}.{key}", "must be hex digits, two a byte") from None
