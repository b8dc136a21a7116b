"""The asyncio shell of the switch: bytes in, `SwitchEngine.handle`, bytes out.

Per connection: one framer, and a backlog of the requests decoded and not yet answered, in
arrival order (pipelining of any depth: nothing decoded is dropped while the peer is there).
One worker answers them in arrival order, handling each itself while it needs no wait (an
echo: no task per request); once one waits (a store commit, the HSM), every request behind it
starts as a task of its own, beside it. So a pipelining client (a gateway with many terminals
on one connection, a load tester) is not held to one request per commit or HSM round trip.
Reading pauses for three reasons: the backlog holds `max_pipeline` requests (it resumes at
half), the socket's write buffer is above its high-water mark (`_WriteFlow`), or the
connection is closing. So a client that writes without reading holds at most one read, the
backlog and one write buffer here.

What follows an answer that closes the connection (an unreadable MTI, a close rule) goes
unhandled, as it would have one request at a time: the engine decides a close before its
first wait (`SwitchEngine.handle`), and tasks take their first step in the order they were
made, so a request's first step runs after the one before it has decided, and sees
`_stopped`. The same flag drops the requests not yet started when the connection is lost.

Two clocks: the connection is idle after `idle_timeout` without a complete frame in or an
answer out (bytes of an unfinished frame do not count), and a frame must be whole
`frame_timeout` after its first byte (later bytes do not move that deadline; it stands still
while the switch itself is not reading). Shutdown: stop accepting, let connections answer what
they have decoded (bounded by a timeout), then abort what is left.

TLS (``serve --tls-cert``): the listener of specs/tls.py holds each connection through its
handshake, to the same ``frame_timeout`` as an unfinished frame, and closes a plaintext or
refused client with one log line; a connection reaches `_Connection` only once it speaks TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from dataclasses import dataclass, field
from typing import cast

from specs.errors import FramingError
from specs.framing import Frame, FrameDecoder
from specs.logs import get_logger
from specs.observer import NULL_OBSERVER, Observer
from specs.tls import Listener, listen
from switch.capture import Capture
from switch.engine import Answer, SwitchEngine
from switch.journalwire import request_wire

_log = get_logger("switch.server")


# Queued answers are written at once beyond this many bytes, so the write buffer overshoots the
# transport's high-water mark by at most this and one answer.
_COALESCE_BYTES = 4096


class _WriteFlow:
    """Write flow control of one transport, kept apart from request handling (as aiohttp's
    base_protocol does): the transport says when its buffer crosses the high-water mark and
    when it is back under the low one; the writer waits in `drain` in between."""

    __slots__ = ("_waiter", "paused")

    def __init__(self) -> None:
        self.paused = False
        self._waiter: asyncio.Future[None] | None = None

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self._wake()

    def lost(self) -> None:
        """The connection is gone: nothing will drain, so nobody may wait any longer."""
        self._wake()

    async def drain(self) -> None:
        if not self.paused:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _Connection(asyncio.Protocol):
    """One terminal's TCP connection: frames in, answers out, in order."""

    __slots__ = (
        "_backlog",
        "_closing",
        "_deadline",
        "_deadline_left",
        "_decoder",
        "_direct",
        "_flow",
        "_idle",
        "_last_activity",
        "_loop",
        "_out",
        "_out_size",
        "_reading",
        "_remote",
        "_rest_due",
        "_server",
        "_stopped",
        "_transport",
        "_why",
        "_worker",
    )
    _transport: asyncio.Transport  # set by connection_made, before any other callback

    def __init__(self, server: SwitchServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._decoder = FrameDecoder(server.engine.codec.dialect.framing)
        # The requests not yet answered, oldest first: a frame not started yet (or the one the
        # worker handles itself, `_direct`), or a task handling one (None: it went unhandled).
        self._backlog: deque[Frame | asyncio.Task[Answer | None]] = deque()
        self._direct: Frame | None = None
        self._rest_due = False  # `_start_rest` is scheduled
        self._stopped = False  # requests not yet started go unhandled (a close, a lost peer)
        self._flow = _WriteFlow()
        # Answers not yet written: the answers decided in one turn of the loop leave in one
        # write (one send call for a pipelined burst, not one each); see `_send`.
        self._out: list[bytes] = []
        self._out_size = 0
        self._remote = "?"
        self._worker: asyncio.Task[None] | None = None
        self._reading = True
        self._closing = False
        self._last_activity = self._loop.time()  # a complete frame in or an answer out
        self._idle: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None  # the unfinished frame's
        self._deadline_left: float | None = None  # what it had left when reading paused
        self._why: str | None = None  # why we close it, for the observer (None: the peer did)

    # -- asyncio callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's TCP transport is not an asyncio.Transport.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._remote = f"{peer[0]}:{peer[1]}" if peer else "?"
        if len(self._server.connections) >= self._server.max_connections:
            _log.warning("connection_refused", remote=self._remote, reason="max connections")
            self._server.observer.connection_refused("max_connections")
            self._closing = True
            transport.abort()
            return
        self._server.connections.add(self)
        if self._server.capture is not None and peer:  # serve --capture (switch/capture.py)
            local = transport.get_extra_info("sockname")
            self._server.capture.opened(self, (peer[0], peer[1]), (local[0], local[1]))
        self._server.observer.connection_opened()
        self._idle = self._loop.call_later(self._server.idle_timeout, self._on_idle)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        completed = False
        try:
            self._decoder.feed(data)
            for event in self._decoder.events():
                completed = True
                if isinstance(event, Frame):  # a keep-alive only proves the peer is there
                    self._backlog.append(event)
        except FramingError as exc:
            # The stream cannot be resynchronised: log once, answer what was decoded, close.
            _log.warning("framing_error", remote=self._remote, offset=exc.offset, reason=exc.reason)
            self._server.observer.wire_error("framing")
            self._finish("framing")
            return
        if completed:
            self._last_activity = self._loop.time()
            self._cancel_deadline()
        if self._decoder.buffered and self._deadline is None and self._deadline_left is None:
            self._deadline = self._loop.call_later(self._server.frame_timeout, self._on_deadline)
        if self._backlog:
            if self._worker is None:
                self._worker = self._loop.create_task(self._answer_backlog())
            else:  # it may be waiting on a request: the new ones must not wait behind it
                self._start_rest_soon()
        self._update_reading()

    def eof_received(self) -> bool:
        # The peer has sent all it will (a half-close): answer what it sent, then close.
        self._finish()
        return True

    def pause_writing(self) -> None:
        self._flow.pause()
        self._update_reading()

    def resume_writing(self) -> None:
        self._flow.resume()
        self._update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        # A request already being handled finishes (its answer is lost with the connection);
        # frames not yet started are dropped: there is nobody left to answer.
        self._closing = True
        self._stopped = True
        self._backlog.clear()
        self._cancel_timers()
        self._flow.lost()
        if self in self._server.connections:
            self._server.connections.discard(self)
            self._server.observer.connection_closed(self._why or ("closed" if exc is None else "reset"))
        if self._server.capture is not None:
            self._server.capture.closed(self)

    # -- work ----------------------------------------------------------------------------------

    async def _handle(self, frame: Frame) -> Answer | None:
        """One request; None when it goes unhandled: an answer before it closes the
        connection, or the peer is gone."""
        if self._stopped:
            return None
        capture = self._server.capture
        if capture is not None:
            capture.frame(self, True, request_wire(self._server.engine.codec, frame))
        answer = await self._server.engine.handle(frame, self._remote)
        if answer.close:
            self._stopped = True
        return answer

    def _start_rest_soon(self) -> None:
        """At the end of this turn of the loop, start what the worker has not: it runs until it
        waits, so what it has not reached by then waits behind a request that waits."""
        if not self._rest_due:
            self._rest_due = True
            self._loop.call_soon(self._start_rest)

    def _start_rest(self) -> None:
        self._rest_due = False
        backlog = self._backlog
        for at, entry in enumerate(backlog):  # in arrival order: their first steps go in it
            if isinstance(entry, Frame) and entry is not self._direct:
                backlog[at] = self._loop.create_task(self._handle(entry))

    async def _answer_backlog(self) -> None:
        """Answer the backlog in arrival order; a new worker starts when frames arrive after it
        ends."""
        transport = self._transport
        backlog = self._backlog
        try:
            while backlog:
                head = backlog[0]
                if isinstance(head, Frame):
                    self._direct = head
                    self._start_rest_soon()  # runs only if this request waits, or once it is answered
                    answer = await self._handle(head)
                    self._direct = None
                else:
                    answer = await head  # no wait when it is done already
                if transport.is_closing():  # lost meanwhile: the backlog was emptied with it
                    return
                backlog.popleft()
                self._update_reading()
                if answer is None:  # after a close (already being closed) or a lost peer
                    continue
                capture = self._server.capture
                if answer.wire is not None:
                    self._send(answer.wire)
                    if capture is not None:
                        capture.frame(self, False, answer.wire)
                    self._last_activity = self._loop.time()
                if answer.close:  # a close rule or an unreadable MTI: what follows goes unread
                    self._why = self._why or "answer"
                    self._closing = True
                    self._stopped = True
                    self._backlog.clear()  # what is left went unhandled (None)
                    self._cancel_timers()
                    break
                if self._flow.paused:  # no coroutine made for the usual case: nothing to wait for
                    await self._flow.drain()
        except asyncio.CancelledError:  # aborted: the requests still being handled end with it
            for entry in backlog:
                if isinstance(entry, asyncio.Task):
                    entry.cancel()
            raise
        finally:
            self._direct = None
            self._worker = None
        if self._closing:
            self._close()
        else:
            # The backlog is answered: its answers go now, in one write, not at the end of the
            # loop's turn, after every other connection's backlog, so that this client reads
            # them (and sends its next requests) while the switch answers the others.
            self._flush()

    def _send(self, wire: bytes) -> None:
        """Queue an answer; the queue is written at the end of this turn of the loop, before the
        loop waits for anything, so coalescing delays no answer past the work already in hand."""
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(wire)
        self._out_size += len(wire)
        if self._out_size >= _COALESCE_BYTES:  # enough for one write: backpressure sees it now
            self._flush()

    def _flush(self) -> None:
        if self._out and not self._transport.is_closing():
            self._transport.write(b"".join(self._out) if len(self._out) > 1 else self._out[0])  # may pause_writing
        self._out.clear()
        self._out_size = 0

    def _close(self) -> None:
        self._flush()
        self._transport.close()

    def _update_reading(self) -> None:
        """Read only while there is room for what the peer sends."""
        pipeline = self._server.max_pipeline
        room = pipeline if self._reading else max(1, pipeline // 2)
        want = not self._closing and not self._flow.paused and len(self._backlog) < room
        if want is self._reading:
            return
        self._reading = want
        if want:
            self._transport.resume_reading()
            if self._deadline_left is not None:
                self._deadline = self._loop.call_later(self._deadline_left, self._on_deadline)
                self._deadline_left = None
        else:
            self._transport.pause_reading()
            # The peer cannot finish a frame the switch does not read: stop its clock.
            if self._deadline is not None:
                self._deadline_left = max(0.0, self._deadline.when() - self._loop.time())
                self._deadline.cancel()
                self._deadline = None

    def _finish(self, why: str | None = None) -> None:
        """Stop reading, answer what is decoded, then close (framing error, timeouts, EOF,
        shutdown); ``why`` is what the observer hears (None: the peer ended it)."""
        if self._closing:
            return
        self._closing = True
        self._why = self._why or why
        self._cancel_timers()
        self._update_reading()
        if self._worker is None:
            if self._backlog:
                self._worker = self._loop.create_task(self._answer_backlog())
            else:
                self._close()

    # -- timers --------------------------------------------------------------------------------

    def _on_idle(self) -> None:
        # One timer per connection, moved on when it fires early: cheaper than re-arming it
        # for every frame.
        left = self._last_activity + self._server.idle_timeout - self._loop.time()
        if left > 0:
            self._idle = self._loop.call_later(left, self._on_idle)
            return
        self._idle = None
        _log.info("idle_timeout", remote=self._remote, writes_blocked=self._flow.paused)
        if self._flow.paused:
            # The peer has read nothing for the whole idle time: what is unwritten cannot be
            # delivered, and a graceful close would wait for it for ever.
            self._why = self._why or "idle"
            self.abort()
        else:
            self._finish("idle")

    def _on_deadline(self) -> None:
        self._deadline = None
        _log.warning("frame_timeout", remote=self._remote, buffered=self._decoder.buffered)
        self._finish("frame_timeout")

    def _cancel_deadline(self) -> None:
        self._deadline_left = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _cancel_timers(self) -> None:
        self._cancel_deadline()
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    # -- shutdown ------------------------------------------------------------------------------

    async def drain(self) -> None:
        self._finish("shutdown")
        if self._worker is not None:
            await asyncio.wait([self._worker])

    def abort(self) -> None:
        self._why = self._why or "shutdown"  # unless idle said so first
        self._transport.abort()
        if self._worker is not None:
            self._worker.cancel()


@dataclass(eq=False)
class SwitchServer:
    engine: SwitchEngine
    idle_timeout: float = 300.0
    frame_timeout: float = 10.0
    max_connections: int = 10000
    max_pipeline: int = 32
    connections: set[_Connection] = field(default_factory=set)
    capture: Capture | None = None  # serve --capture FILE.pcap
    observer: Observer = NULL_OBSERVER
    # One of several processes on one port (serve --workers): the kernel spreads the
    # connections over the listening sockets (SO_REUSEPORT, Linux).
    reuse_port: bool = False
    tls: ssl.SSLContext | None = None  # serve --tls-cert/--tls-key [--tls-client-ca]
    _server: Listener | None = None

    def __post_init__(self) -> None:
        for name in ("idle_timeout", "frame_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0 seconds, got {getattr(self, name)}")
        for name in ("max_connections", "max_pipeline"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be 1 or more, got {getattr(self, name)}")

    async def start(self, host: str, port: int) -> int:
        self._server = await listen(
            lambda: _Connection(self),
            host,
            port,
            tls=self.tls,
            handshake_timeout=self.frame_timeout,
            log=_log,
            on_refused=self.observer.connection_refused,
            backlog=4096,
            reuse_port=self.reuse_port or None,
        )
        return self._server.port

    async def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, let in-flight requests finish (up to ``timeout``), then abort."""
        if self._server is not None:
            self._server.close()
        draining = {asyncio.ensure_future(c.drain()): c for c in list(self.connections)}
        if draining:
            _done, late = await asyncio.wait(draining, timeout=timeout)
            for task in late:
                task.cancel()
                draining[task].abort()  # a peer that reads nothing, or a request that never ends
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout)
