"""The SQLite store's checkpointer: a thread of its own copies the WAL into the database file,
so that no commit waits for it.

SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL past 1,000 pages: that
commit, and with group commit every approval queued behind it, waits while the checkpoint
copies the pages and syncs the file. On the purchase load of bench/latency.py at 1,000 a second
(15 s runs, alternating) the p99 was 137 and 126 ms that way, 19 and 24 ms with this thread.
The writer's connection leaves them to this thread (`WAL_AUTOCHECKPOINT`, a bound far above
what the thread lets the WAL reach), which runs a PASSIVE checkpoint, one that takes no lock a
writer or a reader waits for, every `INTERVAL` seconds in which anything was committed to the
file, by this store or by another process (`PRAGMA data_version`).
Durability does not depend on it: a commit is in the WAL when it returns.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading

from specs.logs import get_logger

_log = get_logger("store")

INTERVAL = 0.5  # seconds between two checkpoints while the store is written
# The writer's own checkpoint, in pages of WAL: only a checkpointer that cannot keep up (or a
# reader that holds the WAL for seconds) lets the WAL grow this far (about 40 MB of 4 KB pages).
WAL_AUTOCHECKPOINT = 10_000


class Checkpointer:
    def __init__(self, db: sqlite3.Connection, *, interval: float = INTERVAL) -> None:
        """``db``: a connection of its own, used by the thread alone."""
        self._db = db
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seen = self._data_version()
        try:
            while not self._stopping.wait(self._interval):
                # Whoever committed: the store's writer, or another process's on the same file
                # (the journal process, another worker). Counting only its own writer's commits,
                # a checkpointer whose last round met another's transaction would leave the WAL
                # part-copied, and a WAL never wholly copied is never restarted: two stores
                # writing one file in bursts grew it to 26 MB (tests/switch/test_sqlite_checkpoint.py).
                now = self._data_version()
                if now == seen:
                    continue  # nothing new in the WAL
                seen = now
                try:
                    self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # the next round tries again; the writer's bound holds
                    _log.warning("store_checkpoint_failed", error=str(exc))
        finally:
            self._db.close()

    def _data_version(self) -> int:
        """Changes whenever another connection, of this process or another, has committed."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def stop(self) -> None:
        """Ask the thread to end (it does not wait)."""
        self._stopping.set()

    async def close(self) -> None:
        self.stop()
        await asyncio.to_thread(self._thread.join)
