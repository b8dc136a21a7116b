"""Sans-I/O framing: length header, optional TPDU and UnionPay header around a message body.

`FrameDecoder` is fed bytes as they arrive and hands out whole frames; it never holds more
than one maximal frame plus its length header, and it rejects a declared length above the
maximum as soon as the header is in, before any of the body arrives. `encode_frame` is the only
writer of frames in the project.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from specs.errors import FramingError

DEFAULT_MAX_FRAME = 8192
TPDU_LEN = 5
CUP_HEADER_LEN = 6
TPDU_ID = 0x60


class LengthHeader(StrEnum):
    """How the length of a frame is carried in front of it."""

    BINARY2 = "binary2"  # 2 bytes, unsigned big-endian
    BCD2 = "bcd2"  # 2 bytes, 4 BCD digits
    ASCII4 = "ascii4"  # 4 ASCII decimal digits
    NONE = "none"  # the transport delimits frames (one datagram, one feed)

    @property
    def size(self) -> int:
        return _HEADER_SIZES[self]


_HEADER_SIZES = {
    LengthHeader.BINARY2: 2,
    LengthHeader.BCD2: 2,
    LengthHeader.ASCII4: 4,
    LengthHeader.NONE: 0,
}


@dataclass(frozen=True, slots=True)
class Tpdu:
    """The 5-byte transport PDU: id 0x60, then 2-byte destination and 2-byte source addresses."""

    destination: bytes
    source: bytes
    tpdu_id: int = TPDU_ID

    def __post_init__(self) -> None:
        if len(self.destination) != 2 or len(self.source) != 2:
            raise ValueError("TPDU addresses are 2 bytes each")

    @classmethod
    def parse(cls, raw: bytes) -> Tpdu:
        return cls(destination=bytes(raw[1:3]), source=bytes(raw[3:5]), tpdu_id=raw[0])

    @classmethod
    def from_hex(cls, text: str) -> Tpdu:
        raw = bytes.fromhex(text)
        if len(raw) != TPDU_LEN:
            raise ValueError(f"a TPDU is {TPDU_LEN} bytes, got {len(raw)}")
        return cls.parse(raw)

    def to_bytes(self) -> bytes:
        return bytes((self.tpdu_id,)) + self.destination + self.source

    def reply(self) -> Tpdu:
        """The TPDU of the answer: destination and source swapped."""
        return Tpdu(destination=self.source, source=self.destination, tpdu_id=self.tpdu_id)


@dataclass(frozen=True, slots=True)
class CupHeader:
    """The UnionPay 6-byte message header.

    app_type (60 normal, 61 test apps), version, terminal status (high nibble of byte 3),
    processing requirement (low nibble: 3 asks the terminal to sign in again) and a 3-byte BCD
    software sub-version.
    """

    app_type: int = 0x60
    version: int = 0x31
    terminal_status: int = 0
    processing_requirement: int = 0
    software_version: bytes = b"\x00\x00\x00"

    @classmethod
    def parse(cls, raw: bytes) -> CupHeader:
        return cls(
            app_type=raw[0],
            version=raw[1],
            terminal_status=raw[2] >> 4,
            processing_requirement=raw[2] & 0x0F,
            software_version=bytes(raw[3:6]),
        )

    @classmethod
    def from_hex(cls, text: str) -> CupHeader:
        raw = bytes.fromhex(text)
        if len(raw) != CUP_HEADER_LEN:
            raise ValueError(f"a UnionPay header is {CUP_HEADER_LEN} bytes, got {len(raw)}")
        return cls.parse(raw)

    def to_bytes(self) -> bytes:
        status = ((self.terminal_status & 0x0F) << 4) | (self.processing_requirement & 0x0F)
        return bytes((self.app_type, self.version, status)) + self.software_version

    def with_requirement(self, requirement: int) -> CupHeader:
        return CupHeader(self.app_type, self.version, self.terminal_status, requirement, self.software_version)


@dataclass(frozen=True, slots=True)
class FrameFormat:
    """What surrounds a message body on the wire for one dialect."""

    length: LengthHeader = LengthHeader.BINARY2
    tpdu: bool = False
    cup_header: bool = False
    max_frame: int = DEFAULT_MAX_FRAME

    @property
    def prefix_size(self) -> int:
        """Bytes between the length header and the MTI."""
        return (TPDU_LEN if self.tpdu else 0) + (CUP_HEADER_LEN if self.cup_header else 0)


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete frame: the body from the MTI onward plus what preceded it."""

    body: bytes
    tpdu: Tpdu | None = None
    header: CupHeader | None = None
    offset: int = 0  # where the body starts inside the wire frame (for error offsets)


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """A zero-length frame: terminals send these to hold a connection open."""


FrameEvent = Frame | KeepAlive


def encode_length(fmt: LengthHeader, n: int) -> bytes:
    if fmt is LengthHeader.BINARY2:
        if n > 0xFFFF:
            raise ValueError(f"frame of {n} bytes does not fit a 2-byte length")
        return n.to_bytes(2, "big")
    if fmt is LengthHeader.BCD2:
        if n > 9999:
            raise ValueError(f"frame of {n} bytes does not fit a 2-byte BCD length")
        return bytes.fromhex(f"{n:04d}")
    if fmt is LengthHeader.ASCII4:
        if n > 9999:
            raise ValueError(f"frame of {n} bytes does not fit a 4-digit length")
        return f"{n:04d}".encode("ascii")
    return b""


