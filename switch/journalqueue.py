"""The journal's queue: entries are handed over without awaiting and written by one background
task in batches, at most `delay` plus one write behind.

The journal is a trace, not the ledger (store.py): the caller never waits for it. A full queue
drops the entry and counts it (one warning a second at most, with the running count), rather
than block an exchange or grow without bound while the store is slow or away. A batch the
store refuses is counted as lost the same way. `flush` waits until everything queued before it
is written; `close` flushes and stops the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from specs.logs import get_logger

_log = get_logger("switch.store")

T = TypeVar("T")

DELAY = 0.05  # seconds the writer waits for more entries after the first: far inside 200 ms
BATCH = 500  # entries written in one statement at most
CAPACITY = 20_000  # entries waiting at most; beyond, they are dropped and counted
_WARN_EVERY = 1.0  # seconds between two warnings about dropped entries


class JournalQueue(Generic[T]):
    def __init__(
        self,
        write: Callable[[Sequence[T]], Awaitable[int]],
        *,
        capacity: int = CAPACITY,
        batch: int = BATCH,
        delay: float = DELAY,
    ) -> None:
        """``write`` stores a batch and returns how many of its entries it could not store
        (a row the store refuses); it raising loses the whole batch, counted."""
        self._write = write
        self._capacity = capacity
        self._batch = batch
        self._delay = delay
        self._waiting: deque[T] = deque()
        self._queued = 0  # entries accepted so far
        self._done = 0  # entries written or lost so far
        self._flushes: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()  # something waits
        self._hurry = asyncio.Event()  # write now: a batch is full, or someone flushes
        self._closed = False
        self.dropped = 0  # refused because the queue was full (or closed)
        self.lost = 0  # accepted but not stored: the store refused them
        self._warned_at = -_WARN_EVERY
        self._task = asyncio.get_running_loop().create_task(self._run(), name="journal-writer")

    def put(self, entry: T) -> None:
        """Queue one entry; never blocks, never raises."""
        if self._closed or len(self._waiting) >= self._capacity:
            self.dropped += 1
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY:
                self._warned_at = now
                why = "store closed" if self._closed else f"{self._capacity} entries already waiting"
                _log.warning("journal_entries_dropped", dropped=self.dropped, reason=why)
            return
        self._waiting.append(entry)
        self._queued += 1
        self._wake.set()
        if len(self._waiting) >= self._batch:
            self._hurry.set()

    async def flush(self) -> None:
        """Return once every entry queued before this call is written (or counted lost)."""
        target = self._queued
        if self._done >= target or self._task.done():
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flushes.append((target, done))
        self._hurry.set()
        await done

    async def close(self) -> None:
        await self.flush()
        self._closed = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), self._delay)
            count = min(len(self._waiting), self._batch)
            entries = [self._waiting.popleft() for _ in range(count)]
            if not self._waiting:
                self._wake.clear()
            if len(self._waiting) < self._batch:
                self._hurry.clear()
            lost = await self._write_counted(entries)
            self._done += len(entries)
            if lost:
                self.lost += lost
                _log.warning("journal_entries_lost", lost=lost, total=self.lost)
            self._release()

    async def _write_counted(self, entries: Sequence[T]) -> int:
        try:
            return await self._write(entries)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store is away or broken: the trace loses this batch
            _log.error("journal_write_failed", entries=len(entries), error=f"{type(exc).__name__}: {exc}")
            return len(entries)

    def _release(self) -> None:
        still: list[tuple[int, asyncio.Future[None]]] = []
        for target, done in self._flushes:
            if self._done >= target:
                if not done.done():
                    done.set_result(None)
            else:
                still.append((target, done))
        self._flushes = still
        if still:
            self._hurry.set()
