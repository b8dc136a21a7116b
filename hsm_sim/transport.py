"""Remote HSM transports: host commands to a payShield-style HSM over TCP or UDP.

Both implement ``hsm_sim.facade.HsmTransport``: ``request(command + fields)`` returns
``response code + error code + fields``; the length prefix and message header are added and
taken off here.

* ``TcpTransport`` keeps a small pool of persistent connections. Each pipelines: requests go
  out as soon as they are made (one write per loop turn) and answers are matched to them in
  order. A request that times out resets its connection, because from then on nobody can tell
  which answer belongs to which request; the next request reconnects.
* ``UdpTransport`` numbers each request in the message header (the HSM echoes it) and matches
  answers by it, resending once when an answer is late.

Failures are typed: ``HsmUnavailable`` (cannot connect, connection lost), ``HsmTimeout`` (no
answer in time), ``HsmProtocolError`` (the peer answered something that is not an answer to us).
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.facade import HsmTransport, InProcTransport
from hsm_sim.hostframe import (
    DEFAULT_HEADER_LENGTH,
    check_header_length,
    header_for,
    header_space,
    host_frame_format,
)
from specs.errors import FramingError
from specs.framing import FrameDecoder, FrameFormat, KeepAlive, encode_frame

DEFAULT_PORT = 1500
DEFAULT_TIMEOUT = 2.0
DEFAULT_POOL_SIZE = 4
_MAX_FRAME = 0xFFFF  # what a 2-byte length can carry, both ways


class HsmTransportError(Exception):
    """The HSM could not be asked or did not answer; says which HSM and what happened."""


class HsmUnavailable(HsmTransportError):
    """No connection to the HSM: refused, unreachable, lost, or the transport is closed."""


class HsmTimeout(HsmTransportError):
    """The HSM did not answer within the timeout."""


class HsmProtocolError(HsmTransportError):
    """The HSM sent something that is not an answer to our request (bad frame, wrong header)."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        # asyncio puts its own text in strerror ("Connect call failed ..."); the errno is clearer.
        if exc.errno:
            return os.strerror(exc.errno)
        if exc.strerror:
            return exc.strerror
    return type(exc).__name__


# --- TCP ----------------------------------------------------------------------------------


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
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self.usable = True

    def connection_lost(self, exc: Exception | None) -> None:
        why = f"connection to {self._url} lost" + (f" ({_reason(exc)})" if exc else "")
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
    ) -> None:
        check_header_length(len(header))
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.host = host
        self.port = port
        self.url = f"tcp://{host}:{port}"
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
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self._timeout):
                    _, conn = await loop.create_connection(
                        lambda: _PipelinedConnection(self.url, self._header, self._timeout),
                        self.host,
                        self.port,
                    )
            except TimeoutError:
                raise HsmUnavailable(
                    f"cannot connect to {self.url}: no answer within {self._timeout:g} s"
                ) from None
            except OSError as exc:
                raise HsmUnavailable(f"cannot connect to {self.url}: {_reason(exc)}") from None
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


# --- UDP ----------------------------------------------------------------------------------


