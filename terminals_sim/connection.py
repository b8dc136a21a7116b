"""The asyncio shell between a virtual terminal and a host: one TCP connection (TLS when given a
context, through specs/tls.py's connector), one exchange at a time, a timer per exchange,
failures mapped onto `Failure` at this one boundary: a TLS handshake that fails is ``refused``
with the TLS reason, a connection the host's TLS ends (mutual TLS without a certificate) is
``reset`` with it."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import cast

from specs.errors import FramingError
from specs.framing import Frame, FrameDecoder, FrameFormat, KeepAlive
from specs.tls import connect, tls_reason
from terminals_sim.outcome import Failure


class ExchangeFailed(Exception):
    """No usable answer: the connection is closed and must not be reused."""

    def __init__(self, failure: Failure, detail: str) -> None:
        self.failure = failure
        self.detail = detail
        super().__init__(f"{failure.value}: {detail}")


class HostConnection(asyncio.Protocol):
    """A client connection speaking length-prefixed frames."""

    def __init__(self, fmt: FrameFormat) -> None:
        self._decoder = FrameDecoder(fmt)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Frame] | None = None
        self._lost: ExchangeFailed | None = None
        # One timer per connection, not one per exchange: each exchange only moves the
        # deadline, and the timer, when it fires early, sleeps on to the current one.
        self._deadline = 0.0
        self._timeout = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def usable(self) -> bool:
        return self._lost is None and self._transport is not None and not self._transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's TCP transport is not an asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._decoder.feed(data)
            for event in self._decoder.events():
                if isinstance(event, KeepAlive):
                    continue
                waiter = self._waiter
                if waiter is None or waiter.done():
                    self._fail(ExchangeFailed(Failure.PROTOCOL, "frame arrived with no request outstanding"))
                    return
                waiter.set_result(event)
        except FramingError as exc:
            self._fail(ExchangeFailed(Failure.PROTOCOL, f"framing error: {exc.describe()}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lost is None:
            if isinstance(exc, ssl.SSLError):
                detail = f"connection reset (TLS: {tls_reason(exc)})"
            else:
                detail = f"connection reset ({type(exc).__name__})" if exc else "connection closed by the host"
            self._lost = ExchangeFailed(Failure.RESET, detail)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(self._lost)

    def _fail(self, error: ExchangeFailed) -> None:
        self._lost = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if self._transport is not None:
            self._transport.abort()

    async def exchange(self, frame: bytes, timeout: float) -> Frame:
        """Send one request frame and wait for the next frame back."""
        if self._lost is not None:
            raise self._lost
        if self._transport is None or self._transport.is_closing():
            raise ExchangeFailed(Failure.RESET, "connection closed")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Frame] = loop.create_future()
        self._waiter = waiter
        self._transport.write(frame)
        deadline = loop.time() + timeout
        self._deadline = deadline
        self._timeout = timeout
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(deadline, self._on_timer)
        try:
            return await waiter
        finally:
            self._waiter = None

    def _on_timer(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # idle: the next exchange arms a timer of its own
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._on_timer)
            return
        # A late answer would be taken for the next request's: the connection is done.
        self._fail(ExchangeFailed(Failure.TIMEOUT, f"no answer within {self._timeout:g} s"))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()


async def open_connection(
    host: str, port: int, fmt: FrameFormat, timeout: float, tls: ssl.SSLContext | None = None
) -> HostConnection:
    """Connect (over TLS with ``tls``), mapping every failure onto ExchangeFailed (refused, or
    timeout)."""
    try:
        async with asyncio.timeout(timeout):
            _transport, protocol = await connect(
                lambda: HostConnection(fmt), host, port, tls=tls, handshake_timeout=timeout
            )
    except TimeoutError:
        raise ExchangeFailed(Failure.TIMEOUT, f"connect took longer than {timeout:g} s") from None
    except ssl.SSLError as exc:
        raise ExchangeFailed(Failure.REFUSED, f"TLS handshake failed: {tls_reason(exc)}") from None
    except ConnectionRefusedError:
        raise ExchangeFailed(Failure.REFUSED, "connection refused") from None
    except OSError as exc:
        detail = f"cannot connect ({type(exc).__name__}: {exc.strerror})"
        raise ExchangeFailed(Failure.REFUSED, detail) from None
    return protocol


async def exchange_once(
    host: str, port: int, fmt: FrameFormat, frame: bytes, timeout: float, tls: ssl.SSLContext | None = None
) -> Frame:
    """Connect, exchange one frame, close (the per-exchange connection habit)."""
    conn = await open_connection(host, port, fmt, timeout, tls)
    try:
        return await conn.exchange(frame, timeout)
    finally:
        with contextlib.suppress(Exception):
            conn.close()
