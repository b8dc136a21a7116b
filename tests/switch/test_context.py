"""Services.next_rrn: field 37 is YYDDD, a 6-digit sequence and the worker's digit, so that the
workers of `serve --workers` sharing one store never hand out the same RRN."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from switch.app import build_services, serve_switch
from switch.config import SwitchConfig
from switch.context import Services
from switch.sqlite_store import SqliteStore
from tests.store.contract import CARD, txn

# 2026-02-01 12:00 UTC: 1 February (day 032) in every time zone from UTC-11 to UTC+11.
NOON_1_FEB_2026 = 1_769_947_200.0


def services(worker: int) -> Services:
    built = build_services(SwitchConfig(db=":memory:"), SqliteStore(":memory:"), InProcTransport(Dispatcher()),
                           worker=worker)
    built.clock = lambda: NOON_1_FEB_2026
    return built


def test_a_single_process_ends_its_rrns_with_0() -> None:
    svc = services(0)
    assert [svc.next_rrn() for _ in range(3)] == ["260320000010", "260320000020", "260320000030"]


@pytest.mark.parametrize("worker", [1, 2, 9])
def test_a_worker_ends_its_rrns_with_its_number(worker: int) -> None:
    svc = services(worker)
    assert [svc.next_rrn() for _ in range(2)] == [f"26032000001{worker}", f"26032000002{worker}"]


def test_two_workers_counting_the_same_sequence_never_share_an_rrn() -> None:
    one, two = services(1), services(2)
    issued = [svc.next_rrn() for _ in range(500) for svc in (one, two)]
    assert len(set(issued)) == 1000


@pytest.mark.parametrize("worker", [-1, 10])
def test_a_worker_number_that_is_not_one_digit_is_refused(worker: int) -> None:
    with pytest.raises(ValueError, match=f"worker must be 0 to 9 \\(one digit of the RRN\\), got {worker}"):
        services(worker)


async def test_a_switch_goes_on_from_the_newest_rrn_its_ledger_holds_for_today(tmp_path: Path) -> None:
    # A switch restarted during the day (or a worker restarted by its supervisor) must not hand
    # out again the RRNs its earlier run gave transactions that can still be voided by them.
    store = SqliteStore(tmp_path / "s.db")
    await store.put_card(CARD)
    await store.commit_financial(replace(txn("000001"), rrn="260320000412"))  # worker 2's
    await store.commit_financial(replace(txn("000002"), rrn="260320000071"))  # worker 1's
    await store.commit_financial(replace(txn("000003"), rrn="260310009991"))  # worker 1's, day before
    for worker, expected in [(1, ["260320000081", "260320000091"]), (2, ["260320000422"]), (3, ["260320000013"])]:
        svc = build_services(SwitchConfig(db=str(tmp_path / "s.db")), store, InProcTransport(Dispatcher()),
                             worker=worker)
        svc.clock = lambda: NOON_1_FEB_2026
        await svc.resume_rrns()
        assert [svc.next_rrn() for _ in expected] == expected
    await store.close()


async def test_serve_resumes_the_rrns_of_the_ledger_it_opens(tmp_path: Path) -> None:
    today = time.strftime("%y%j")
    store = SqliteStore(tmp_path / "s.db")
    await store.put_card(CARD)
    await store.commit_financial(replace(txn("000001"), rrn=f"{today}0012340"))
    running = await serve_switch(SwitchConfig(db=str(tmp_path / "s.db"), port=0), store, InProcTransport(Dispatcher()))
    try:
        assert running.services.next_rrn() == f"{today}0012350"
    finally:
        await running.close()
