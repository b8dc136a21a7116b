"""Where the switch hands its journal drafts (switch/journaldraft.py).

`InlineJournal` makes each entry at once and queues it in the store: a switch of one process,
as a test or an embedding program runs it. `serve` hands them to a process of its own instead
(switch/journalproc.py), so that masking, formatting and writing the journal take none of the
loop's time. Either way `put` never blocks and never raises (store.py: a full queue drops
entries, counted), and `flush` returns once everything put before it is written.
"""

from __future__ import annotations

from typing import Protocol

from specs.codec import Codec
from switch.journaldraft import Item, entry_of
from switch.store import Store


class JournalSink(Protocol):
    def put(self, item: Item) -> None: ...

    async def flush(self) -> None: ...

    async def close(self) -> None:
        """Write what is queued and let go of what the sink runs (not the store)."""
        ...


class InlineJournal:
    def __init__(self, codec: Codec, store: Store, *, keep_raw: bool) -> None:
        self._codec, self._store, self._keep_raw = codec, store, keep_raw

    def put(self, item: Item) -> None:
        self._store.add_journal(entry_of(self._codec, item, keep_raw=self._keep_raw))

    async def flush(self) -> None:
        await self._store.flush()

    async def close(self) -> None:
        await self._store.flush()
