"""`terminal show` gives what an engineer compares with the PIN pad; `terminal list` the session state."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from switch.app import build_services, register_terminal
from switch.cards import add_card
from switch.config import SwitchConfig
from switch.sqlite_store import SqliteStore
from switchsim.cli import main
from tests.switch import independent
from tests.switch.pos import MERCHANT, TERMINAL, TMK
from tests.switch.test_diagnostics import purchase, send_with_mac
from tests.switch.test_financial import EXPIRY, PAN, PIN, Till


async def _day(db: Path) -> tuple[bytes, bytes]:
    services = build_services(SwitchConfig(db=str(db)), SqliteStore(db), InProcTransport(Dispatcher()))
    await register_terminal(services, MERCHANT, TERMINAL, TMK)
    await register_terminal(services, "848100058126003", "00000765", TMK)
    await add_card(services, PAN, EXPIRY, PIN, balance=100_000)
    till = Till(services)
    await till.open()
    assert (await send_with_mac(till, purchase(till), b"12345678"))[39] == "A0"
    till.pos.take_keys(await till.ask(till.pos.signin(), mac=False))
    assert (await till.ask(till.pos.operator_signin("01", "0000")))[39] == "00"
    await services.store.close()
    return till.pos.pik, till.pos.mak


def test_terminal_show_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.db"
    pik, mak = asyncio.run(_day(db))
    assert main(["terminal", "show", "--db", str(db), "--merchant", MERCHANT, "--terminal", TERMINAL]) == 0
    out = capsys.readouterr().out
    lines = [line.strip() for line in out.splitlines()]
    assert lines[0] == f"terminal {MERCHANT}/{TERMINAL}: enabled, registration 0"
    assert "TMK check value   " + independent.ecb_encrypt(TMK, bytes(8))[:3].hex().upper() in lines
    assert "key generation    2" in lines
    assert f"PIK check value   {independent.cv4(pik).hex().upper()}" in lines
    assert f"MAK check value   {independent.cv4(mak).hex().upper()}" in lines
    assert "operator          01" in lines and "batch             000001" in lines
    assert "last refusals     1" in lines
    assert any("39=A0 bad MAC: received 12345678" in line for line in lines)
    assert pik.hex().upper() not in out and mak.hex().upper() not in out

    assert main(["terminal", "list", "--db", str(db)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "8481000581260" in line]
    assert "operator 01" in rows[0] and "signed off" in rows[1]
    assert main(["terminal", "list", "--db", str(db), "--merchant", "848100058126003"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "8481000581260" in line]
    assert len(rows) == 1 and "00000765" in rows[0]
