"""The asyncio shell of the switch: bytes in, `SwitchEngine.handle`, bytes out.

Per connection: one framer, one worker that answers requests in the order they arrived
(pipelining), a bounded queue that pauses reading when full, an idle timer and a timer for a
frame that starts but does not finish. Shutdown: stop accepting, let connections finish what is
queued (bounded by a timeout), then close the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from specs.errors import FramingError
from specs.framing import Frame, FrameDecoder, KeepAlive
from switch.capture import Capture
from switch.engine import SwitchEngine
from switch.journalwire import request_wire
from switchsim.logs import get_logger

_log = get_logger("switch.server")


class _Connection(asyncio.Protocol):
    def __init__(self, server: SwitchServer) -> None:
        self._server = server
        self._decoder = FrameDecoder(server.engine.codec.dialect.framing)
        self._queue: asyncio.Queue[Frame | None] = asyncio.Queue(server.max_pipeline)
        self._transport: asyncio.Transport | None = None
        self._remote = "?"
        self._worker: asyncio.Task[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._partial: asyncio.TimerHandle | None = None
        self._paused = False
        self._closing = False

    # -- asyncio callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._remote = f"{peer[0]}:{peer[1]}" if peer else "?"
        if len(self._server.connections) >= self._server.max_connections:
            _log.warning("connection_refused", remote=self._remote, reason="max connections")
            transport.abort()
            return
        self._server.connections.add(self)
        if self._server.capture is not None and peer:  # serve --capture (switch/capture.py)
            local = transport.get_extra_info("sockname")
            self._server.capture.opened(self, (peer[0], peer[1]), (local[0], local[1]))
        self._worker = asyncio.get_running_loop().create_task(self._work())
        self._touch()

    def data_received(self, data: bytes) -> None:
        self._touch()
        try:
            self._decoder.feed(data)
            for event in self._decoder.events():
                if isinstance(event, KeepAlive):
                    continue
                self._queue.put_nowait(event)
                if self._queue.full() and not self._paused and self._transport is not None:
                    self._paused = True
                    self._transport.pause_reading()
        except FramingError as exc:
            # The stream cannot be resynchronised: log once, answer what is queued, then close.
            _log.warning("framing_error", remote=self._remote, offset=exc.offset, reason=exc.reason)
            self._finish()
            return
        self._arm_partial_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        self._server.connections.discard(self)
        if self._server.capture is not None:
            self._server.capture.closed(self)
        if self._worker is not None and not self._closing:
            self._worker.cancel()

    # -- work ----------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            frame = await self._queue.get()
            if frame is None:
                break
            if self._paused and self._queue.qsize() < self._server.max_pipeline // 2 and self._transport:
                self._paused = False
                self._transport.resume_reading()
            capture = self._server.capture
            if capture is not None:
                capture.frame(self, True, request_wire(self._server.engine.codec, frame))
            answer = await self._server.engine.handle(frame, self._remote)
            if self._transport is None or self._transport.is_closing():
                return
            if answer.wire is not None:
                self._transport.write(answer.wire)
                if capture is not None:
                    capture.frame(self, False, answer.wire)
            if answer.close:
                break
            self._touch()
        if self._transport is not None:
            self._transport.close()

    def _finish(self) -> None:
        """Answer what is queued, then close (framing error, idle, shutdown)."""
        if self._closing:
            return
        self._closing = True
        self._cancel_timers()
        if self._transport is not None:
            self._transport.pause_reading()
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        if self._queue.full() and self._worker is not None:
            self._worker.cancel()
            if self._transport is not None:
                self._transport.close()

    # -- timers --------------------------------------------------------------------------------

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        if not self._closing:
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(self._server.idle_timeout, self._on_idle)

    def _on_idle(self) -> None:
        _log.info("idle_timeout", remote=self._remote)
        self._finish()

    def _arm_partial_timer(self) -> None:
        if self._partial is not None:
            self._partial.cancel()
            self._partial = None
        if self._decoder.buffered and not self._closing:
            loop = asyncio.get_running_loop()
            self._partial = loop.call_later(self._server.frame_timeout, self._on_partial)

    def _on_partial(self) -> None:
        _log.warning("frame_timeout", remote=self._remote, buffered=self._decoder.buffered)
        self._finish()

    def _cancel_timers(self) -> None:
        for timer in (self._idle, self._partial):
            if timer is not None:
                timer.cancel()

    async def drain(self) -> None:
        self._finish()
        if self._worker is not None:
            await asyncio.wait([self._worker])


@dataclass(eq=False)
class SwitchServer:
    engine: SwitchEngine
    idle_timeout: float = 300.0
    frame_timeout: float = 10.0
    max_connections: int = 10000
    max_pipeline: int = 32
    connections: set[_Connection] = field(default_factory=set)
    capture: Capture | None = None  # serve --capture FILE.pcap
    _server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port, backlog=4096)
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    async def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, let in-flight requests finish (up to ``timeout``), then close."""
        if self._server is not None:
            self._server.close()
        pending = [asyncio.ensure_future(c.drain()) for c in list(self.connections)]
        if pending:
            _done, late = await asyncio.wait(pending, timeout=timeout)
            for task in late:
                task.cancel()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout)
