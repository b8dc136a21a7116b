"""The frame of a journal entry as it was on the wire, masked (specs/wiremask.py), and raw
only when the switch runs with `serve --keep-raw` (a test lab's explicit opt-in)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from json.encoder import encode_basestring_ascii as _quoted
from typing import NamedTuple

from specs.codec import Codec
from specs.framing import Frame, encode_frame
from specs.masking import mask_value
from specs.message import Message
from specs.wiremask import masked_hex, plan


class WireViews(NamedTuple):  # two per exchange: a tuple is cheaper to make (switch/context.py, Result)
    masked: str  # hex, hidden nibbles as '*'
    raw: str  # hex unmasked, or "" unless raw frames are kept


def request_wire(codec: Codec, frame: Frame) -> bytes:
    """The bytes of a frame the framer took apart (length, TPDU, header and body again)."""
    return encode_frame(codec.dialect.framing, frame.body, tpdu=frame.tpdu, header=frame.header)


def body_start(codec: Codec) -> int:
    fmt = codec.dialect.framing
    return fmt.length.size + fmt.prefix_size


def views(codec: Codec, wire: bytes, message: Message | None, *, keep_raw: bool) -> WireViews:
    """Masked (and, with ``keep_raw``, raw) hex of ``wire``. ``message``: the frame's decoded
    body with offsets, or a built one without (it is decoded again only when it holds a
    sensitive field), or None for a body that did not decode (its readable part is decoded
    here)."""
    raw = wire.hex().upper() if keep_raw else ""
    if message is not None and codec.sensitive.isdisjoint(message.fields):
        return WireViews(wire.hex().upper(), raw)  # most frames: nothing to hide, nothing to plan
    start = body_start(codec)
    failed_at: int | None = None
    if message is None or not message.offsets:
        partial = codec.decode_partial(wire[start:])
        message, failed_at = partial.message, None if partial.error is None else partial.end
    return WireViews(masked_hex(wire, plan(message, wire, start, failed_at)), raw)


def record_json(codec: Codec, message: Message, frame: Frame | None) -> str:
    """The masked decode a journal entry keeps: MTI, the request's TPDU and header (``frame``,
    None for an answer) and the fields, masked as every view masks them. The text is what
    ``json.dumps`` writes for that object; it is put together here because the journal writes
    two of them per exchange and the general encoder costs more than the rest of the entry."""
    parts = ['{"mti": ', _quoted(message.mti)]
    if frame is not None and frame.tpdu is not None:
        parts += (', "tpdu": "', frame.tpdu.to_bytes().hex().upper(), '"')
    if frame is not None and frame.header is not None:
        parts += (', "header": "', frame.header.to_bytes().hex().upper(), '"')
    fields: Mapping[int, str] = message.fields
    hidden = codec.sensitive.intersection(fields)
    if hidden:  # the few masked values replaced in a copy, in place (the order is kept)
        specs = codec.dialect.fields
        fields = dict(fields)
        for n in hidden:
            fields[n] = mask_value(specs[n].sensitivity, fields[n])
    # joined without a Python loop over the fields
    shown = ", ".join(map(str.__add__, map(_keys(codec).__getitem__, fields), map(_quoted, fields.values())))
    parts += (', "fields": {', shown, "}}")
    return "".join(parts)


@cache
def _keys(codec: Codec) -> dict[int, str]:
    """Each field's key as json.dumps writes it in an object, with its separator ('"11": ')."""
    return {n: f'"{n}": ' for n in codec.dialect.fields}
