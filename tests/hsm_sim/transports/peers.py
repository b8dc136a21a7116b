"""Peers that misbehave on cue, over real sockets on 127.0.0.1, for the transport tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any, cast

# NC on the public Thales test LMK (see test_server.py for its derivation from the vectors).
NC_ANSWER_PREFIX = b"ND007B44AC1DDEE2A94B"


def free_port() -> int:
    """A port nothing listens on (bound, read and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


async def scripted_tcp_peer(script: Script) -> tuple[asyncio.Server, int]:
    """A TCP peer running ``script(reader, writer, connection_number)`` per connection."""
    count = 0

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        count += 1
        try:
            await script(reader, writer, count)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    n = int.from_bytes(await reader.readexactly(2), "big")
    return await reader.readexactly(n)


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(2, "big") + body


class ScriptedUdpPeer(asyncio.DatagramProtocol):
    """Records datagrams; answers ``header + ND00`` unless told to drop the first ``drop``."""

    def __init__(self, drop: int) -> None:
        self.drop = drop
        self.seen: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.seen.append(data)
        if len(self.seen) > self.drop and self.transport is not None:
            self.transport.sendto(data[:4] + b"ND00", addr)


async def scripted_udp_peer(drop: int) -> tuple[ScriptedUdpPeer, int]:
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(
        lambda: ScriptedUdpPeer(drop), local_addr=("127.0.0.1", 0)
    )
    return peer, int(transport.get_extra_info("sockname")[1])
