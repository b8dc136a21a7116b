"""The frame of a journal entry as it was on the wire, masked (specs/wiremask.py), and raw
only when the switch runs with `serve --keep-raw` (a test lab's explicit opt-in)."""

from __future__ import annotations

from dataclasses import dataclass

from specs.codec import Codec
from specs.dialect import Sensitivity
from specs.framing import Frame, encode_frame
from specs.message import Message
from specs.wiremask import masked_hex, plan


@dataclass(frozen=True, slots=True)
class WireViews:
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
    start = body_start(codec)
    failed_at: int | None = None
    if message is None or (not message.offsets and _has_sensitive(message)):
        partial = codec.decode_partial(wire[start:])
        message, failed_at = partial.message, None if partial.error is None else partial.end
    masked = masked_hex(wire, plan(message, wire, start, failed_at))
    return WireViews(masked, wire.hex().upper() if keep_raw else "")


def _has_sensitive(message: Message) -> bool:
    fields = message.dialect.fields
    return any(n in fields and fields[n].sensitivity is not Sensitivity.NONE for n in message.fields)
