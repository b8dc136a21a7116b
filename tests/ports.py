"""Ports for tests that start a switch as a child process: a free one, and waiting until the
child listens on it."""

from __future__ import annotations

import asyncio
import socket


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick for port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_port(port: int, seconds: float = 30.0) -> None:
    """Return once 127.0.0.1:``port`` takes a connection; AssertionError after ``seconds``."""
    for _ in range(int(seconds / 0.05)):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} after {seconds:g} s")