def decode_length(fmt: LengthHeader, raw: bytes) -> int:
    """The declared length; raises FramingError at offset 0 for a header that is not a number."""
    if fmt is LengthHeader.BINARY2:
        return int.from_bytes(raw, "big")
    text = raw.hex() if fmt is LengthHeader.BCD2 else raw.decode("latin-1")
    if not (text.isascii() and text.isdigit()):
        raise FramingError(0, f"length header {raw.hex().upper()} is not {fmt.value}")
    return int(text)


def encode_frame(
    fmt: FrameFormat,
    body: bytes,
    tpdu: Tpdu | None = None,
    header: CupHeader | None = None,
) -> bytes:
    """Length header + TPDU + UnionPay header + body, as the dialect's framing says."""
    parts: list[bytes] = []
    if fmt.tpdu:
        if tpdu is None:
            raise ValueError("this framing needs a TPDU")
        parts.append(tpdu.to_bytes())
    if fmt.cup_header:
        parts.append((header or CupHeader()).to_bytes())
    parts.append(body)
    payload = b"".join(parts)
    if len(payload) > fmt.max_frame:
        raise ValueError(f"frame of {len(payload)} bytes exceeds the maximum {fmt.max_frame}")
    return encode_length(fmt.length, len(payload)) + payload


def split_payload(fmt: FrameFormat, payload: bytes, base_offset: int = 0) -> Frame:
    """Take TPDU and header off a frame payload (everything after the length header)."""
    need = fmt.prefix_size
    if len(payload) < need:
        raise FramingError(
            base_offset + len(payload),
            f"frame of {len(payload)} bytes is shorter than its {need}-byte TPDU/header",
        )
    pos = 0
    tpdu = header = None
    if fmt.tpdu:
        tpdu = _tpdu(bytes(payload[:TPDU_LEN]))
        pos = TPDU_LEN
    if fmt.cup_header:
        header = _cup_header(bytes(payload[pos : pos + CUP_HEADER_LEN]))
        pos += CUP_HEADER_LEN
    return Frame(body=bytes(payload[pos:]), tpdu=tpdu, header=header, offset=base_offset + pos)


# A connection sees the same few TPDUs and headers frame after frame; both are immutable values.
_tpdu = lru_cache(maxsize=256)(Tpdu.parse)
_cup_header = lru_cache(maxsize=256)(CupHeader.parse)


def decode_frame(fmt: FrameFormat, wire: bytes) -> Frame:
    """Decode exactly one whole frame (as a CLI or a test holds it); trailing bytes are an error."""
    decoder = FrameDecoder(fmt)
    decoder.feed(wire)
    event = decoder.next_event()
    if event is None:
        size = fmt.length.size
        if len(wire) < size:
            reason = f"incomplete frame: {len(wire)} bytes, shorter than its {size}-byte length header"
            raise FramingError(len(wire), reason)
        promised = decode_length(fmt.length, wire[:size])
        raise FramingError(
            len(wire),
            f"incomplete frame: {len(wire)} bytes, the length header promises {promised} after its {size} "
            f"({size + promised} in all)",
        )
    if decoder.buffered:
        raise FramingError(len(wire) - decoder.buffered, "trailing bytes after the frame")
    if isinstance(event, KeepAlive):
        return Frame(body=b"")
    return event


class FrameDecoder:
    """Feed bytes in, take frames out. After a FramingError the stream cannot be resynchronised:
    the connection should answer what it can and close."""

    __slots__ = ("_buf", "_failed", "_fmt", "_stream_offset")

    def __init__(self, fmt: FrameFormat) -> None:
        self._fmt = fmt
        self._buf = bytearray()
        self._failed = False
        self._stream_offset = 0  # bytes consumed so far, for error offsets within the stream

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        if self._failed:
            raise FramingError(self._stream_offset, "stream already failed framing")
        if self._fmt.length is LengthHeader.NONE and len(data) > self._fmt.max_frame:
            self._fail()
            raise FramingError(
                self._stream_offset,
                f"frame of {len(data)} bytes exceeds the maximum {self._fmt.max_frame}",
            )
        self._buf += data

    def next_event(self) -> FrameEvent | None:
        """The next whole frame, a keep-alive, or None when more bytes are needed."""
        fmt = self._fmt
        buf = self._buf
        hsize = fmt.length.size
        if fmt.length is LengthHeader.NONE:
            if not buf:
                return None
            payload = bytes(buf)
            buf.clear()
            return self._finish(payload, 0)
        if len(buf) < hsize:
            return None
        try:
            n = decode_length(fmt.length, bytes(buf[:hsize]))
        except FramingError as exc:
            self._fail()
            raise FramingError(self._stream_offset, exc.reason) from None
        if n > fmt.max_frame:
            self._fail()
            raise FramingError(
                self._stream_offset,
                f"declared length {n} exceeds the maximum frame size {fmt.max_frame}",
            )
        if len(buf) < hsize + n:
            return None
        payload = bytes(buf[hsize : hsize + n])
        del buf[: hsize + n]
        return self._finish(payload, hsize)

    def _fail(self) -> None:
        """A dead stream holds nothing: drop what is buffered."""
        self._failed = True
        self._buf.clear()

    def _finish(self, payload: bytes, hsize: int) -> FrameEvent:
        start = self._stream_offset
        self._stream_offset += hsize + len(payload)
        if not payload:
            return KeepAlive()
        try:
            return split_payload(self._fmt, payload, hsize)
        except FramingError as exc:
            # A short frame is a whole frame: the stream stays in sync, so do not fail it.
            raise FramingError(start + exc.offset, exc.reason) from None

    def events(self) -> Iterator[FrameEvent]:
        while (event := self.next_event()) is not None:
            yield event
