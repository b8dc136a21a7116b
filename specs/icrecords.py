"""The records of the UnionPay IC downloads, as field 62 carries them (docs/chip.md).

CA public keys (0800, 60.3 = 370) and IC parameters, one record per AID (60.3 = 380), are
BER-TLV (``specs.tlv``) with the tags of ../shared/vectors/emv.json ``aid_param_tags``; the
lists that come first (0820, 60.3 = 372 / 382) hold a short entry per record. Around them,
field 62 of the list flows:

* the terminal's progress: ``'1'`` and how many entries it has already received, two digits
  (three for the switchsim blacklist), ASCII: ``100`` first;
* the host's answer: one result byte, ``'0'`` nothing to download, ``'1'`` the complete list in
  this message, ``'2'`` a part, more follow (ask again with the new count), ``'3'`` the last
  part; then the entries;
* a record answer: ``'1'`` and the whole record, or ``'0'`` when the host has no such record.

A CA public key carries its checksum (DF03 = SHA-1 over RID, index, modulus and exponent):
``CaPublicKey.check`` verifies it, the switch when it loads a key, the terminal when it
receives one. Every problem is an ``IcRecordError`` saying what and where.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from specs.tlv import Tlv, TlvError, build, parse, unique

RID_LENGTH = 5
EXPIRY_LENGTH = 8  # YYYYMMDD as ASCII, as CUP field 62 carries it


class IcRecordError(ValueError):
    """A record, list or progress value that is not what the IC download says."""


class ListResult(StrEnum):
    """The first byte of a list answer."""

    NONE = "0"  # nothing to download
    ALL = "1"  # the complete list is in this message
    MORE = "2"  # a part: ask again with the new count
    LAST = "3"  # the last part


class Found(StrEnum):
    """The first byte of a record answer."""

    NO = "0"
    YES = "1"


@dataclass(frozen=True, slots=True)
class CaPublicKey:
    """One CA public key (RID + index) with what a terminal needs to recover issuer keys."""

    rid: bytes
    index: int
    modulus: bytes = field(repr=False)
    exponent: bytes
    expiry: str  # YYYYMMDD
    checksum: bytes
    hash_algorithm: int = 0x01  # DF06: 01 SHA-1
    key_algorithm: int = 0x01  # DF07: 01 RSA

    def __post_init__(self) -> None:
        if len(self.rid) != RID_LENGTH:
            raise IcRecordError(f"CA key: RID of {len(self.rid)} bytes; a RID is {RID_LENGTH}")
        if not 0 <= self.index <= 0xFF:
            raise IcRecordError(f"CA key {self.name}: index must be one byte")
        if not 1 <= len(self.exponent) <= 3 or not self.modulus:
            raise IcRecordError(f"CA key {self.name}: exponent of 1-3 bytes and a modulus are needed")
        if len(self.expiry) != EXPIRY_LENGTH or not self.expiry.isdigit():
            raise IcRecordError(f"CA key {self.name}: expiry must be YYYYMMDD")

    @property
    def name(self) -> str:
        return f"{self.rid.hex().upper()}/{self.index:02X}"

    @property
    def ident(self) -> tuple[bytes, int]:
        return (self.rid, self.index)

    def computed_checksum(self) -> bytes:
        return hashlib.sha1(self.rid + bytes([self.index]) + self.modulus + self.exponent).digest()

    def check(self) -> None:
        """Raise unless DF03 is the SHA-1 over RID, index, modulus and exponent."""
        if self.computed_checksum() != self.checksum:
            raise IcRecordError(
                f"CA key {self.name}: checksum DF03 {self.checksum.hex().upper()} is not the SHA-1 of RID, index, "
                f"modulus and exponent ({self.computed_checksum().hex().upper()})"
            )

    def query(self) -> bytes:
        """What a terminal asks a record with (0800/370 field 62): 9F06 RID 9F22 index."""
        return build((Tlv("9F06", self.rid), Tlv("9F22", bytes([self.index]))))

    def list_entry(self) -> bytes:
        """The 23 bytes of this key in the list (0830/372): 9F06 RID, 9F22 index, DF05 expiry."""
        return self.query() + Tlv("DF05", self.expiry.encode("ascii")).encode()

    def record(self) -> bytes:
        return build(
            (
                Tlv("9F06", self.rid),
                Tlv("9F22", bytes([self.index])),
                Tlv("DF05", self.expiry.encode("ascii")),
                Tlv("DF06", bytes([self.hash_algorithm])),
                Tlv("DF07", bytes([self.key_algorithm])),
                Tlv("DF02", self.modulus),
                Tlv("DF04", self.exponent),
                Tlv("DF03", self.checksum),
            )
        )

    @classmethod
    def from_record(cls, data: bytes) -> CaPublicKey:
        """A key from its TLV record, checksum checked."""
        objects = _objects(data, "CA key record")
        for tag in ("9F06", "9F22", "DF02", "DF04", "DF03"):
            if tag not in objects:
                raise IcRecordError(f"CA key record: tag {tag} is missing")
        expiry = objects["DF05"].value if "DF05" in objects else b"00000000"
        try:
            text = expiry.decode("ascii") if len(expiry) == EXPIRY_LENGTH else expiry.hex()
        except UnicodeDecodeError:
            raise IcRecordError("CA key record: DF05 is not YYYYMMDD") from None
        key = cls(
            rid=objects["9F06"].value,
            index=_one_byte(objects["9F22"], "CA key record"),
            modulus=objects["DF02"].value,
            exponent=objects["DF04"].value,
            expiry=text.rjust(EXPIRY_LENGTH, "0")[:EXPIRY_LENGTH],
            checksum=objects["DF03"].value,
            hash_algorithm=_one_byte(objects["DF06"], "CA key record") if "DF06" in objects else 1,
            key_algorithm=_one_byte(objects["DF07"], "CA key record") if "DF07" in objects else 1,
        )
        key.check()
        return key


@dataclass(frozen=True, slots=True)
class AidParameters:
    """The IC parameters of one application (AID): its whole record, 9F06 first."""

    objects: tuple[Tlv, ...]

    def __post_init__(self) -> None:
        if not self.objects or self.objects[0].tag != "9F06":
            raise IcRecordError("AID record: must start with 9F06 (the AID)")
        if not 5 <= len(self.objects[0].value) <= 16:
            raise IcRecordError("AID record: an AID is 5 to 16 bytes")
        try:
            unique(self.objects)
        except TlvError as exc:
            raise IcRecordError(f"AID record {self.objects[0].value.hex().upper()}: {exc.describe()}") from None

    @property
    def aid(self) -> bytes:
        return self.objects[0].value

    @property
    def name(self) -> str:
        return self.aid.hex().upper()

    def value(self, tag: str) -> bytes | None:
        for obj in self.objects:
            if obj.tag == tag:
                return obj.value
        return None

    def amount(self, tag: str) -> int | None:
        """An n12 amount (9F7B, DF19, DF20, DF21) in minor units."""
        raw = self.value(tag)
        return int(raw.hex()) if raw is not None and raw.hex().isdigit() else None

    def query(self) -> bytes:
        return Tlv("9F06", self.aid).encode()

    def list_entry(self) -> bytes:
        return self.query()

    def record(self) -> bytes:
        return build(self.objects)

    @classmethod
    def from_record(cls, data: bytes) -> AidParameters:
        try:
            return cls(parse(data, field="62"))
        except TlvError as exc:
            raise IcRecordError(f"AID record: {exc.describe()}") from None


# -- field 62 of the list flows ----------------------------------------------------------------


def progress(count: int, digits: int = 2) -> bytes:
    """The terminal's progress: '1' and how many entries it has already received."""
    if not 0 <= count < 10**digits:
        raise IcRecordError(f"progress: {count} does not fit {digits} digits")
    return b"1" + f"{count:0{digits}d}".encode("ascii")


