"""What keeping each frame masked in the journal costs per exchange, beside the codec's own work.

usage: python bench/journalwire.py [--n 5000]
For a cup-pos purchase and its answer (PAN and track in both: the answer echoes 2), prints the
microseconds of `switch.journalwire.views` for the request (decoded already: offsets known) and
for the answer (built, so decoded again to find its sensitive bytes), and the ratio to a decode
plus an encode of the same request measured in the same run (what the switch spends anyway).
Then the rest of an entry, each beside what it replaced, in the same run: the masked decode as
`record_json` puts it together against `json.dumps` of the same object, and the entry as the
named tuple `JournalEntry` is against a frozen dataclass of the same fields. Last, the
writer's side: CPU microseconds per row of a batch of 2048 written as the store writes it
(`JournalStatements`: one INSERT of JOURNAL_CHUNK rows of parameters) against eight INSERTs of
256 (the chunk before), the one JSON text the INSERTs replaced (`json_each`, a `->>` per
column) and `executemany`, in a scratch SQLite store. What the CPU figure does not show: each
statement is one more time the writer thread must win the GIL back from the loop.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import field, make_dataclass
from itertools import chain
from pathlib import Path

from harness import CUP_PURCHASE_0200, per_call_us

from specs.codec import codec_for
from specs.framing import Tpdu, encode_frame
from switch.journalwire import record_json, views
from switch.records import JournalEntry
from switch.sqlite_schema import migrate
from switch.sqlite_store import _JOURNAL_INSERT, _journal_row
from switch.sqlite_writer import JOURNAL_CHUNK

# JournalEntry's fields as the frozen dataclass it was: the baseline of its cost.
FrozenEntry = make_dataclass(
    "FrozenEntry",
    [
        (name, object, field(default=JournalEntry._field_defaults[name]))
        if name in JournalEntry._field_defaults
        else (name, object)
        for name in JournalEntry._fields
    ],
    frozen=True,
    slots=True,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    n = parser.parse_args().n
    codec = codec_for("cup-pos")
    request = codec.message("0200", CUP_PURCHASE_0200)
    body = codec.encode(request)
    wire = encode_frame(codec.dialect.framing, body, tpdu=Tpdu.from_hex("6000000138"))
    decoded = codec.decode(body)
    answer = codec.message(
        "0210",
        {
            **{k: v for k, v in CUP_PURCHASE_0200.items() if k in (2, 3, 4, 11, 41, 42, 60)},
            39: "00",
            37: "263350000010",
        },
    )
    answer_wire = encode_frame(codec.dialect.framing, codec.encode(answer), tpdu=Tpdu.from_hex("6001380000"))
    baseline = per_call_us(lambda: codec.encode(codec.decode(body)), n)
    incoming = per_call_us(lambda: views(codec, wire, decoded, keep_raw=False), n)
    outgoing = per_call_us(lambda: views(codec, answer_wire, answer, keep_raw=False), n)
    print("journal wire views, cup-pos purchase (us per call; ratio to decode+encode of the request)")
    print(f"  baseline decode+encode  {baseline:8.1f}")
    print(f"  request (offsets known) {incoming:8.1f}  {incoming / baseline:5.2f}")
    print(f"  answer (decoded again)  {outgoing:8.1f}  {outgoing / baseline:5.2f}")

    def dumped() -> str:
        return json.dumps({"mti": answer.mti, "fields": {str(n): v for n, v in answer.masked_fields().items()}})

    assert record_json(codec, answer, None) == dumped()
    written = per_call_us(lambda: record_json(codec, answer, None), n)
    general = per_call_us(dumped, n)
    fields = (1764633600.5, "out", "848100058126002", "00000764", "127.0.0.1:5", "0210", "000001", "00", "{}", "")
    named = per_call_us(lambda: JournalEntry(*fields, reason="", warnings=(), wire="00", raw=""), n)
    frozen = per_call_us(lambda: FrozenEntry(*fields, reason="", warnings=(), wire="00", raw=""), n)
    print("the rest of an entry (us per call; ratio to what it replaced, same run)")
    print(f"  masked decode: record_json {written:6.2f}  json.dumps {general:6.2f}  {general / written:5.2f}x")
    print(f"  entry: JournalEntry        {named:6.2f}  frozen dataclass {frozen:6.2f}  {frozen / named:5.2f}x")
    writer_side(JournalEntry(*fields, reason="", warnings=(), wire=answer_wire.hex().upper(), raw=""))


def writer_side(entry: JournalEntry, batches: int = 40) -> None:
    rows = [_journal_row(entry)] * JOURNAL_CHUNK
    columns = ", ".join(_JOURNAL_INSERT.columns)
    as_json = f"INSERT INTO journal ({columns}) SELECT {', '.join(f'value->>{i}' for i in range(14))} FROM json_each(?)"
    one = f"INSERT INTO journal ({columns}) VALUES ({', '.join('?' * 14)})"
    ways: dict[str, Callable[[sqlite3.Connection], object]] = {
        "multi-row INSERTs": lambda db: db.execute(
            _JOURNAL_INSERT.values(JOURNAL_CHUNK), list(chain.from_iterable(rows))
        ),
        "INSERTs of 256 (before)": lambda db: [
            db.execute(_JOURNAL_INSERT.values(256), list(chain.from_iterable(rows[at : at + 256])))
            for at in range(0, JOURNAL_CHUNK, 256)
        ],
        "one JSON text (replaced)": lambda db: db.execute(as_json, (json.dumps(rows),)),
        "executemany": lambda db: db.executemany(one, rows),
    }
    print(f"the writer: CPU us per journal row, batches of {JOURNAL_CHUNK} (ratio to multi-row INSERTs, same run)")
    first = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, write in ways.items():
            db = sqlite3.connect(Path(tmp) / f"{len(name)}.db", isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            migrate(db, "bench")
            write(db)
            started = time.thread_time()
            for _ in range(batches):
                db.execute("BEGIN IMMEDIATE")
                write(db)
                db.execute("COMMIT")
            per_row = (time.thread_time() - started) / (batches * len(rows)) * 1e6
            first = first or per_row
            print(f"  {name:26} {per_row:6.2f}  {per_row / first:5.2f}x")
            db.close()


if __name__ == "__main__":
    main()
