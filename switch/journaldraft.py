"""What an exchange hands the journal, and the masked entry made of it.

A `Draft` is what the loop can afford for each message in or out: the values it already holds
and the frame's bytes, nothing formatted. `entry_of` makes the `JournalEntry` of a draft (the
masked decode, the masked wire, and the raw hex only with `serve --keep-raw`), in the switch
(switch/journalsink.py, `InlineJournal`) or in the journal process that `serve` runs beside
it (switch/journalproc.py). A draft holds clear values, so it never leaves those two: only its
entry is written, logged or shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from specs.codec import Codec
from specs.framing import split_payload
from specs.message import Message
from switch.journalwire import record_json, views
from switch.records import JournalEntry


class Draft(NamedTuple):  # a tuple of builtins: cheap to make on the loop and to pickle
    time: float
    direction: str  # "in" or "out"
    merchant: str
    terminal: str
    remote: str
    mti: str
    fields: Mapping[int, str]  # a dict (a mapping proxy does not pickle)
    error: str
    reason: str
    warnings: tuple[str, ...]
    wire: bytes  # the whole frame: length, TPDU and header, body


# An unreadable frame's entry is made where it is seen (EngineSwitch._journal_raw): it is rare,
# and what it records (the typed error, the frame's length) is not in a draft.
Item = Draft | JournalEntry


def entry_of(codec: Codec, item: Item, *, keep_raw: bool) -> JournalEntry:
    """The journal entry of ``item``: masked as every view masks (switch/journalwire.py)."""
    if isinstance(item, JournalEntry):
        return item
    fmt = codec.dialect.framing
    message = Message(item.mti, item.fields, codec.dialect)  # no offsets: views decode when they mask
    # A request's TPDU and header are in its entry; they are read off its own bytes.
    frame = split_payload(fmt, item.wire[fmt.length.size :]) if item.direction == "in" else None
    seen = views(codec, item.wire, message, keep_raw=keep_raw)
    return JournalEntry(
        time=item.time,
        direction=item.direction,
        merchant=item.merchant,
        terminal=item.terminal,
        remote=item.remote,
        mti=item.mti,
        stan=item.fields.get(11) or "",
        response_code=item.fields.get(39) or "",
        masked_json=record_json(codec, message, frame),
        error=item.error,
        reason=item.reason,
        warnings=item.warnings,
        wire=seen.masked,
        raw=seen.raw,
    )
