"""`switchsim db upgrade` on a store of schema 5 that holds a repeated STAN (as two processes, or a
chip request declined before its STAN was looked at, could leave one), and the store URL's
errors as the CLI reports them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from switch.records import TerminalId, Transaction, TxnKind, TxnStatus
from switch.sqlite_schema import SCHEMA_VERSION
from switch.sqlite_store import SqliteStore
from switch.store import DuplicateTransaction
from switchsim.cli import main
from tests.storeread import read_store

MERCHANT, TERMINAL = "848100058126002", "00000764"
# The transactions table and its STAN index exactly as schema 5 made them.
V5_TRANSACTIONS = """CREATE TABLE transactions (
    id INTEGER PRIMARY KEY, merchant TEXT NOT NULL, terminal TEXT NOT NULL, batch TEXT NOT NULL,
    stan TEXT NOT NULL, kind TEXT NOT NULL, mti TEXT NOT NULL, processing_code TEXT NOT NULL,
    amount INTEGER NOT NULL, pan_ref TEXT NOT NULL, pan_masked TEXT NOT NULL,
    response_code TEXT NOT NULL, status TEXT NOT NULL, rrn TEXT NOT NULL, auth_code TEXT NOT NULL,
    date TEXT NOT NULL, time REAL NOT NULL, original_id INTEGER, remaining INTEGER NOT NULL);
CREATE INDEX txn_stan ON transactions (merchant, terminal, batch, stan);"""


def v5_store(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(V5_TRANSACTIONS)
    for txn_id, stan, amount in ((1, "000007", 100), (2, "000008", 200), (3, "000007", 300)):
        db.execute(
            "INSERT INTO transactions VALUES (?, ?, ?, '000001', ?, 'purchase', '0200', '000000', ?, 'ref', "
            "'622202*********0123', '00', 'approved', '', '', '0101', 0.0, NULL, ?)",
            (txn_id, MERCHANT, TERMINAL, stan, amount, amount),
        )
    db.execute("PRAGMA user_version=5")
    db.commit()
    db.close()


def purchase(stan: str) -> Transaction:
    return Transaction(
        MERCHANT, TERMINAL, "000001", stan, TxnKind.PURCHASE, "0200", "000000", 50, "ref",
        "622202*********0123", "00", TxnStatus.APPROVED, "", "", "0101", 0.0,
    )


def test_db_upgrade_moves_schema_5_to_the_current_keeping_a_repeated_stan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.db"
    v5_store(path)
    url = f"sqlite://{path}"
    assert main(["db", "upgrade", "--store", url]) == 0
    assert capsys.readouterr().out.strip() == f"{url}: schema v5 -> v{SCHEMA_VERSION}"
    assert main(["db", "upgrade", "--store", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: already at v{SCHEMA_VERSION}"
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT id, stan, stan_repeat FROM transactions ORDER BY id").fetchall()
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert rows == [(1, "000007", 0), (2, "000008", 0), (3, "000007", 1)]  # every row kept
    assert "txn_unique_stan" in indexes and "txn_stan" not in indexes  # 6
    assert "sessions_live" in indexes  # 7

    async def after(store: SqliteStore) -> None:
        first = await store.find_transaction(TerminalId(MERCHANT, TERMINAL), "000001", "000007")
        assert first is not None and (first.id, first.amount) == (1, 100)  # the first of the two
        with pytest.raises(DuplicateTransaction):
            await store.commit_financial(purchase("000007"))
        assert await store.commit_financial(purchase("000009")) == 4

    read_store(path, after)


def test_db_upgrade_refuses_a_newer_store_and_a_missing_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    newer = tmp_path / "newer.db"
    db = sqlite3.connect(newer)
    db.execute("PRAGMA user_version=99")
    db.close()
    assert main(["db", "upgrade", "--store", str(newer)]) == 2
    assert f"schema version 99 is newer than this switchsim ({SCHEMA_VERSION})" in capsys.readouterr().err
    missing = tmp_path / "nothing.db"
    assert main(["db", "upgrade", "--store", str(missing)]) == 2
    assert "no store here" in capsys.readouterr().err and not missing.exists()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["db", "upgrade", "--store", "mysql://root:pw@db/x"], "switchsim db upgrade: error: store: mysql://root:***@db/x:"),
        (["audit", "--store", "sqlite://relative.db"], "switchsim audit: error: store: sqlite://relative.db:"),
        (["trace", "--db", ""], "switchsim trace: error: store: '': empty"),
        (["serve", "--store", "postgresql://u:pw@db:x/s"], "the port must be a number"),
    ],
)
def test_a_bad_store_url_is_one_line_and_exit_2(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err and len(err.strip().splitlines()) == 1 and "pw@" not in err


def test_admin_commands_take_a_sqlite_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite://{tmp_path / 's.db'}"
    ids = ["--merchant", MERCHANT, "--terminal", TERMINAL]
    assert main(["terminal", "add", "--store", url, *ids, "--tmk", "0123456789ABCDEFFEDCBA9876543210"]) == 0
    assert "TMK check value 08D7B4" in capsys.readouterr().out  # the published KCV of this key
    terminals = read_store(tmp_path / "s.db", lambda store: store.list_terminals())
    assert [(t.id.merchant, t.id.terminal) for t in terminals] == [(MERCHANT, TERMINAL)]
