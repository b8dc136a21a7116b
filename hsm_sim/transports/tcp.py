"""Host commands over TCP: a small pool of persistent, pipelined connections.

Each connection pipelines: requests go out as soon as they are made (one write per loop turn)
and answers are matched to them in order. A request that times out resets its connection,
because from then on nobody can tell which answer belongs to which request; the next request
reconnects. The 2-byte length prefix and the message header are added and taken off here.

With a TLS context (``tls://`` addresses, hsm_sim/transports/url.py) every pooled connection
is a TLS one, opened through specs/tls.py's connector: the HSM's certificate is verified
against the host dialled, and a failed handshake is `HsmUnavailable` with the TLS reason.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from typing import cast

from hsm_sim.hostframe import check_header_length, host_frame_format
from hsm_sim.transports.interface import (
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    HsmProtocolError,
    HsmTimeout,
    HsmTransportError,
    HsmUnavailable,
    os_reason,
)
from specs.errors import FramingError
from specs.framing import FrameDecoder, FrameFormat, KeepAlive, encode_frame
from specs.tls import connect

DEFAULT_POOL_SIZE = 4
_MAX_FRAME = 0xFFFF  # what a 2-byte length can carry, both ways


class _Pending:
    __slots__ = ("deadline", "future")

    def __init__(self, future: asyncio.Future[bytes], deadline: float) -> None:
        self.future = future
        self.deadline = deadline


class _PipelinedConnection(asyncio.Protocol):
    """One TCP connection: frames out in request order, answers matched first in, first out.

    Deadlines are in request order too (one timeout for all), so one timer armed for the oldest
    request covers them all; it is only re-armed when it fires, not per request.
    """

    def __init__(self, url: str, header: bytes, timeout: float) -> None:
        self._url = url
        self._header = header
        self._timeout = timeout
        self._fmt = FrameFormat(length=host_frame_format().length, max_frame=_MAX_FRAME)
        self._decoder = FrameDecoder(self._fmt)
        self._pending: collections.deque[_Pending] = collections.deque()
        self._outbox: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._flush_scheduled = False
        self._writable = asyncio.Event()
        self._writable.set()
        self.usable = False

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    # asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's TCP transport is not an asyncio.Transport.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        self.usable = True

    def connection_lost(self, exc: Exception | None) -> None:
        why = f"connection to {self._url} lost" + (f" ({os_reason(exc)})" if exc else "")
        self._shut(HsmUnavailable(why))

    def eof_received(self) -> bool | None:
        return None

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        decoder = self._decoder
        pending = self._pending
        header = self._header
        hl = len(header)
        try:
            decoder.feed(data)
            while (event := decoder.next_event()) is not None:
                if isinstance(event, KeepAlive):
                    continue
                body = event.body
                if not pending:
                    raise HsmProtocolError(f"{self._url} sent an answer nobody asked for")
                if body[:hl] != header:
                    raise HsmProtocolError(
                        f"{self._url} answered with a different message header"
                    )
                future = pending.popleft().future
                if not future.done():
                    future.set_result(body[hl:])
        except FramingError as exc:
            self._shut(HsmProtocolError(f"{self._url} sent a bad frame: {exc.describe()}"))
        except HsmProtocolError as exc:
            self._shut(exc)

    # requests -----------------------------------------------------------------------------

    async def request(self, frame: bytes) -> bytes:
        if not self._writable.is_set():
            await self._writable.wait()
        if not self.usable:
            raise HsmUnavailable(f"connection to {self._url} closed")
        future: asyncio.Future[bytes] = self._loop.create_future()
        deadline = self._loop.time() + self._timeout
        self._pending.append(_Pending(future, deadline))
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._check_deadlines)
        self._outbox.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        # Requests made in one loop turn leave in one write: far fewer syscalls when pipelining.
        self._flush_scheduled = False
        if self._outbox and self._transport is not None and self.usable:
            self._transport.write(b"".join(self._outbox))
        self._outbox.clear()

    def _check_deadlines(self) -> None:
        self._timer = None
        if not self._pending:
            return
        head = self._pending[0]
        if head.deadline > self._loop.time():
            self._timer = self._loop.call_at(head.deadline, self._check_deadlines)
            return
        self._pending.popleft()
        if not head.future.done():
            head.future.set_exception(
                HsmTimeout(f"no answer from {self._url} within {self._timeout:g} s")
            )
        self._shut(
            HsmUnavailable(f"connection to {self._url} reset after a request timed out")
        )

    def _shut(self, error: HsmTransportError) -> None:
        """Fail every request still waiting and drop the connection."""
        self.usable = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            future = self._pending.popleft().future
            if not future.done():
                future.set_exception(error)
        self._outbox.clear()
        self._writable.set()  # wake writers so they see the connection is gone
        if self._transport is not None:
            self._transport.abort()
            self._transport = None

    def close(self) -> None:
        self._shut(HsmUnavailable(f"transport to {self._url} closed"))


class TcpTransport:
    """Host commands over a pool of persistent, pipelined TCP connections (opened on demand)."""

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        header: bytes = b"0000",
        pool_size: int = DEFAULT_POOL_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        check_header_length(len(header))
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.host = host
        self.port = port
        self.url = f"{'tls' if tls is not None else 'tcp'}://{host}:{port}"
        self._tls = tls
        self._header = bytes(header)
        self._timeout = timeout
        self._fmt = FrameFormat(length=host_frame_format().length, max_frame=_MAX_FRAME)
        self._slots: list[_PipelinedConnection | None] = [None] * pool_size
        self._locks = [asyncio.Lock() for _ in range(pool_size)]
        self._next = 0
        self._closed = False

    @property
    def connected(self) -> int:
        """How many pooled connections are open."""
        return sum(1 for c in self._slots if c is not None and c.usable)

    async def request(self, message: bytes) -> bytes:
        if self._closed:
            raise HsmUnavailable(f"transport to {self.url} is closed")
        frame = encode_frame(self._fmt, self._header + message)
        i = self._next
        self._next = (i + 1) % len(self._slots)
        conn = self._slots[i]
        if conn is None or not conn.usable:
            conn = await self._connect(i)
        return await conn.request(frame)

    async def _connect(self, i: int) -> _PipelinedConnection:
        async with self._locks[i]:
            conn = self._slots[i]
            if conn is not None and conn.usable:
                return conn
            if self._closed:
                raise HsmUnavailable(f"transport to {self.url} is closed")
            try:
                async with asyncio.timeout(self._timeout):
                    _, conn = await connect(
                        lambda: _PipelinedConnection(self.url, self._header, self._timeout),
                        self.host,
                        self.port,
                        tls=self._tls,
                        handshake_timeout=self._timeout,
                    )
            except TimeoutError:
                raise HsmUnavailable(
                    f"cannot connect to {self.url}: no answer within {self._timeout:g} s"
                ) from None
            except OSError as exc:
                raise HsmUnavailable(f"cannot connect to {self.url}: {os_reason(exc)}") from None
            self._slots[i] = conn
            return conn

    async def close(self) -> None:
        self._closed = True
        for i, conn in enumerate(self._slots):
            if conn is not None:
                conn.close()
            self._slots[i] = None
        await asyncio.sleep(0)  # let the aborted transports run connection_lost

    async def __aenter__(self) -> TcpTransport:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()
