"""Services.next_rrn: field 37 is YYDDD, a 6-digit sequence and the worker's digit, so that the
workers of `serve --workers` sharing one store never hand out the same RRN."""

from __future__ import annotations

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from switch.app import build_services
from switch.config import SwitchConfig
from switch.context import Services
from switch.sqlite_store import SqliteStore

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
