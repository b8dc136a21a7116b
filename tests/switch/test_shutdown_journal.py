"""A switch whose last journal write fails still shuts down whole: the store refuses the write
(a trigger here, a full disk in life), the loss is logged once and counted, and `close` goes on
to close the store instead of stopping at the journal's error."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from switch.app import serve_switch
from switch.config import SwitchConfig
from tests.switchsim.workerwire import ISO87, network_management


async def test_close_finishes_when_the_last_journal_write_fails(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    running = await serve_switch(SwitchConfig(port=0, db=str(path), hsm="inproc", dialect="iso87-binary"))
    with sqlite3.connect(path) as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON journal BEGIN SELECT RAISE(ABORT, 'refused'); END")
    with capture_logs() as logs:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(network_management(7))
        body = await asyncio.wait_for(reader.readexactly(int.from_bytes(await reader.readexactly(2), "big")), 5)
        assert ISO87.decode(body)[39] == "00"  # answered whatever the journal does
        writer.close()
        # At once, within the journal's time bound: the failing write is the one close waits for.
        await running.close()  # raised StoreError('refused') here, with the store left open
    failed = [e for e in logs if e["event"] == "store_write_failed"]
    assert len(failed) == 1 and failed[0]["journal_rows"] == 2  # the 0800 in, the 0810 out
    assert running.services.store.journal_dropped == 2
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        await running.services.store.count_sessions(0)
