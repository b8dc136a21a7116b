"""The HSM's listeners: host commands over TCP (length-prefixed) and UDP (one datagram each).

Thin shells around ``Dispatcher.handle``: they move bytes, split and echo the message header,
enforce the frame limit and log. The dispatcher is synchronous, so a TCP connection answers
every whole frame of one ``data_received`` in arrival order and writes all the answers at once;
pipelined requests therefore come back in order without any queue. Reading pauses while the
socket's write buffer is over its high-water mark, so a client that sends without reading
cannot make the server buffer without bound.

Logs carry the peer, the 2-character command and error codes and the latency, never a field.
An ``Observer`` (specs/observer.py) hears every command answered (code, error code, seconds),
every connection opened and closed (with why) and every rejected frame.

TLS (``hsm serve --tls-cert``) is for the TCP listener only, through specs/tls.py's listener: a
handshake must finish within ``handshake_timeout`` of the accept (the HSM has no frame deadline
of its own), and a plaintext or refused client is closed with one log line. UDP has no TLS
(no DTLS here), so a TLS config refuses a UDP port rather than answer host commands in clear
beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import asyncio_dgram

from hsm_sim.dispatcher import COMMANDS, Dispatcher
from hsm_sim.errors import ErrorCode, HsmError
from hsm_sim.hostframe import (
    DEFAULT_HEADER_LENGTH,
    check_header_length,
    host_frame_format,
    split_header,
)
from hsm_sim.lmk import Lmk
from specs.errors import FramingError
from specs.framing import DEFAULT_MAX_FRAME, FrameDecoder, FrameFormat, KeepAlive, encode_frame
from specs.logs import get_logger
from specs.observer import NULL_OBSERVER, Observer
from specs.tls import DEFAULT_HANDSHAKE_TIMEOUT, Listener, ServerTls, listen

DEFAULT_PORT = 1500
# The answer to a request can be longer than the request (hex output): allow what 2 bytes hold.
_MAX_ANSWER_FRAME = 0xFFFF
_DEBUG = 10  # logging.DEBUG, without importing logging for one constant


class CommandHandler(Protocol):
    """What the listeners need from the HSM: one host command in, its answer out, never raising."""

    def handle(self, message: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class HsmServerConfig:
    """Where and how the HSM listens. Port 0 asks the OS for a free port; ``udp_port`` None
    means no UDP listener."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    udp_port: int | None = None
    header_length: int = DEFAULT_HEADER_LENGTH
    max_frame: int = DEFAULT_MAX_FRAME
    lmk: Lmk | None = None
    test_mode: bool = False
    shutdown_timeout: float = 5.0
    tls: ServerTls | None = None  # TLS on the TCP listener
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT

    def __post_init__(self) -> None:
        check_header_length(self.header_length)
        if self.tls is not None and self.udp_port is not None:
            raise ValueError("UDP has no TLS: a TLS HSM takes no UDP port (it would answer host commands in clear)")
        if not self.handshake_timeout > 0:
            raise ValueError(f"handshake_timeout must be more than 0 seconds, got {self.handshake_timeout}")
        for name, port in (("port", self.port), ("udp_port", self.udp_port)):
            if port is not None and not 0 <= port <= 0xFFFF:
                raise ValueError(f"{name} must be 0..65535, got {port}")
        if not self.header_length + 2 <= self.max_frame <= _MAX_ANSWER_FRAME:
            raise ValueError(
                f"max_frame must be {self.header_length + 2}..{_MAX_ANSWER_FRAME}, "
                f"got {self.max_frame}"
            )
        if self.shutdown_timeout < 0:
            raise ValueError("shutdown_timeout must not be negative")


def _printable_code(raw: bytes) -> str:
    """The command or error code as a log value; anything else than 2 letters/digits is '??'."""
    return raw.decode("ascii") if len(raw) == 2 and raw.isalnum() and raw.isascii() else "??"


# Command labels for an observer: the codes the dispatcher serves (in either case, as it reads
# them), anything else "other", so that a client sending junk cannot grow the label set.
_COMMAND_LABELS = {
    **{code.encode("ascii"): code for code in COMMANDS},
    **{code.lower().encode("ascii"): code for code in COMMANDS},
}
_OTHER_COMMAND = "other"


class _Exchange:
    """Shared by every connection and datagram of one server: header handling around the
    dispatcher, and the per-command log line."""

    __slots__ = ("_handle", "header_length", "log", "observer", "timed", "trace")

    def __init__(self, handler: CommandHandler, header_length: int, log: Any, observer: Observer) -> None:
        self._handle: Callable[[bytes], bytes] = handler.handle
        self.header_length = header_length
        self.log = log
        self.observer = observer
        # Decided once: the per-command line is debug-level and this is the hot path.
        self.trace: bool = log.is_enabled_for(_DEBUG)
        self.timed = self.trace or observer is not NULL_OBSERVER

    def answer(self, body: bytes, log: Any) -> bytes:
        """Header + answer for one request body; HsmError(51) if the body cannot hold a header."""
        hl = self.header_length
        if len(body) < hl:
            split_header(body, hl)  # raises the typed error
        if not self.timed:
            return body[:hl] + self._handle(body[hl:])
        started = time.perf_counter_ns()
        answer = self._handle(body[hl:])
        elapsed = time.perf_counter_ns() - started
        code = body[hl : hl + 2]
        self.observer.hsm_command(
            _COMMAND_LABELS.get(code, _OTHER_COMMAND), answer[2:4].decode("latin-1"), elapsed / 1e9
        )
        if self.trace:
            log.debug(
                "hsm_command",
                command=_printable_code(code),
                error=_printable_code(answer[2:4]),
                latency_us=elapsed // 1000,
            )
        return body[:hl] + answer


