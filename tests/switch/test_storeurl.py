"""Store URLs: what each names, the typed error of each that names none, passwords masked, and
`serve` refusing a store whose schema is behind."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from switch.app import serve_switch
from switch.config import ConfigError, SwitchConfig
from switch.sqlite_store import SqliteStore
from switch.storeurl import StoreKind, StoreUrlError, open_store, parse_store_url


@pytest.mark.parametrize(
    ("url", "kind", "target", "shown"),
    [
        ("switchsim.db", StoreKind.SQLITE, "switchsim.db", "switchsim.db"),
        ("/var/lib/s.db", StoreKind.SQLITE, "/var/lib/s.db", "/var/lib/s.db"),
        ("sqlite:///var/lib/s.db", StoreKind.SQLITE, "/var/lib/s.db", "sqlite:///var/lib/s.db"),
        ("sqlite://:memory:", StoreKind.SQLITE, ":memory:", "sqlite://:memory:"),
        ("postgresql://switch@db:5432/switchsim", StoreKind.POSTGRESQL, "postgresql://switch@db:5432/switchsim",
         "postgresql://switch@db:5432/switchsim"),
        ("postgresql://switch:s3cret@db/switchsim", StoreKind.POSTGRESQL, "postgresql://switch:s3cret@db/switchsim",
         "postgresql://switch:***@db/switchsim"),
        ("postgres://switch@db/x?password=s3cret&sslmode=require", StoreKind.POSTGRESQL,
         "postgres://switch@db/x?password=s3cret&sslmode=require", "postgres://switch@db/x?password=***&sslmode=require"),
        ("postgresql:///switchsim", StoreKind.POSTGRESQL, "postgresql:///switchsim", "postgresql:///switchsim"),
    ],
)
def test_a_url_names_its_store_and_shows_no_password(url: str, kind: StoreKind, target: str, shown: str) -> None:
    parsed = parse_store_url(url)
    assert (parsed.kind, parsed.target, parsed.shown) == (kind, target, shown)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("mysql://root:pw@db/switch", "unknown scheme 'mysql'"),
        ("sqlite://relative/s.db", "absolute path after three slashes"),
        ("sqlite:///", "no file after sqlite:///"),
        ("sqlite:///var/lib/", "names a folder"),
        ("sqlite:///s.db?mode=ro", "takes no ?options"),
        ("postgresql://switch:pw@db:port/switchsim", "port must be a number"),
        ("postgresql://switch@db:0/switchsim", "port must be a number"),
        ("postgresql://switch@db/a/b", "'a/b' is not a database name"),
    ],
)
def test_a_url_that_names_no_store_is_a_config_error_saying_why(url: str, problem: str) -> None:
    with pytest.raises(StoreUrlError) as info:
        parse_store_url(url)
    assert isinstance(info.value, ConfigError)  # the CLI's exit 2
    assert problem in str(info.value)
    assert "pw@" not in str(info.value)  # a password is never in an error


async def test_a_postgresql_url_without_the_postgresql_store_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "switch.pg_store", None)  # as if switch/pg_store.py were absent
    with pytest.raises(StoreUrlError, match="no PostgreSQL store"):
        await open_store("postgresql://switch:pw@127.0.0.1:1/switchsim")


async def test_open_store_opens_sqlite_by_path_and_by_url(tmp_path: Path) -> None:
    for url in (str(tmp_path / "a.db"), f"sqlite://{tmp_path / 'b.db'}"):
        store = await open_store(url, shared=True)
        assert isinstance(store, SqliteStore) and store.shared
        await store.close()
    assert (tmp_path / "a.db").exists() and (tmp_path / "b.db").exists()


class Behind(SqliteStore):
    """A store whose schema is behind this switchsim's (as a PostgreSQL one not yet upgraded)."""

    async def schema_version(self) -> tuple[int, int]:
        return 3, 6


async def test_serve_refuses_a_store_whose_schema_is_behind(tmp_path: Path) -> None:
    store = Behind(tmp_path / "s.db")
    config = SwitchConfig(port=0, db="postgresql://switch:pw@db/switchsim")
    with pytest.raises(StoreUrlError) as info:
        await serve_switch(config, store, InProcTransport(Dispatcher()))
    text = str(info.value)
    assert "schema v3 is behind this switchsim's v6" in text and "switchsim db upgrade" in text
    assert "postgresql://switch:***@db/switchsim" in text
    await store.close()
