"""The part of asyncpg the PostgreSQL store uses, typed, and its errors mapped at one edge.

asyncpg ships no type information, so mypy sees it as `Any`; this module states the few
calls `switch/pg_store.py` and `switch/pg_schema.py` make (as Protocols) and is the only place
that imports asyncpg. Every driver or server error leaves through `connection()` as one
`StoreError` naming the store (password masked), so callers never catch asyncpg by name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from switch.store import StoreError

CONNECT_TIMEOUT = 10.0  # seconds to reach the server before the store is an error


class Record(Protocol):
    def __getitem__(self, key: int | str) -> Any: ...
    def __len__(self) -> int: ...


class Connection(Protocol):
    async def execute(self, query: str, *args: object) -> str: ...
    async def executemany(self, query: str, args: Iterable[Sequence[object]]) -> None: ...
    async def fetch(self, query: str, *args: object) -> list[Record]: ...
    async def fetchrow(self, query: str, *args: object) -> Record | None: ...
    async def fetchval(self, query: str, *args: object) -> Any: ...
    async def copy_records_to_table(
        self, table_name: str, *, records: Iterable[Sequence[object]], columns: Sequence[str]
    ) -> str: ...
    def transaction(self) -> AbstractAsyncContextManager[Any]: ...


class Pool(Protocol):
    def acquire(self) -> AbstractAsyncContextManager[Connection]: ...
    async def close(self) -> None: ...
    def terminate(self) -> None: ...


# What asyncpg raises for a server that refuses, is gone, or is not there, and for a URL it
# cannot use. Anything else is a bug and keeps its traceback.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)
CONNECT_ERRORS: tuple[type[BaseException], ...] = (*DRIVER_ERRORS, ValueError)  # ValueError: an unusable URL


def safe_url(url: str) -> str:
    """The URL with any password replaced by ***: what errors and logs may show."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://(unreadable URL)"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def describe(exc: BaseException) -> str:
    """One line for a driver error: its class and message, never the statement's values."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


async def _keep_session(con: object) -> None:
    """What a released connection needs beyond asyncpg's own rollback of an open transaction:
    nothing. The store sets no session state (no SET, LISTEN or session advisory lock; its
    locks are transaction-scoped), so the default reset query would be one more round trip
    per store call for nothing."""


async def create_pool(url: str, *, min_size: int, max_size: int) -> Pool:
    """A connection pool to ``url``; an unreachable server, a refused login, a missing
    database or an unusable URL is a `StoreError` naming the (masked) URL."""
    try:
        pool: Pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT,
            server_settings={"application_name": "switchsim"},
            reset=_keep_session,
        )
    except CONNECT_ERRORS as exc:
        raise StoreError(f"{safe_url(url)}: cannot open the store ({describe(exc)})") from None
    return pool


@asynccontextmanager
async def connection(pool: Pool, where: str) -> AsyncIterator[Connection]:
    """A pooled connection for one store call; driver errors become `StoreError` here."""
    try:
        async with pool.acquire() as con:
            yield con
    except DRIVER_ERRORS as exc:
        raise StoreError(f"{where}: {describe(exc)}") from None


def is_data_error(exc: BaseException) -> bool:
    """The server refused a value (text with a NUL byte, a number out of range), not the
    connection: the one row is at fault, the others of its batch can still be written."""
    return isinstance(exc, asyncpg.DataError)  # SQLSTATE class 22, and asyncpg's own encoding errors


# SQLSTATE classes of a statement the server refused and rolled back, the connection fine: a
# value (22), a constraint (23), a deadlock or serialization failure (40).
_REFUSED_CLASSES = ("22", "23", "40")


def is_refusal(exc: BaseException) -> bool:
    """The server refused the statement and applied none of it; the connection is still good.
    Not a lost connection, after which whether a commit went in is not known."""
    if isinstance(exc, asyncpg.DataError):
        return True
    return isinstance(exc, asyncpg.PostgresError) and str(getattr(exc, "sqlstate", "") or "")[:2] in _REFUSED_CLASSES
