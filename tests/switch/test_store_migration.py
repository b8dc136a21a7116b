"""A store of schema 3 (journal without reasons, no key history) opens as schema 4 and keeps its rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from switch.records import JournalEntry, SessionKeys, TerminalId
from switch.sqlite_store import SCHEMA_VERSION, SqliteStore

TID = TerminalId("848100058126002", "00000764")
# The journal table exactly as schema 3 made it.
V3_JOURNAL = """CREATE TABLE journal (
    id INTEGER PRIMARY KEY, time REAL NOT NULL, direction TEXT NOT NULL, merchant TEXT NOT NULL,
    terminal TEXT NOT NULL, remote TEXT NOT NULL, mti TEXT NOT NULL, stan TEXT NOT NULL,
    response_code TEXT NOT NULL, masked_json TEXT NOT NULL, error TEXT NOT NULL)"""


async def test_a_schema_3_journal_gains_reason_warnings_and_wire(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    db = sqlite3.connect(path)
    db.execute(V3_JOURNAL)
    db.execute(
        "INSERT INTO journal VALUES (1, 10.0, 'out', ?, ?, 'x', '0210', '000001', 'A0', '{}', '')",
        (TID.merchant, TID.terminal),
    )
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    store = SqliteStore(path)
    (old,) = await store.list_journal(TID.terminal)
    assert (old.response_code, old.reason, old.warnings, old.wire, old.id) == ("A0", "", (), "", 1)
    store.add_journal(
        JournalEntry(
            11.0,
            "out",
            TID.merchant,
            TID.terminal,
            "x",
            "0210",
            "000002",
            "30",
            "{}",
            "",
            reason="why",
            warnings=("batch: 60.2",),
            wire="00**",
        )
    )
    new = (await store.list_journal(TID.terminal))[-1]
    assert (new.reason, new.warnings, new.wire) == ("why", ("batch: 60.2",), "00**")
    await store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_the_store_keeps_the_current_and_previous_working_keys(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    for n in range(1, 4):
        await store.put_session(SessionKeys(TID, "003", f"U{n:032d}", f"{n:016d}", None, float(n), 100.0, 0))
    # an operator signing in keeps the keys: no new generation
    await store.put_session(SessionKeys(TID, "003", f"U{3:032d}", f"{3:016d}", None, 3.0, 100.0, 0, operator_id="01"))
    history = await store.key_history(TID)
    assert [(k.generation, k.mak_lmk) for k in history] == [(3, f"{3:016d}"), (2, f"{2:016d}")]
    await store.close()
