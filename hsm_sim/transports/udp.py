"""Host commands over UDP: one datagram each way.

Each request is numbered in the message header (the HSM echoes it) and answers are matched by
it; a late answer is asked for once more with the same header.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hsm_sim.hostframe import DEFAULT_HEADER_LENGTH, check_header_length, header_for, header_space
from hsm_sim.transports.interface import (
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    HsmTimeout,
    HsmTransportError,
    HsmUnavailable,
    os_reason,
)


class _DatagramEndpoint(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._owner._answer(data)

    def error_received(self, exc: Exception) -> None:
        self._owner._fail_all(
            HsmUnavailable(f"{self._owner.url} unreachable: {os_reason(exc)}")
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
                    raise HsmUnavailable(f"cannot reach {self.url}: {os_reason(exc)}") from None
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