def parse_progress(data: bytes, digits: int = 2) -> int:
    text = data.decode("latin-1")
    if len(text) != 1 + digits or text[0] != "1" or not text[1:].isdigit():
        raise IcRecordError(f"field 62 must be '1' and {digits} digits (entries already received), got {data!r}")
    return int(text[1:])


def list_part(entries: Sequence[bytes], start: int, room: int, max_entries: int = 0) -> tuple[bytes, int]:
    """The list answer from entry ``start`` on, in at most ``room`` bytes (field 62's size) and
    at most ``max_entries`` entries (0: no limit); returns it and how many entries it holds."""
    if start >= len(entries):
        return (ListResult.NONE.encode() if start == 0 else ListResult.LAST.encode()), 0
    taken: list[bytes] = []
    used = 1
    for entry in entries[start:]:
        if used + len(entry) > room or (max_entries and len(taken) == max_entries):
            break
        taken.append(entry)
        used += len(entry)
    if not taken:
        raise IcRecordError(f"an entry of {len(entries[start])} bytes does not fit field 62 ({room} bytes)")
    done = start + len(taken) == len(entries)
    result = (ListResult.ALL if start == 0 else ListResult.LAST) if done else ListResult.MORE
    return result.encode() + b"".join(taken), len(taken)


def split_list(data: bytes, first_tag: str) -> tuple[ListResult, list[tuple[Tlv, ...]]]:
    """A list answer: its result and its entries (each a run of objects starting with ``first_tag``)."""
    if not data:
        raise IcRecordError("list answer: field 62 is empty")
    try:
        result = ListResult(chr(data[0]))
    except ValueError:
        raise IcRecordError(f"list answer: result byte {data[:1].hex().upper()} is not '0'-'3'") from None
    entries: list[list[Tlv]] = []
    for obj in parse(data[1:], base_offset=1, field="62"):
        if obj.tag == first_tag:
            entries.append([])
        if not entries:
            raise IcRecordError(f"list answer: tag {obj.tag} before the first {first_tag}")
        entries[-1].append(obj)
    return result, [tuple(e) for e in entries]


