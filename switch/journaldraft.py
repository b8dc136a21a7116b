"""What an exchange hands the journal, and the masked entry made of it.

`message_entry` makes the `JournalEntry` of one message in or out (the masked decode, the masked
wire, and the raw hex only with `serve --keep-raw`): the one implementation, used by the
in-loop journal (switch/journalsink.py, `InlineJournal`) with the values the loop holds, and by
the journal process `serve` runs beside the switch (switch/journalproc.py) with a `Draft`: those
values as a tuple of builtins, cheap to make on the loop and to pickle, the frame as its bytes. A draft
holds clear values, so it never leaves those two: only its entry is written, logged or shown.
"""

from __future__ import annotations

from collections.abc import Mapping

from specs.codec import Codec
from specs.framing import Frame, split_payload
from specs.message import Message
from switch.journalwire import record_json, views
from switch.records import JournalEntry

# A draft: (time, direction "in" or "out", merchant, terminal, remote, MTI, fields (a dict: a
# mapping proxy does not pickle), error, reason, warnings, the whole frame's bytes). A plain
# tuple, not a named one: it crosses the pipe pickled, and pickle reduces a named tuple in
# Python, about seven times slower than the plain tuple it does in C.
Draft = tuple[float, str, str, str, str, str, Mapping[int, str], str, str, tuple[str, ...], bytes]
# An unreadable frame's entry is made where it is seen (SwitchEngine._journal_raw): it is rare,
# and what it records (the typed error, the frame's length) is not in a draft.
Item = Draft | JournalEntry


def message_entry(
    codec: Codec,
    time: float,
    direction: str,
    merchant: str,
    terminal: str,
    remote: str,
    message: Message,
    frame: Frame | None,
    error: str,
    reason: str,
    warnings: tuple[str, ...],
    wire: bytes,
    *,
    keep_raw: bool,
) -> JournalEntry:
    """The entry of ``message``, masked as every view masks (switch/journalwire.py). ``frame``:
    a request's, whose TPDU and header the entry keeps (None for an answer); ``wire``: the
    whole frame's bytes."""
    seen = views(codec, wire, message, keep_raw=keep_raw)
    fields = message.fields
    return JournalEntry(
        time=time,
        direction=direction,
        merchant=merchant,
        terminal=terminal,
        remote=remote,
        mti=message.mti,
        stan=fields.get(11) or "",
        response_code=fields.get(39) or "",
        masked_json=record_json(codec, message, frame),
        error=error,
        reason=reason,
        warnings=warnings,
        wire=seen.masked,
        raw=seen.raw,
    )


def entry_of(codec: Codec, item: Item, *, keep_raw: bool) -> JournalEntry:
    """The entry of a draft (or the entry itself, made already), in the journal
    process: its message made again without offsets (views decode the frame when they must
    mask), a request's frame read off its own bytes."""
    if isinstance(item, JournalEntry):
        return item
    when, direction, merchant, terminal, remote, mti, fields, error, reason, warnings, wire = item
    frame = None
    if direction == "in":
        fmt = codec.dialect.framing
        frame = split_payload(fmt, wire[fmt.length.size :])
    message = Message(mti, fields, codec.dialect)
    return message_entry(
        codec, when, direction, merchant, terminal, remote, message, frame, error, reason, warnings, wire,
        keep_raw=keep_raw,
    )
