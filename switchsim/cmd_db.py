"""`switchsim db upgrade`: bring a store's schema to the version this switchsim writes.

An embedded SQLite store is upgraded when anything opens it; a PostgreSQL store only here, so
that several switch processes sharing it never race a migration (`serve` refuses one that is
behind). Prints "schema vN -> vM", or "already at vM".
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from switch.storeurl import open_store, parse_store_url
from switchsim.errors import EXIT_OK


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="the store's schema")
    dsub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = dsub.add_parser(
        "upgrade",
        help="run the schema migrations the store is behind by",
        description="Run the versioned schema migrations on the store. Exit 0 when it is at this "
        "switchsim's version, 2 when the URL names no store or the store is newer than this switchsim.",
    )
    up.add_argument(
        "--store",
        "--db",
        dest="db",
        metavar="URL",
        required=True,
        help="a SQLite file (a path or sqlite:///ABS/PATH) or postgresql://USER@HOST:PORT/DB",
    )
    up.set_defaults(func=_upgrade)


def _upgrade(args: argparse.Namespace) -> int:
    shown = parse_store_url(args.db).shown

    async def go() -> tuple[int, int]:
        store = await open_store(args.db, create=False, migrate=False)
        try:
            return await store.upgrade()
        finally:
            await store.close()

    before, after = asyncio.run(go())
    print(f"{shown}: already at v{after}" if before == after else f"{shown}: schema v{before} -> v{after}")
    return EXIT_OK
