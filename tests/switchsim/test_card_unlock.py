"""A card locked by wrong PINs shows as locked in `card list` until `switchsim card unlock`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from switch.app import build_services, register_terminal
from switch.cards import add_card
from switch.config import SwitchConfig
from switch.context import Services
from switch.sqlite_store import SqliteStore
from switchsim.cli import main
from tests.switch.pos import MERCHANT, TERMINAL, TMK
from tests.switch.test_financial import EXPIRY, PAN, PIN, Till


def _services(db: Path) -> Services:
    return build_services(SwitchConfig(db=str(db)), SqliteStore(db), InProcTransport(Dispatcher()))


def _pin_column(out: str) -> str:
    (row,) = [line for line in out.splitlines() if "622202" in line]
    return row.split("│")[6].strip()


async def _lock(db: Path) -> list[str]:
    services = _services(db)
    await register_terminal(services, MERCHANT, TERMINAL, TMK)
    await add_card(services, PAN, EXPIRY, PIN, balance=100_000)
    till = Till(services)
    await till.open()
    codes = [(await till.purchase(100, **till.card(pin="000000")))[39] for _ in range(3)]
    await services.store.close()
    return codes


async def _buy(db: Path) -> str:
    services = _services(db)
    till = Till(services)
    till.pos.stan = 100  # a new Till: its STANs go on from the first day's
    await till.open()
    code = (await till.purchase(100))[39]
    await services.store.close()
    return code


def test_a_locked_card_is_listed_as_locked_until_unlocked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.db"
    assert asyncio.run(_lock(db)) == ["55", "55", "75"]

    assert main(["card", "list", "--db", str(db)]) == 0
    assert _pin_column(capsys.readouterr().out) == "locked"
    assert main(["card", "unlock", "--db", str(db), "--pan", PAN]) == 0
    out = capsys.readouterr().out
    assert out == "card 622202*********0123: PIN unlocked (3 wrong PINs cleared)\n" and PAN not in out
    assert main(["card", "list", "--db", str(db)]) == 0
    assert _pin_column(capsys.readouterr().out) == "ok"
    assert main(["audit", "--db", str(db), "--json"]) == 0
    assert '"event": "card_unlocked"' in capsys.readouterr().out
    assert asyncio.run(_buy(db)) == "00"


def test_unlocking_an_unknown_card_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "s.db")
    assert main(["card", "add", "--db", db, "--pan", PAN, "--expiry", "3012", "--pin", "1234"]) == 0
    assert main(["card", "unlock", "--db", db, "--pan", "6222029999999999999"]) == 2
    assert capsys.readouterr().err.endswith("error: no card 622202*********9999\n")
