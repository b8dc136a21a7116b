"""The journal process (switch/journalproc.py, switchsim/journal_child.py): a real child process
over a real SQLite store. Frames are written out by hand (the iso87-binary 0800 byte by byte,
the cup-pos purchase with tests/switch/cupwire.py) and the entries expected of them too."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from specs.codec import codec_for
from specs.framing import decode_frame
from specs.message import Message
from specs.observer import NULL_OBSERVER
from switch import journalproc
from switch.journalproc import JournalProcess
from switch.journalsink import InlineJournal
from switch.records import JournalEntry, TerminalId
from switch.sqlite_store import SqliteStore
from switchsim.journal_child import COMMAND
from tests.switch import cupwire

ISO87 = codec_for("iso87-binary")
CUP = codec_for("cup-pos")

# 0800, 7 = 1122123456, 11 = 000001, 70 = 301 in iso87-binary: 2-byte length (39), ASCII MTI,
# primary bitmap with bits 1 (secondary follows), 7 and 11; secondary with bit 70 (its 6th).
NM_0800 = bytes.fromhex(
    "0027" + "30383030" + "8220000000000000" + "0400000000000000" + "31313232313233343536" + "303030303031" + "333031"
)
NM_FIELDS = {7: "1122123456", 11: "000001", 70: "301"}

PAN = "6222021234567890123"
TRACK2 = "6222021234567890123D30121010000"
PIN_BLOCK = "0123456789ABCDEF"


def purchase_wire() -> bytes:
    fields = {
        2: cupwire.bcd(f"{len(PAN):02d}") + cupwire.bcd(PAN),
        3: cupwire.bcd("000000"),
        4: cupwire.bcd("000000000100"),
        11: cupwire.bcd("000123"),
        22: cupwire.bcd("021"),
        25: cupwire.bcd("00"),
        35: cupwire.bcd(f"{len(TRACK2):02d}") + bytes.fromhex(TRACK2 + "0"),
        41: b"00000764",
        42: b"848100058126002",
        49: b"156",
        52: bytes.fromhex(PIN_BLOCK),
        60: cupwire.lllvar_n("22000001"),
    }
    return cupwire.frame(cupwire.body("0200", fields))


def hand_over(
    process: JournalProcess,
    wire: bytes,
    fields: dict[int, str],
    mti: str,
    direction: str = "in",
    *,
    reason: str = "",
    warnings: tuple[str, ...] = (),
) -> None:
    """One message as the engine hands it over: its values (``fields``, as the loop holds them)
    and its frame's bytes (``wire``). An answer's bytes matter only where they are masked."""
    codec = codec_for(process_dialect[process])
    frame = decode_frame(codec.dialect.framing, wire)
    message = Message.build(codec.dialect, mti, fields)
    process.message(1_700_000_000.5, direction, TID, "127.0.0.1:40000", message, frame, "", reason, warnings, wire)


TID = TerminalId("848100058126002", "00000764")
process_dialect: dict[JournalProcess, str] = {}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "s.db")
    yield opened
    await opened.close()


async def start(store: SqliteStore, dialect: str, *, keep_raw: bool = False) -> JournalProcess:
    process = await JournalProcess.start(
        COMMAND,
        store_url=store.path,
        dialect=dialect,
        keep_raw=keep_raw,
        log_level="info",
        fallback=InlineJournal(codec_for(dialect), store, keep_raw=keep_raw),
        observer=NULL_OBSERVER,
    )
    assert process is not None
    process_dialect[process] = dialect
    return process


def rows(path: str) -> list[tuple[object, ...]]:
    """The journal as another reader sees it (not through the store under test)."""
    with sqlite3.connect(path) as db:
        columns = "direction, mti, stan, response_code, masked_json, wire, raw, reason, warnings"
        return db.execute(f"SELECT {columns} FROM journal ORDER BY id").fetchall()


async def test_an_0800_is_written_by_the_process_as_the_switch_would_write_it(store: SqliteStore) -> None:
    process = await start(store, "iso87-binary")
    hand_over(process, NM_0800, NM_FIELDS, "0800")
    await process.flush()  # returns once the process's store has the entry
    expected_json = '{"mti": "0800", "fields": {"7": "1122123456", "11": "000001", "70": "301"}}'
    assert rows(store.path) == [("in", "0800", "000001", "", expected_json, NM_0800.hex().upper(), "", "", "")]
    await process.close()


async def test_a_purchase_entry_is_masked_in_the_process(store: SqliteStore) -> None:
    wire = purchase_wire()
    fields = {2: PAN, 3: "000000", 4: "000000000100", 11: "000123", 22: "021", 25: "00", 35: TRACK2}
    fields |= {41: "00000764", 42: "848100058126002", 49: "156", 52: PIN_BLOCK, 60: "22000001"}
    process = await start(store, "cup-pos")
    hand_over(process, wire, fields, "0200")
    await process.close()  # close writes what was put
    [(direction, mti, stan, _, masked_json, masked_wire, raw, _, _)] = rows(store.path)
    assert (direction, mti, stan, raw) == ("in", "0200", "000123", "")
    shown = json.loads(str(masked_json))
    assert (shown["tpdu"], shown["header"]) == ("6000000138", "603100000000")
    assert shown["fields"]["2"] == "622202*********0123"  # 6 + 4
    assert shown["fields"]["35"] == "*" * len(TRACK2)
    assert shown["fields"]["52"] == "*" * 16
    text = str(masked_wire)
    assert len(text) == 2 * len(wire) and "*" in text
    for secret in ("1234567890", PIN_BLOCK, "D3012101"):
        assert secret not in text and secret not in str(masked_json)
    # what is not secret is on the wire as it was: length, TPDU, header and MTI
    assert text.startswith(wire[:2].hex().upper() + "6000000138" + "603100000000" + "0200")


async def test_keep_raw_keeps_the_frame_unmasked_only_when_asked(store: SqliteStore) -> None:
    process = await start(store, "cup-pos", keep_raw=True)
    wire = purchase_wire()
    hand_over(process, wire, {2: PAN, 11: "000123", 52: PIN_BLOCK}, "0200")
    await process.close()
    [row] = rows(store.path)
    assert row[6] == wire.hex().upper()


async def test_answers_keep_their_reason_warnings_and_order(store: SqliteStore) -> None:
    process = await start(store, "iso87-binary")
    for n in range(1, 301):
        stan = f"{n:06d}"
        hand_over(process, NM_0800, {**NM_FIELDS, 11: stan}, "0800")
        answer = {11: stan, 39: "96"}
        hand_over(process, NM_0800, answer, "0810", "out", reason="HSM unavailable", warnings=("48: too long",))
    await process.flush()
    written = rows(store.path)
    assert [(r[0], r[2]) for r in written] == [(d, f"{n:06d}") for n in range(1, 301) for d in ("in", "out")]
    assert written[1][3:4] == ("96",) and written[1][7:] == ("HSM unavailable", '["48: too long"]')
    await process.close()


async def test_an_unreadable_frames_entry_is_written_as_it_was_made(store: SqliteStore) -> None:
    process = await start(store, "cup-pos")
    entry = JournalEntry(1.0, "in", "", "", "r", "", "", "", '{"length": 3}', "frame too short", wire="0003AABBCC")
    process.entry(entry)
    await process.close()
    assert rows(store.path) == [("in", "", "", "", '{"length": 3}', "0003AABBCC", "", "", "")]


async def test_a_process_that_dies_is_logged_once_and_the_journal_goes_on_in_the_switch(store: SqliteStore) -> None:
    process = await start(store, "iso87-binary")
    hand_over(process, NM_0800, NM_FIELDS, "0800")
    await process.flush()
    with capture_logs() as logs:
        os.kill(process.pid, signal.SIGKILL)
        for _ in range(200):  # the reader sees the pipe close
            await asyncio.sleep(0.01)
            hand_over(process, NM_0800, {**NM_FIELDS, 11: "000002"}, "0800")
            if any(e["event"] == "journal_process_ended" for e in logs):
                break
        hand_over(process, NM_0800, {**NM_FIELDS, 11: "000003"}, "0800")
        await process.flush()
        await process.close()
    ended = [e for e in logs if e["event"] == "journal_process_ended"]
    assert len(ended) == 1 and ended[0]["status"] == -signal.SIGKILL
    stans = [r[2] for r in rows(store.path)]
    assert stans[0] == "000001" and stans[-1] == "000003"  # written by the switch itself after the death


async def test_a_process_that_does_not_read_makes_the_switch_drop_and_count(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journalproc, "BACKLOG", 256 * 1024)
    process = await start(store, "iso87-binary")
    os.kill(process.pid, signal.SIGSTOP)  # reads nothing: the pipe and then the backlog fill
    try:
        with capture_logs() as logs:
            for n in range(400):
                for _ in range(50):
                    hand_over(process, NM_0800, {**NM_FIELDS, 11: f"{n:06d}"}, "0800")
                await asyncio.sleep(0)  # a turn of the loop: the batch is written
    finally:
        os.kill(process.pid, signal.SIGCONT)
    await process.flush()
    await process.close()
    assert process.dropped > 0
    assert len(rows(store.path)) == 400 * 50 - process.dropped  # every draft written or counted
    warned = [e for e in logs if e["event"] == "journal_entries_dropped"]
    assert 1 <= len(warned) <= 2  # once a second at most


async def test_a_process_that_cannot_open_the_store_leaves_the_journal_to_the_switch(tmp_path: Path) -> None:
    with capture_logs() as logs:
        process = await JournalProcess.start(
            COMMAND,
            store_url=str(tmp_path / "missing" / "s.db"),
            dialect="iso87-binary",
            keep_raw=False,
            log_level="error",
            fallback=InlineJournal(ISO87, SqliteStore(), keep_raw=False),
            observer=NULL_OBSERVER,
        )
    assert process is None
    assert [e["event"] for e in logs] == ["journal_process_unavailable"]


async def test_sigint_to_the_process_does_not_stop_it(store: SqliteStore) -> None:
    process = await start(store, "iso87-binary")
    with capture_logs() as logs:
        os.kill(process.pid, signal.SIGINT)  # as a Ctrl-C reaches the whole process group
        await asyncio.sleep(0.5)
        hand_over(process, NM_0800, NM_FIELDS, "0800")
        await process.flush()
        assert process.running
        await process.close()
    assert len(rows(store.path)) == 1
    assert not [e for e in logs if e["event"] == "journal_process_ended"]


async def test_the_store_url_is_not_on_the_process_command_line(store: SqliteStore) -> None:
    # A PostgreSQL URL may hold a password, and anyone on the machine can read a command line.
    process = await start(store, "iso87-binary")
    cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
    assert b"switchsim.journal_child" in cmdline
    assert not [arg for arg in cmdline if store.path.encode() in arg]
    hand_over(process, NM_0800, NM_FIELDS, "0800")
    await process.close()
    assert len(rows(store.path)) == 1  # the process opened the store it was told on stdin


async def test_entries_the_store_refuses_are_counted_and_the_process_goes_on(store: SqliteStore) -> None:
    # A journal write SQLite refuses (a trigger here; a full disk in life): the process's store
    # counts the rows lost, the process says so, and the switch counts them with its own drops.
    process = await start(store, "iso87-binary")
    with sqlite3.connect(store.path) as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON journal BEGIN SELECT RAISE(ABORT, 'refused'); END")
    for n in range(1, 8):
        hand_over(process, NM_0800, {**NM_FIELDS, 11: f"{n:06d}"}, "0800")
    await process.flush()  # answered: the loss is counted, not raised
    assert process.dropped == 7 and process.running
    with sqlite3.connect(store.path) as db:
        db.execute("DROP TRIGGER refuse")
    hand_over(process, NM_0800, NM_FIELDS, "0800")
    await process.close()
    assert len(rows(store.path)) == 1 and process.dropped == 7
