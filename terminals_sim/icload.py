"""The virtual terminal's IC downloads (docs/chip.md): CA public keys, IC parameters per AID
and the card blacklist, as emv.json's ``cup_ic_messages.download_flow`` describes them.

A download is a small state machine: ask for the list (0820, with how many entries the
terminal already has) until the host says it was the last part; ask for each record (0800);
then say it is done (0800). A CA key is kept only when its checksum (DF03, SHA-1 over RID,
index, modulus, exponent) verifies; one that does not is a ``bad_check_value`` and ends the
download, keeping none of it. The records' wire form is specs/icrecords.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from specs.icrecords import (
    BLACKLIST_PROGRESS_DIGITS,
    AidParameters,
    CaPublicKey,
    IcRecordError,
    ListResult,
    progress,
    split_blacklist,
    split_list,
    split_record_answer,
)
from specs.tlv import build
from terminals_sim.outcome import Kind


class Phase(StrEnum):
    LIST = "list"
    RECORDS = "records"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class DownloadKinds:
    """The three request kinds of one download, and what the list's entries start with."""

    what: str
    list: Kind
    record: Kind | None
    done: Kind
    first_tag: str


DOWNLOADS: dict[Kind, DownloadKinds] = {
    Kind.CAPK_DOWNLOAD: DownloadKinds("CA public key", Kind.CAPK_LIST, Kind.CAPK_RECORD, Kind.CAPK_DONE, "9F06"),
    Kind.AID_DOWNLOAD: DownloadKinds("IC parameter", Kind.AID_LIST, Kind.AID_RECORD, Kind.AID_DONE, "9F06"),
    Kind.BLACKLIST_DOWNLOAD: DownloadKinds("card blacklist", Kind.BLACKLIST, None, Kind.BLACKLIST_DONE, ""),
}
#: A scenario step made of downloads, in order.
COMPOSITE: dict[Kind, tuple[Kind, ...]] = {
    Kind.IC_DOWNLOAD: (Kind.CAPK_DOWNLOAD, Kind.AID_DOWNLOAD),
    Kind.CAPK_DOWNLOAD: (Kind.CAPK_DOWNLOAD,),
    Kind.AID_DOWNLOAD: (Kind.AID_DOWNLOAD,),
    Kind.BLACKLIST_DOWNLOAD: (Kind.BLACKLIST_DOWNLOAD,),
}


@dataclass
class Download:
    """One download under way."""

    kinds: DownloadKinds
    phase: Phase = Phase.LIST
    listed: list[bytes] = field(default_factory=list)  # each entry's query (what 0800 asks with)
    fetched: int = 0
    capks: list[CaPublicKey] = field(default_factory=list)
    aids: list[AidParameters] = field(default_factory=list)
    blacklist: list[str] = field(default_factory=list)

    @property
    def next_kind(self) -> Kind:
        if self.phase is Phase.LIST:
            return self.kinds.list
        if self.phase is Phase.RECORDS:
            assert self.kinds.record is not None
            return self.kinds.record
        return self.kinds.done


class IcData:
    """What the terminal has downloaded, and the download under way (one at a time)."""

    __slots__ = ("aids", "blacklist", "capks", "download")

    def __init__(self) -> None:
        self.capks: dict[tuple[bytes, int], CaPublicKey] = {}
        self.aids: dict[bytes, AidParameters] = {}
        self.blacklist: tuple[str, ...] = ()
        self.download: Download | None = None

    def begin(self, which: Kind) -> Kind:
        """Start the download ``which`` (CAPK_DOWNLOAD, ...); returns its first request kind."""
        self.download = Download(DOWNLOADS[which])
        return self.download.next_kind

    @property
    def next_kind(self) -> Kind | None:
        return self.download.next_kind if self.download is not None else None

    def request_62(self) -> bytes | None:
        """Field 62 of the next request of the download under way."""
        down = self.download
        assert down is not None
        if down.phase is Phase.LIST:
            digits = BLACKLIST_PROGRESS_DIGITS if down.kinds.record is None else 2
            return progress(len(down.listed) if down.kinds.record else len(down.blacklist), digits)
        if down.phase is Phase.RECORDS:
            return down.listed[down.fetched]
        return None

    def take(self, kind: Kind, field62: bytes | None) -> str:
        """Take an approved answer of the download; returns a problem ("" when none). A
        problem starting "checksum" is a CA key that did not match its checksum."""
        down = self.download
        if down is None or kind is not down.next_kind:
            return f"{kind.value} answered, but no download was waiting for it"
        try:
            if down.phase is Phase.LIST:
                return self._list(down, field62)
            if down.phase is Phase.RECORDS:
                return self._record(down, field62)
        except IcRecordError as exc:
            self.download = None
            return str(exc)
        self._finish(down)
        return ""

    def abandon(self) -> None:
        self.download = None

    def _list(self, down: Download, field62: bytes | None) -> str:
        if field62 is None:
            raise IcRecordError(f"{down.kinds.what} list answer without field 62")
        if down.kinds.record is None:
            result, pans = split_blacklist(field62)
            down.blacklist += pans
        else:
            result, entries = split_list(field62, down.kinds.first_tag)
            down.listed += [build(entry[:2] if down.kinds.list is Kind.CAPK_LIST else entry[:1]) for entry in entries]
        if result in (ListResult.NONE, ListResult.ALL, ListResult.LAST):
            down.phase = Phase.RECORDS if down.listed else Phase.DONE
        return ""

    def _record(self, down: Download, field62: bytes | None) -> str:
        if field62 is None:
            raise IcRecordError(f"{down.kinds.what} record answer without field 62")
        record = split_record_answer(field62)
        down.fetched += 1
        if record is not None:
            if down.kinds.list is Kind.CAPK_LIST:
                try:
                    key = CaPublicKey.from_record(record)
                except IcRecordError as exc:
                    raise IcRecordError(f"checksum: {exc}" if "checksum" in str(exc) else str(exc)) from None
                down.capks.append(key)
            else:
                down.aids.append(AidParameters.from_record(record))
        if down.fetched >= len(down.listed):
            down.phase = Phase.DONE
        return ""

    def _finish(self, down: Download) -> None:
        if down.kinds.list is Kind.CAPK_LIST:
            self.capks = {k.ident: k for k in down.capks}
        elif down.kinds.list is Kind.AID_LIST:
            self.aids = {a.aid: a for a in down.aids}
        else:
            self.blacklist = tuple(down.blacklist)
        self.download = None