def _peer_text(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


class _Connections:
    """The open TCP connections of one server, so shutdown can drain and close them."""

    __slots__ = ("_all", "_idle")

    def __init__(self) -> None:
        self._all: set[_HsmConnection] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, conn: _HsmConnection) -> None:
        self._all.add(conn)
        self._idle.clear()

    def discard(self, conn: _HsmConnection) -> None:
        self._all.discard(conn)
        if not self._all:
            self._idle.set()

    def __iter__(self) -> Any:
        return iter(list(self._all))

    def __len__(self) -> int:
        return len(self._all)

    async def wait_empty(self) -> None:
        await self._idle.wait()


class _HsmConnection(asyncio.Protocol):
    """One TCP client: frames in, answers out, in order, one write per read."""

    __slots__ = (
        "_closing",
        "_connections",
        "_decoder",
        "_exchange",
        "_failure",
        "_log",
        "_out_fmt",
        "_paused",
        "_transport",
        "answered",
    )

    def __init__(
        self, exchange: _Exchange, in_fmt: FrameFormat, connections: _Connections
    ) -> None:
        self._exchange = exchange
        self._decoder = FrameDecoder(in_fmt)
        self._out_fmt = FrameFormat(length=in_fmt.length, max_frame=_MAX_ANSWER_FRAME)
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._log: Any = exchange.log
        self._closing = False
        self._failure: str | None = None  # why we closed the connection: framing, format
        self._paused = False
        self.answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's TCP transport is not an asyncio.Transport.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        self._log = self._exchange.log.bind(peer=_peer_text(transport.get_extra_info("peername")))
        self._connections.add(self)
        self._exchange.observer.connection_opened()
        self._log.info("hsm_client_connected")

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        reason = type(exc).__name__ if exc is not None else "closed"
        self._log.info("hsm_client_disconnected", answered=self.answered, reason=reason)
        # Bounded for a label: why we closed it, else closed (the peer's EOF) or reset.
        if self._closing and self._failure is not None:
            label = self._failure
        elif self._closing:
            label = "shutdown"
        else:
            label = "closed" if exc is None else "reset"
        self._exchange.observer.connection_closed(label)
        self._transport = None

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or self._closing:
            return
        decoder = self._decoder
        exchange = self._exchange
        log = self._log
        out: list[bytes] = []
        failure: str | None = None
        try:
            decoder.feed(data)
            while (event := decoder.next_event()) is not None:
                if isinstance(event, KeepAlive):
                    continue  # a zero-length frame holds the line open; nothing to answer
                out.append(self._frame(exchange.answer(event.body, log)))
        except FramingError as exc:
            failure = exc.describe()
            self._failure = "framing"
        except HsmError as exc:
            failure = exc.reason
            self._failure = "format"
        if out:
            self.answered += len(out)
            transport.write(b"".join(out))
        if failure is not None:
            # The stream cannot be trusted past this point; answers already due still go out.
            self._closing = True
            assert self._failure is not None
            exchange.observer.wire_error(self._failure)
            log.warning("hsm_frame_rejected", reason=failure, answered=self.answered)
            transport.close()

    def _frame(self, body: bytes) -> bytes:
        try:
            return encode_frame(self._out_fmt, body)
        except ValueError:
            # Unreachable with today's commands (answers are at most twice an 8 KiB request),
            # but a frame must go out or the client's pipeline loses count.
            hl = self._exchange.header_length
            self._log.error("hsm_answer_too_long", length=len(body))
            return encode_frame(
                self._out_fmt, body[: hl + 2] + ErrorCode.DATA_LENGTH.value.encode("ascii")
            )

    def eof_received(self) -> bool | None:
        return None  # close our side too; answers already written are flushed first

    def pause_writing(self) -> None:
        if self._transport is not None and not self._paused:
            self._paused = True
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and self._paused:
            self._paused = False
            if not self._closing:
                self._transport.resume_reading()

    # --- shutdown -------------------------------------------------------------------------

    def stop_reading(self) -> None:
        self._closing = True
        if self._transport is not None and not self._transport.is_closing():
            with contextlib.suppress(RuntimeError):
                self._transport.pause_reading()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