class _DatagramEndpoint(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._owner._answer(data)

    def error_received(self, exc: Exception) -> None:
        self._owner._fail_all(
            HsmUnavailable(f"{self._owner.url} unreachable: {_reason(exc)}")
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._fail_all(HsmUnavailable(f"transport to {self._owner.url} closed"))


class UdpTransport:
    """Host commands over UDP: one datagram each way, answers matched by a numbered header."""

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        header_length: int = DEFAULT_HEADER_LENGTH,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 1,
    ) -> None:
        check_header_length(header_length)
        if header_length < 2:
            raise ValueError(
                "UDP needs a message header of at least 2 characters to match answers, "
                f"got {header_length}"
            )
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if retries < 0:
            raise ValueError(f"retries must not be negative, got {retries}")
        self.host = host
        self.port = port
        self.url = f"udp://{host}:{port}"
        self._hl = header_length
        self._space = header_space(header_length)
        self._timeout = timeout
        self._retries = retries
        self._counter = int(time.monotonic_ns()) % self._space  # differ between client runs
        self._pending: dict[bytes, asyncio.Future[bytes]] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._opening = asyncio.Lock()
        self._closed = False

    async def _endpoint(self) -> asyncio.DatagramTransport:
        if self._transport is not None and not self._transport.is_closing():
            return self._transport
        async with self._opening:
            if self._closed:
                raise HsmUnavailable(f"transport to {self.url} is closed")
            if self._transport is None or self._transport.is_closing():
                loop = asyncio.get_running_loop()
                try:
                    transport, _ = await loop.create_datagram_endpoint(
                        lambda: _DatagramEndpoint(self), remote_addr=(self.host, self.port)
                    )
                except OSError as exc:
                    raise HsmUnavailable(f"cannot reach {self.url}: {_reason(exc)}") from None
                self._transport = transport
            return self._transport

    def _next_header(self) -> bytes:
        for _ in range(len(self._pending) + 1):
            self._counter = (self._counter + 1) % self._space
            header = header_for(self._counter, self._hl)
            if header not in self._pending:
                return header
        raise HsmUnavailable(f"too many requests in flight to {self.url}")

    async def request(self, message: bytes) -> bytes:
        if self._closed:
            raise HsmUnavailable(f"transport to {self.url} is closed")
        transport = await self._endpoint()
        header = self._next_header()
        datagram = header + message
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[header] = future
        try:
            for _attempt in range(self._retries + 1):
                transport.sendto(datagram)
                # wait() leaves the future alone on timeout, so a late answer still counts.
                await asyncio.wait((future,), timeout=self._timeout)
                if future.done():
                    return future.result()
            raise HsmTimeout(
                f"no answer from {self.url} within {self._timeout:g} s "
                f"({self._retries + 1} attempts)"
            )
        finally:
            self._pending.pop(header, None)

    def _answer(self, data: bytes) -> None:
        future = self._pending.get(data[: self._hl])
        if future is not None and not future.done() and len(data) >= self._hl:
            future.set_result(data[self._hl :])

    def _fail_all(self, error: HsmTransportError) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)

    async def close(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._fail_all(HsmUnavailable(f"transport to {self.url} closed"))
        await asyncio.sleep(0)

    async def __aenter__(self) -> UdpTransport:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


# --- choosing a transport -----------------------------------------------------------------


def transport_from_url(
    url: str,
    *,
    dispatcher_factory: Callable[[], Dispatcher] = Dispatcher,
    header_length: int = DEFAULT_HEADER_LENGTH,
    pool_size: int = DEFAULT_POOL_SIZE,
    timeout: float = DEFAULT_TIMEOUT,
) -> HsmTransport:
    """``inproc`` (a dispatcher in this process), ``tcp://host:port`` or ``udp://host:port``.

    Raises ValueError naming what is wrong with ``url``."""
    if url == "inproc":
        return InProcTransport(dispatcher_factory())
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad HSM address {url!r}: {exc}") from None
    if parts.scheme not in ("tcp", "udp") or not parts.hostname:
        raise ValueError(
            f"bad HSM address {url!r}: expected inproc, tcp://HOST:PORT or udp://HOST:PORT"
        )
    if parts.path or parts.query or parts.fragment or parts.username:
        raise ValueError(f"bad HSM address {url!r}: only scheme, host and port are allowed")
    host = parts.hostname
    if parts.scheme == "tcp":
        header = header_for(0, header_length) if header_length else b""
        return TcpTransport(
            host, port or DEFAULT_PORT, header=header, pool_size=pool_size, timeout=timeout
        )
    return UdpTransport(host, port or DEFAULT_PORT, header_length=header_length, timeout=timeout)


async def close_transport(transport: HsmTransport) -> None:
    """Close a transport made by ``transport_from_url`` (in-process ones hold nothing)."""
    if isinstance(transport, TcpTransport | UdpTransport):
        await transport.close()


__all__ = [
    "HsmProtocolError",
    "HsmTimeout",
    "HsmTransportError",
    "HsmUnavailable",
    "TcpTransport",
    "UdpTransport",
    "close_transport",
    "transport_from_url",
]