def record_answer(record: bytes | None) -> bytes:
    return Found.NO.encode() if record is None else Found.YES.encode() + record


def split_record_answer(data: bytes) -> bytes | None:
    """The record of a record answer, or None when the host had none."""
    if data[:1] == Found.NO.encode():
        return None
    if data[:1] != Found.YES.encode():
        raise IcRecordError(f"record answer: first byte {data[:1].hex().upper()} is not '0' or '1'")
    return data[1:]


def version_of(records: Iterable[bytes]) -> str:
    """A short fingerprint of a set of records: a terminal whose copy has another is out of date."""
    digest = hashlib.sha1()
    for record in records:
        digest.update(len(record).to_bytes(2, "big") + record)
    return digest.hexdigest()[:16].upper()


# -- the blacklist (switchsim layout, docs/chip.md) ---------------------------------------------

BLACKLIST_PROGRESS_DIGITS = 3


def blacklist_entry(pan: str) -> bytes:
    """Two ASCII digits of length and the card number (or BIN prefix) as ASCII digits."""
    if not (pan.isdigit() and 1 <= len(pan) <= 19):
        raise IcRecordError("blacklist entry: 1 to 19 digits")
    return f"{len(pan):02d}{pan}".encode("ascii")


def split_blacklist(data: bytes) -> tuple[ListResult, list[str]]:
    if not data:
        raise IcRecordError("blacklist answer: field 62 is empty")
    try:
        result = ListResult(chr(data[0]))
    except ValueError:
        raise IcRecordError(f"blacklist answer: result byte {data[:1].hex().upper()} is not '0'-'3'") from None
    text = data[1:].decode("latin-1")
    out: list[str] = []
    pos = 0
    while pos < len(text):
        size = text[pos : pos + 2]
        if not size.isdigit() or pos + 2 + int(size) > len(text) or not text[pos + 2 : pos + 2 + int(size)].isdigit():
            raise IcRecordError(f"blacklist answer: entry at byte {pos + 1} is not a 2-digit length and digits")
        out.append(text[pos + 2 : pos + 2 + int(size)])
        pos += 2 + int(size)
    return result, out


def _objects(data: bytes, what: str) -> Mapping[str, Tlv]:
    try:
        return unique(parse(data, field="62"), field="62")
    except TlvError as exc:
        raise IcRecordError(f"{what}: {exc.describe()}") from None


def _one_byte(obj: Tlv, what: str) -> int:
    if len(obj.value) != 1:
        raise IcRecordError(f"{what}: tag {obj.tag} must be one byte")
    return obj.value[0]
