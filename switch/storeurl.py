"""Which store a URL names, and opening it.

- a plain path (`switchsim.db`, `/var/lib/switchsim/switch.db`) or `sqlite:///abs/path`: the
  embedded SQLite store (switch/sqlite_store.py), migrated when it is opened;
  `sqlite://:memory:` (or `:memory:`) one in a temporary file, gone when it is closed;
- `postgresql://user[:password]@host[:port]/db` (or `postgres://`): the PostgreSQL store
  (switch/pg_store.py), which several switch processes and hosts share. Its schema is moved
  only by `switchsim db upgrade`; `serve` refuses one that is behind (`require_current`).

A URL that names no store is a `StoreUrlError` (a `ConfigError`: the CLI prints it and exits 2)
that says what is wrong with it. `shown` is the URL with any password masked: what a start-up
line or an error may print.
"""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from switch.config import ConfigError
from switch.sqlite_store import SqliteStore
from switch.store import Store

_MEMORY = ":memory:"
_SECRET_PARAMS = frozenset({"password", "sslpassword"})


class StoreKind(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class StoreUrlError(ConfigError):
    """A store URL that names no store, or names one this switchsim cannot open."""

    def __init__(self, shown: str, problem: str) -> None:
        super().__init__("store", shown or "''", problem)


@dataclass(frozen=True, slots=True)
class StoreUrl:
    kind: StoreKind
    target: str  # the SQLite file (or ":memory:"), or the PostgreSQL URL as given
    shown: str  # the URL with any password masked

    def __str__(self) -> str:
        return self.shown


def parse_store_url(url: str) -> StoreUrl:
    text = url.strip()
    if not text:
        raise StoreUrlError(url, "empty: give a path, sqlite:///ABS/PATH or postgresql://USER@HOST:PORT/DB")
    if "://" not in text:
        return StoreUrl(StoreKind.SQLITE, text, text)  # a plain path (or ":memory:")
    scheme = text.split("://", 1)[0].lower()
    if scheme == "sqlite":
        return _sqlite(text)
    if scheme in ("postgresql", "postgres"):
        return _postgresql(text)
    raise StoreUrlError(
        mask_password(text), f"unknown scheme {scheme!r} (a store URL is a path, sqlite:/// or postgresql://)"
    )


def _sqlite(text: str) -> StoreUrl:
    rest = text.split("://", 1)[1]
    if rest == _MEMORY:
        return StoreUrl(StoreKind.SQLITE, _MEMORY, text)
    if "?" in rest or "#" in rest:
        raise StoreUrlError(text, "a sqlite URL takes no ?options or #fragment: sqlite:///ABS/PATH")
    if not rest.startswith("/"):
        # sqlite://host/path would silently drop "host": say what was meant
        raise StoreUrlError(
            text, "a sqlite URL names an absolute path after three slashes (sqlite:///ABS/PATH); a relative one "
            "is written as a plain path"
        )
    if rest.rstrip("/") == "":
        raise StoreUrlError(text, "no file after sqlite:/// (sqlite:///ABS/PATH)")
    if rest.endswith("/"):
        raise StoreUrlError(text, "names a folder, not a store file")
    return StoreUrl(StoreKind.SQLITE, rest, text)


def _postgresql(text: str) -> StoreUrl:
    shown = mask_password(text)
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - urllib checks the port when it is read
    except ValueError:
        raise StoreUrlError(shown, "the port must be a number from 1 to 65535") from None
    if parts.port == 0:
        raise StoreUrlError(shown, "the port must be a number from 1 to 65535")
    if parts.fragment:
        raise StoreUrlError(shown, "a postgresql URL takes no #fragment")
    database = parts.path.lstrip("/")
    if "/" in database:
        raise StoreUrlError(shown, f"{database!r} is not a database name (postgresql://USER@HOST:PORT/DB)")
    return StoreUrl(StoreKind.POSTGRESQL, text, shown)


def mask_password(url: str) -> str:
    """The URL with the password of its user part, and a password= option, as ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc, query = parts.netloc, parts.query
    user, at, host = netloc.rpartition("@")
    if at and ":" in user:
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(k in _SECRET_PARAMS for k, _ in pairs):
        query = urlencode([(k, "***" if k in _SECRET_PARAMS else v) for k, v in pairs], safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


async def open_store(url: str, *, create: bool = True, shared: bool = False, migrate: bool = True) -> Store:
    """Open the store ``url`` names. ``create``: a SQLite file may be made (read-only commands
    pass False); ``shared``: several processes serve it (`serve --workers`), so nothing it holds
    is cached; ``migrate`` False leaves an older SQLite store as it is, for `upgrade`.
    A PostgreSQL store is shared whatever ``shared`` says, and never migrated here."""
    where = parse_store_url(url)
    if where.kind is StoreKind.SQLITE:
        # In a thread: opening may migrate, and wait for the lock of another process doing so.
        return await asyncio.to_thread(SqliteStore, where.target, create=create, shared=shared, migrate=migrate)
    try:
        module = importlib.import_module("switch.pg_store")
    except ModuleNotFoundError as exc:
        if exc.name in ("switch.pg_store", "switch"):
            raise StoreUrlError(where.shown, "this switchsim has no PostgreSQL store (switch/pg_store.py)") from None
        raise StoreUrlError(
            where.shown, f"the PostgreSQL store needs the Python package {exc.name!r}: pip install {exc.name}"
        ) from None
    # `db upgrade` (migrate False) opens a store that is behind; anything else is refused one
    store: Store = await module.PgStore.open(where.target, create=create, allow_behind=not migrate)
    return store


async def require_current(store: Store, shown: str) -> None:
    """Refuse a store whose schema is not the one this switchsim writes (`serve`): behind, it
    is upgraded by `switchsim db upgrade`; ahead, it belongs to a newer switchsim."""
    version, latest = await store.schema_version()
    if version < latest:
        raise StoreUrlError(
            shown, f"schema v{version} is behind this switchsim's v{latest}: run `switchsim db upgrade --store URL`"
        )
    if version > latest:
        raise StoreUrlError(shown, f"schema v{version} is newer than this switchsim's v{latest}")
