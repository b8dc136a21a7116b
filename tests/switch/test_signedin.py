"""switch/signedin.py: the terminals signed in are the store's live sessions, whoever wrote them,
read once a period; a count that fails is logged once and counting goes on."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from structlog.testing import capture_logs

from specs.observer import NullObserver
from switch.records import SessionKeys, TerminalId
from switch.signedin import SignedInCount
from switch.sqlite_store import SqliteStore

START = 1_764_633_600.0
DAY = 86_400.0


class Heard(NullObserver):
    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: list[int] = []

    def terminals_signed_in(self, count: int) -> None:
        self.counts.append(count)


class Failing(SqliteStore):
    """A real store whose count fails while ``down`` is set, as a database gone away does."""

    down = False

    async def count_sessions(self, now: float) -> int:
        if self.down:
            raise sqlite3.OperationalError("disk I/O error")
        return await super().count_sessions(now)


def keys(terminal: str, signed_in_at: float) -> SessionKeys:
    return SessionKeys(TerminalId("898310048990001", terminal), "003", "PIK", "MAK", None, signed_in_at,
                       signed_in_at + DAY, 1)


async def heard_next(heard: Heard, count: int) -> None:
    async with asyncio.timeout(5):
        while not heard.counts or heard.counts[-1] != count:
            await asyncio.sleep(0.005)


async def test_counts_the_stores_live_sessions_as_they_come_and_end(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store, other = SqliteStore(path), SqliteStore(path, shared=True)  # the other: another worker
    now = [START]
    heard = Heard()
    counting = SignedInCount(store, heard, lambda: now[0], period=0.01)
    try:
        await heard_next(heard, 0)
        await store.put_session(keys("00000001", START))
        await heard_next(heard, 1)
        await other.put_session(keys("00000002", START + 10))  # signed in through another process
        await heard_next(heard, 2)
        await other.put_session(keys("00000001", START + 5))  # the first one again: still two
        await asyncio.sleep(0.05)
        assert set(heard.counts[-3:]) == {2}
        await other.delete_session(TerminalId("898310048990001", "00000002"))  # signed off elsewhere
        await heard_next(heard, 1)
        now[0] = START + 5 + DAY  # the first one's session ends now
        await heard_next(heard, 0)
    finally:
        await counting.close()
        await other.close()
        await store.close()
    assert heard.counts[0] == 0


async def test_a_failing_count_is_logged_once_and_counting_goes_on(tmp_path: Path) -> None:
    store = Failing(tmp_path / "s.db")
    await store.put_session(keys("00000001", START))
    heard = Heard()
    with capture_logs() as logs:
        counting = SignedInCount(store, heard, lambda: START, period=0.01)
        try:
            await heard_next(heard, 1)
            store.down = True
            await asyncio.sleep(0.1)  # about ten failed counts
            before = len(heard.counts)
            store.down = False
            await store.put_session(keys("00000002", START))
            await heard_next(heard, 2)
        finally:
            await counting.close()
            await store.close()
    events = [e["event"] for e in logs if e["event"].startswith("signed_in_count")]
    assert events == ["signed_in_count_failed", "signed_in_count_resumed"]
    failed = next(e for e in logs if e["event"] == "signed_in_count_failed")
    assert failed["error"] == "OperationalError" and failed["reason"] == "disk I/O error"
    assert heard.counts[:before] == [1] * before  # nothing heard while failing but the last figure


async def test_close_stops_counting(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    heard = Heard()
    counting = SignedInCount(store, heard, lambda: START, period=0.01)
    await heard_next(heard, 0)
    await counting.close()
    n = len(heard.counts)
    await asyncio.sleep(0.05)
    assert len(heard.counts) == n
    await store.close()
