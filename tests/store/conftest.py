"""`opener` and `store`: the contract suite's stores, one param per store kind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switch.pg_store import PgStore
from switch.store import Store
from tests.pgserver import PgServer, create_database, drop_database
from tests.store.contract import KINDS, Opener, open_postgresql, open_sqlite

_templates: dict[int, str] = {}  # server port -> a database with the current schema installed


async def _store_template(server: PgServer) -> str:
    """A database holding the current schema and nothing else, made once per server: copying
    it is cheaper than installing the schema in every test's fresh database (installing is
    tested on its own, tests/store/test_pg_schema.py)."""
    if server.port not in _templates:
        url = await create_database(server, name="store_template")
        await (await PgStore.open(url)).close()
        _templates[server.port] = "store_template"
    return _templates[server.port]


@pytest.fixture(params=KINDS)
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    if request.param == "postgresql":
        server = request.getfixturevalue("pg_server")  # skips where there is no PostgreSQL
        url = await create_database(server, template=await _store_template(server))
        yield Opener("postgresql", url, open_postgresql)
        await drop_database(server, url)
    else:
        yield Opener("sqlite", str(tmp_path / "store.db"), open_sqlite)


@pytest.fixture
async def store(opener: Opener) -> AsyncIterator[Store]:
    opened = await opener.open()
    yield opened
    await opened.close()
