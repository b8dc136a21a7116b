"""What every handler works with: the services, and the exchange in hand."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from specs.codec import Codec
from specs.framing import Frame
from specs.message import Message
from specs.observer import NULL_OBSERVER, Observer
from switch.config import SwitchConfig
from switch.icparams import IcParameters
from switch.journalsink import InlineJournal, JournalSink
from switch.keyservice import KeyService
from switch.records import AuditEvent, AuditRecord, SessionKeys, TerminalId
from switch.ruleset import RuleSet
from switch.session import NewKeys
from switch.store import Store

_NO_FIELDS: Mapping[int, str] = MappingProxyType({})
MAX_WORKERS = 9  # the RRN's last digit names the worker (Services.next_rrn)


@dataclass(slots=True)
class Services:
    codec: Codec
    store: Store
    keys: KeyService
    config: SwitchConfig
    ic: IcParameters  # what the IC downloads hand out (switch/icparams.py)
    clock: Callable[[], float] = time.time
    # Sessions by terminal, written through to the store: a sign-in outlives its connection.
    # Only read back when the store is not shared (see `session`).
    sessions: dict[TerminalId, SessionKeys | None] = field(default_factory=dict)
    rules: RuleSet | None = None
    observer: Observer = NULL_OBSERVER  # hears rules fired (the server and the store hear the rest)
    # `serve --workers N`: this process's worker number, 1 to 9 (0: a switch of one process).
    worker: int = 0
    # Where the journal's drafts go: made into entries here, or in `serve`'s journal process
    # (switch/journalproc.py), which takes the place of this one before the engine starts.
    journal: JournalSink = field(init=False)
    _rrn: int = 0
    _rrn_second: int = -1
    _rrn_date: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.worker <= MAX_WORKERS:
            raise ValueError(f"worker must be 0 to {MAX_WORKERS} (one digit of the RRN), got {self.worker}")
        self.journal = InlineJournal(self.codec, self.store, keep_raw=self.config.keep_raw)

    def next_rrn(self) -> str:
        """Retrieval reference number (37): YYDDD + a 6-digit sequence + the worker digit (0 for
        a single process, 1-9 for worker N of `serve --workers`), so that workers sharing a
        store never hand out the same RRN: each counts its own sequence."""
        self._rrn = (self._rrn + 1) % 1_000_000
        second = int(self.clock())
        if second != self._rrn_second:  # the date part, formatted once a second
            self._rrn_second, self._rrn_date = second, time.strftime("%y%j", time.localtime(second))
        return f"{self._rrn_date}{self._rrn:06d}{self.worker}"

    async def resume_rrns(self) -> None:
        """Go on from the newest RRN of today the ledger holds from this worker digit: a switch
        restarted during the day (a worker its supervisor restarted, too) would otherwise count
        from 1 again and hand out RRNs its earlier run gave transactions that can still be voided,
        refunded or reversed by them. Answers that record nothing (0800s) are not in the ledger,
        so their RRNs may repeat after a restart; no later request names them."""
        day = time.strftime("%y%j", time.localtime(self.clock()))
        self._rrn = await self.store.last_rrn_sequence(day, self.worker)

    async def session(self, tid: TerminalId) -> SessionKeys | None:
        """The terminal's session. A store shared with other processes is asked every time
        (another worker may have signed the terminal in with new keys); else it is asked once
        and the answer kept, since every change goes through this process."""
        if not self.store.shared:
            try:  # one lookup where `in` then [] made two
                return self.sessions[tid]
            except KeyError:
                pass
        found = await self.store.get_session(tid)
        self.sessions[tid] = found
        return found

    async def save_session(self, session: SessionKeys) -> None:
        self.sessions[session.terminal] = session
        await self.store.put_session(session)

    async def end_session(self, tid: TerminalId) -> None:
        self.sessions[tid] = None
        await self.store.delete_session(tid)


class Exchange(NamedTuple):
    """One request being answered. Named tuples, this and Result, not frozen dataclasses: the
    switch makes one of each per exchange, and a frozen dataclass's constructor costs several
    times a tuple's (bench/journalwire.py times the same for the journal entry). As immutable;
    `_replace` makes a changed copy."""

    frame: Frame
    message: Message
    tid: TerminalId
    remote: str


class Result(NamedTuple):
    """A handler's answer: response code, extra response fields, what to audit, and the data
    the session table installs when it is an approval (switch.session.settle)."""

    code: str  # a ResponseCode, or any two characters a tester's rule asks for
    fields: Mapping[int, str] = _NO_FIELDS
    audit: AuditEvent | None = None
    reason: str = ""
    operator: str = ""  # the operator audited; an approved operator sign-in signs this one in
    sign_in_again: bool = False
    keys: NewKeys | None = None  # an approved terminal sign-in's new working keys
    warnings: tuple[str, ...] = ()  # field checks that failed without refusing (switch/fieldchecks.py)
    requirement: int = 0  # the answer header's processing requirement (3 when sign_in_again)


async def audit(
    services: Services, ex: Exchange, event: AuditEvent, result: str, reason: str, operator: str = ""
) -> None:
    await services.store.add_audit(
        AuditRecord(
            time=services.clock(),
            event=event,
            merchant=ex.tid.merchant,
            terminal=ex.tid.terminal,
            operator=operator,
            remote=ex.remote,
            result=result,
            reason=reason,
        )
    )


def operator_id_from_63(value: str | None) -> str | None:
    """Field 63 carries the operator id in three characters: '001' and '01 ' both mean '01'."""
    if value is None:
        return None
    text = value.strip()
    if len(text) == 3 and text.isdigit() and text[0] == "0":
        return text[1:]
    if len(text) == 2 and text.isdigit():
        return text
    return None