async def _serve_udp(stream: Any, exchange: _Exchange, max_frame: int) -> None:
    """One datagram = header + command, answered to its sender. Errors drop that datagram."""
    log = exchange.log.bind(transport="udp")
    while True:
        try:
            data, addr = await stream.recv()
        except asyncio_dgram.TransportClosed:
            return
        except OSError as exc:
            # ICMP errors from an earlier send surface here; they concern one peer only.
            log.info("hsm_udp_error", reason=type(exc).__name__)
            continue
        if len(data) > max_frame:
            exchange.observer.wire_error("framing")
            log.warning("hsm_frame_rejected", peer=_peer_text(addr), reason="datagram too long",
                        length=len(data))
            continue
        peer_log = log.bind(peer=_peer_text(addr)) if exchange.trace else log
        try:
            reply = exchange.answer(data, peer_log)
        except HsmError as exc:
            exchange.observer.wire_error("format")
            log.warning("hsm_frame_rejected", peer=_peer_text(addr), reason=exc.reason)
            continue
        try:
            await stream.send(reply, addr)
        except asyncio_dgram.TransportClosed:
            return
        except OSError as exc:
            log.info("hsm_udp_error", peer=_peer_text(addr), reason=type(exc).__name__)


@dataclass(slots=True)
class RunningHsm:
    """A started HSM: where it listens, and how to stop it."""

    host: str
    port: int
    udp_port: int | None
    _server: Listener
    _connections: _Connections
    _udp_stream: Any
    _udp_task: asyncio.Task[None] | None
    _shutdown_timeout: float
    _log: Any
    _closed: bool = field(default=False)
    tls: bool = False

    @property
    def tcp_url(self) -> str:
        """Where the TCP (or TLS) listener is, as an address `transport_from_url` takes."""
        return f"{'tls' if self.tls else 'tcp'}://{self.host}:{self.port}"

    @property
    def udp_url(self) -> str | None:
        return None if self.udp_port is None else f"udp://{self.host}:{self.udp_port}"

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The listening TCP sockets (for socket options; accepted sockets inherit them)."""
        return tuple(self._server.sockets)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def close(self, timeout: float | None = None) -> None:
        """Stop accepting, let answers already written drain, then close; connections still
        open after ``timeout`` seconds are aborted."""
        if self._closed:
            return
        self._closed = True
        limit = self._shutdown_timeout if timeout is None else timeout
        self._server.close()
        if self._udp_stream is not None:
            self._udp_stream.close()
        if self._udp_task is not None:
            self._udp_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._udp_task
        # Every request already read has been answered (the dispatcher is synchronous), so
        # in flight means written but not yet sent: stop reading, close, let the flush finish.
        for conn in self._connections:
            conn.stop_reading()
            conn.close()
        try:
            async with asyncio.timeout(limit):
                await self._connections.wait_empty()
        except TimeoutError:
            self._log.warning("hsm_shutdown_timeout", aborted=len(self._connections))
            for conn in self._connections:
                conn.abort()
            await asyncio.sleep(0)
        await self._server.wait_closed()
        self._log.info("hsm_stopped")

    async def __aenter__(self) -> RunningHsm:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


async def serve_hsm(
    config: HsmServerConfig, *, handler: CommandHandler | None = None, observer: Observer = NULL_OBSERVER
) -> RunningHsm:
    """Start the TCP (and optional UDP) listeners on the running loop and return at once.

    ``handler`` replaces the dispatcher built from ``config.lmk``/``config.test_mode`` (tests
    use this to put a failing handler behind a real socket); ``observer`` hears every command,
    connection and rejected frame."""
    log = get_logger("hsm_sim.server").bind()
    dispatcher: CommandHandler = handler or Dispatcher(config.lmk, test_mode=config.test_mode)
    exchange = _Exchange(dispatcher, config.header_length, log, observer)
    in_fmt = host_frame_format(config.max_frame)
    connections = _Connections()
    tls = config.tls.context() if config.tls is not None else None
    server = await listen(
        lambda: _HsmConnection(exchange, in_fmt, connections),
        config.host,
        config.port,
        tls=tls,
        handshake_timeout=config.handshake_timeout,
        log=log,
        on_refused=observer.connection_refused,
        reuse_address=True,
    )
    port = server.port
    udp_stream: Any = None
    udp_task: asyncio.Task[None] | None = None
    udp_port: int | None = None
    if config.udp_port is not None:
        try:
            udp_stream = await asyncio_dgram.bind((config.host, config.udp_port))
        except OSError:
            server.close()
            await server.wait_closed()
            raise
        udp_port = int(udp_stream.sockname[1])
        udp_task = asyncio.create_task(
            _serve_udp(udp_stream, exchange, config.max_frame), name="hsm-udp"
        )
    log.info(
        "hsm_listening",
        host=config.host,
        port=port,
        udp_port=udp_port,
        header_length=config.header_length,
        tls="off" if config.tls is None else "mutual" if config.tls.mutual else "on",
    )
    return RunningHsm(
        host=config.host,
        port=port,
        udp_port=udp_port,
        _server=server,
        _connections=connections,
        _udp_stream=udp_stream,
        _udp_task=udp_task,
        _shutdown_timeout=config.shutdown_timeout,
        _log=log,
        tls=tls is not None,
    )
