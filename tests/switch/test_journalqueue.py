"""The journal queue without a store: batches, flush, the bound, a failing writer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from switch.journalqueue import JournalQueue


class Recorder:
    def __init__(self, refuse: set[int] | None = None, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.refuse = refuse or set()
        self.fail = fail
        self.written = asyncio.Event()

    async def write(self, entries: Sequence[int]) -> int:
        await asyncio.sleep(0)  # a store call yields
        if self.fail:
            raise ConnectionError("store away")
        self.batches.append([e for e in entries if e not in self.refuse])
        self.written.set()
        return sum(e in self.refuse for e in entries)


async def test_entries_put_together_are_written_in_one_batch() -> None:
    rec = Recorder()
    queue: JournalQueue[int] = JournalQueue(rec.write, delay=0.05)
    for n in range(7):
        queue.put(n)
    await queue.flush()
    assert rec.batches == [[0, 1, 2, 3, 4, 5, 6]]
    await queue.close()


async def test_a_full_batch_is_written_at_once_and_split_at_its_size() -> None:
    rec = Recorder()
    queue: JournalQueue[int] = JournalQueue(rec.write, batch=3, delay=10.0)  # never waits the delay
    for n in range(7):
        queue.put(n)
    await queue.flush()
    assert rec.batches == [[0, 1, 2], [3, 4, 5], [6]]
    await queue.close()


async def test_written_without_flush_after_the_delay() -> None:
    rec = Recorder()
    queue: JournalQueue[int] = JournalQueue(rec.write, delay=0.05)
    start = time.monotonic()
    queue.put(1)
    await asyncio.wait_for(rec.written.wait(), 2.0)
    assert time.monotonic() - start >= 0.04  # waited for company
    assert rec.batches == [[1]]
    await queue.close()


async def test_flush_does_not_wait_for_the_delay() -> None:
    rec = Recorder()
    queue: JournalQueue[int] = JournalQueue(rec.write, delay=30.0)
    queue.put(1)
    await asyncio.wait_for(queue.flush(), 2.0)
    assert rec.batches == [[1]]
    await queue.close()


async def test_beyond_capacity_entries_are_dropped_and_counted() -> None:
    rec = Recorder()
    queue: JournalQueue[int] = JournalQueue(rec.write, capacity=4)
    for n in range(10):
        queue.put(n)
    assert queue.dropped == 6
    await queue.flush()
    assert rec.batches == [[0, 1, 2, 3]]
    queue.put(10)  # room again
    await queue.flush()
    assert rec.batches[-1] == [10] and queue.dropped == 6
    await queue.close()


async def test_refused_entries_and_failed_batches_are_counted_lost() -> None:
    rec = Recorder(refuse={2})
    queue: JournalQueue[int] = JournalQueue(rec.write)
    for n in range(4):
        queue.put(n)
    await queue.flush()
    assert rec.batches == [[0, 1, 3]] and queue.lost == 1
    rec.fail = True
    queue.put(5)
    queue.put(6)
    await asyncio.wait_for(queue.flush(), 2.0)  # a failing store does not hang flush
    assert queue.lost == 3
    rec.fail = False
    queue.put(7)
    await queue.flush()  # the writer lives on
    assert rec.batches[-1] == [7]
    await queue.close()


async def test_close_writes_what_waits_and_drops_what_comes_after() -> None:
    rec = Recorder()
    queue: JournalQueue[int] = JournalQueue(rec.write, delay=30.0)
    queue.put(1)
    await queue.close()
    assert rec.batches == [[1]]
    queue.put(2)
    assert queue.dropped == 1
    await queue.flush()  # nothing to wait for
