"""The switch's admin commands as a user runs them, against a temporary SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from switchsim.cli import main

IDS = ["--merchant", "848100058126002", "--terminal", "00000764"]


def test_terminal_add_prints_check_value_and_creates_operators(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "s.db")
    assert main(["terminal", "add", "--db", db, *IDS, "--tmk", "0123456789ABCDEFFEDCBA9876543210"]) == 0
    # Published KCV of this key (Thales BU, as the pythales README shows it): 08D7B4
    assert "TMK check value 08D7B4" in capsys.readouterr().out
    assert main(["operator", "list", "--db", db, *IDS]) == 0
    out = capsys.readouterr().out
    assert "supervisor" in out and "administrator" in out and "cashier" in out
    assert main(["operator", "disable", "--db", db, *IDS, "--id", "01"]) == 0
    assert main(["terminal", "disable", "--db", db, *IDS]) == 0
    capsys.readouterr()
    assert main(["audit", "--db", db, "--json"]) == 0
    events = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()]
    assert events[0] == "terminal_registered" and "operator_admin" in events


def status(argv: list[str]) -> int:
    """main's status, or argparse's when it refuses a value before main runs the command."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_bad_tmk_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert status(["terminal", "add", "--db", str(tmp_path / "s.db"), *IDS, "--tmk", "XYZ"]) == 2
    assert "--tmk" in capsys.readouterr().err


def test_store_never_holds_the_clear_tmk(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    main(["terminal", "add", "--db", str(db), *IDS, "--tmk", "0123456789ABCDEFFEDCBA9876543210"])
    raw = (
        db.read_bytes() + (tmp_path / "s.db-wal").read_bytes() if (tmp_path / "s.db-wal").exists() else db.read_bytes()
    )
    assert b"0123456789ABCDEF" not in raw.upper()


def test_card_add_and_list_mask_the_pan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "s.db")
    pan = "6222021234567890123"
    assert (
        main(["card", "add", "--db", db, "--pan", pan, "--expiry", "3012", "--pin", "123456", "--balance", "5000"]) == 0
    )
    assert main(["card", "list", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "622202*********0123" in out and pan not in out and "50.00" in out
    assert status(["card", "add", "--db", db, "--pan", "1", "--expiry", "3012", "--pin", "1234"]) == 2
    for path in tmp_path.iterdir():
        assert pan.encode() not in path.read_bytes()


def test_card_add_chip_keeps_the_imk_ac_under_the_lmk_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.db"
    imk = "F0C34A8124CEE0A91A0B034AA97D6EAC"  # emv.json pboc example B's IMK-AC
    argv = ["card", "add", "--db", str(db), "--pan", "6228000100001", "--expiry", "3012", "--pin", "123456"]
    assert main([*argv, "--chip", "--imk-ac", imk, "--psn", "01", "--service-code", "220"]) == 0
    assert "chip (PSN 01, IMK-AC kept under the LMK only)" in capsys.readouterr().out
    assert main(["card", "list", "--db", str(db)]) == 0
    assert "PSN 01" in capsys.readouterr().out
    for path in tmp_path.iterdir():
        assert imk.encode() not in path.read_bytes().upper()
        assert bytes.fromhex(imk) not in path.read_bytes()
    assert status([*argv, "--imk-ac", imk]) == 2  # --imk-ac goes with --chip
    assert status([*argv, "--chip", "--imk-ac", "1234"]) == 2
    assert status([*argv, "--chip", "--psn", "1"]) == 2
