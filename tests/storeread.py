"""Reading a switch store from a synchronous test (one that runs the CLI in-process, which runs
its own event loop): open, read, close, in a loop of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from switch.sqlite_store import SqliteStore

T = TypeVar("T")


def read_store(path: str | Path, read: Callable[[SqliteStore], Awaitable[T]]) -> T:
    async def go() -> T:
        store = SqliteStore(path, create=False)
        try:
            return await read(store)
        finally:
            await store.close()

    return asyncio.run(go())
