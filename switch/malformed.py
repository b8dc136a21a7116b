"""The words of a format error (39 = 30): one sentence for the log line and the journal alike.

It names what could be read of who sent it (terminal and STAN, salvaged from the fields before
the one that failed), then the field, the byte offset in the frame and the reason, as the
codec's typed error gives them; never a value (a value may be a PAN or a PIN block).
"""

from __future__ import annotations

from collections.abc import Mapping

from specs.errors import CodecError


def describe(exc: CodecError, readable: Mapping[int, str]) -> str:
    """ "format error in field 60 at byte 45: ...; terminal 848100058126002/00000764, STAN 000105"."""
    where = f"field {exc.field}" if exc.field is not None else "the message"
    who = []
    merchant, terminal, stan = readable.get(42), readable.get(41), readable.get(11)
    if terminal is not None or merchant is not None:
        who.append(f"terminal {merchant or '?'}/{terminal or '?'}")
    if stan is not None:
        who.append(f"STAN {stan}")
    tail = f"; {', '.join(who)}" if who else "; terminal and STAN unreadable"
    return f"format error in {where} at byte {exc.offset}: {exc.reason}{tail}"
