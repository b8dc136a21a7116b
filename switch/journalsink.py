"""Where the switch hands each message it journals.

`InlineJournal` makes each entry at once (switch/journaldraft.py, `message_entry`) and queues it
in the store: a switch of one process, as a test or an embedding program runs it. `serve`
hands them to a process of its own instead
(switch/journalproc.py), so that masking, formatting and writing the journal take none of the
loop's time. Either way handing over never blocks and never raises (store.py: a full queue drops
entries, counted), and `flush` returns once everything put before it is written or counted
lost (a write the store failed).
"""

from __future__ import annotations

import contextlib
from typing import Protocol

from specs.codec import Codec
from specs.framing import Frame
from specs.message import Message
from switch.journaldraft import message_entry
from switch.records import JournalEntry, TerminalId
from switch.store import Store, StoreError


class JournalSink(Protocol):
    def message(
        self,
        when: float,
        direction: str,
        tid: TerminalId,
        remote: str,
        message: Message,
        frame: Frame,
        error: str,
        reason: str,
        warnings: tuple[str, ...],
        wire: bytes,
    ) -> None:
        """One message in or out (``frame``: the request's, either way; ``wire``: the whole
        frame of ``message``), as the loop holds it (`message_entry`)."""
        ...

    def entry(self, entry: JournalEntry) -> None:
        """An entry made already (an unreadable frame's)."""
        ...

    async def flush(self) -> None: ...

    async def close(self) -> None:
        """Write what is queued and let go of what the sink runs (not the store)."""
        ...


class InlineJournal:
    def __init__(self, codec: Codec, store: Store, *, keep_raw: bool) -> None:
        self._codec, self._store, self._keep_raw = codec, store, keep_raw

    def message(
        self,
        when: float,
        direction: str,
        tid: TerminalId,
        remote: str,
        message: Message,
        frame: Frame,
        error: str,
        reason: str,
        warnings: tuple[str, ...],
        wire: bytes,
    ) -> None:
        self._store.add_journal(
            message_entry(
                self._codec, when, direction, tid.merchant, tid.terminal, remote, message,
                frame if direction == "in" else None, error, reason, warnings, wire, keep_raw=self._keep_raw,
            )
        )

    def entry(self, entry: JournalEntry) -> None:
        self._store.add_journal(entry)

    async def flush(self) -> None:
        # A journal write the store failed is logged and counted lost by the store (its
        # journal_dropped); the journal is a trace, so the caller goes on, as with the journal
        # process. Raised here, it stopped a switch's shutdown before the store was closed.
        with contextlib.suppress(StoreError):
            await self._store.flush()

    async def close(self) -> None:
        await self.flush()
