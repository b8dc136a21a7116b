"""Typed wire errors: each says where it failed, why, and what a host should answer.

Messages never quote field values: a value may be a PAN, a track or a PIN block.
"""

from __future__ import annotations

from specs.response import ResponseCode


class WireError(Exception):
    """Base of every error the wire layer raises; nothing else escapes it."""

    response_code: ResponseCode = ResponseCode.FORMAT_ERROR

    def __init__(self, offset: int, reason: str) -> None:
        self.offset = offset
        self.reason = reason
        super().__init__(self.describe())

    def describe(self) -> str:
        return f"at byte {self.offset}: {self.reason}"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.offset, self.reason))


class FramingError(WireError):
    """The byte stream does not hold a well-formed frame (length header, TPDU, header)."""


class CodecError(WireError):
    """A message body does not decode, or a message does not encode, under the dialect.

    ``field`` is the ISO field number ("60.3" for a subfield, "mti"/"bitmap" for those parts),
    or None when the error is not about one field.
    """

    def __init__(self, field: str | None, offset: int, reason: str) -> None:
        self.field = field
        super().__init__(offset, reason)

    def describe(self) -> str:
        where = f"field {self.field}" if self.field is not None else "message"
        return f"{where} at byte {self.offset}: {self.reason}"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.field, self.offset, self.reason))


class SpecError(Exception):
    """A dialect data file is invalid; names the file, the field and the problem."""

    def __init__(self, source: str, where: str, problem: str) -> None:
        self.source = source
        self.where = where
        self.problem = problem
        super().__init__(f"{source}: {where}: {problem}")
