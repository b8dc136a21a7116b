"""`switchsim trace`: every line names merchant and terminal, a refusal its reason beside 39, the
field checks' warnings, and a summary that counts them; filters by terminal and merchant."""

from __future__ import annotations

from pathlib import Path

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from switch.app import build_services, register_terminal
from switch.cards import add_card
from switch.config import SwitchConfig
from switch.sqlite_store import SqliteStore
from switchsim.cli import main
from tests.switch.pos import MERCHANT, TERMINAL, TMK
from tests.switch.test_diagnostics import purchase, send_with_mac
from tests.switch.test_financial import EXPIRY, PAN, PIN, Till


async def _day(db: Path) -> None:
    services = build_services(SwitchConfig(db=str(db)), SqliteStore(db), InProcTransport(Dispatcher()))
    await register_terminal(services, MERCHANT, TERMINAL, TMK)
    await add_card(services, PAN, EXPIRY, PIN, balance=100_000)
    till = Till(services)
    await till.open()
    assert (await till.ask(purchase(till, f49="840")))[39] == "00"
    assert (await send_with_mac(till, purchase(till), b"12345678"))[39] == "A0"
    await services.store.close()


@pytest.fixture
async def store_file(tmp_path: Path) -> Path:
    db = tmp_path / "s.db"
    await _day(db)
    return db


def test_trace_shows_reasons_warnings_and_a_summary(store_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "--db", str(store_file), "--terminal", TERMINAL]) == 0
    lines = capsys.readouterr().out.splitlines()
    answers = [line for line in lines if " -> " in line]
    assert all(f"{MERCHANT}/{TERMINAL}" in line for line in lines if " <- " in line or " -> " in line)
    refused = [line for line in answers if "39=A0" in line]
    assert len(refused) == 1 and "39=A0 (bad MAC: received 12345678, expected " in refused[0]
    assert "    warning: currency: 49 = 840 is not the switch's currency 156 ([checks] currency)" in lines
    assert lines[-1] == "summary: 4 answers, 1 refused (A0 x1), 1 warnings (currency x1)"


def test_trace_filters_by_merchant(store_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "--db", str(store_file), "--merchant", "999999999999999"]) == 0
    assert capsys.readouterr().out.splitlines() == ["summary: 0 answers, 0 refused, 0 warnings"]
    assert main(["trace", "--db", str(store_file), "--merchant", MERCHANT, "--last", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[1:4] == ["<-", "0200", f"{MERCHANT}/{TERMINAL}"]
    assert lines[-1].startswith("summary: 1 answers, 1 refused (A0 x1)")
