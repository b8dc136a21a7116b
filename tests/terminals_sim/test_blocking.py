"""terminals_sim/blocking.py: the fleet's own driver run without an event loop, over a blocking
socket, against the fake host on its own thread (real sockets)."""

from __future__ import annotations

import pytest

from specs.framing import Frame
from terminals_sim.blocking import Blocking, BlockingConnection, drive
from terminals_sim.connection import ExchangeFailed
from terminals_sim.fleet import Fleet, FleetConfig, TerminalDriver
from terminals_sim.outcome import Failure, Kind
from terminals_sim.provision import provision_plan
from terminals_sim.scenario import Step, parse_scenario
from tests.terminals_sim.fakehost import provisioned_host, threaded_host


async def _twice(x: int) -> int:
    first: Blocking[int] = Blocking(lambda: x * 2)
    got = await first
    try:
        await Blocking(lambda: 1 / 0)
    except ZeroDivisionError:
        got += 1
    return got


def test_drive_performs_each_step_and_raises_its_errors_where_it_awaited() -> None:
    assert drive(_twice(5)) == 11


async def _not_blocking() -> None:
    import asyncio

    await asyncio.sleep(0)


def test_drive_refuses_an_awaitable_it_cannot_perform() -> None:
    with pytest.raises(TypeError, match="Blocking"):
        drive(_not_blocking())


class _Driver(TerminalDriver):
    link: BlockingConnection | None = None

    async def transmit(self, frame: bytes) -> Frame:
        cfg = self.fleet.config
        if self.link is None:
            self.link = BlockingConnection(cfg.host, cfg.port, self.fleet.fmt, cfg.timeout)
        link = self.link
        step: Blocking[Frame] = Blocking(lambda: link.exchange(frame, cfg.timeout))
        return await step


def test_the_fleet_driver_signs_in_and_echoes_over_a_blocking_socket() -> None:
    with threaded_host(provisioned_host(1)) as port:
        scenario = parse_scenario('[[mix]]\nstep = "echo"\n', "t")
        fleet = Fleet(FleetConfig("127.0.0.1", port, 1, scenario, exchanges=10))
        driver = _Driver(fleet, fleet.profile(provision_plan(1)[0]))
        drive(driver.step(Step(Kind.OPERATOR_SIGNIN, expect=frozenset({"00"}))))  # signs in first
        drive(driver.step(Step(Kind.ECHO, expect=frozenset({"00"}))))
        assert driver.link is not None
        driver.link.close()
    by_kind = fleet.stats.by_kind
    assert {k: c.ok for k, c in by_kind.items()} == {Kind.SIGNIN: 1, Kind.OPERATOR_SIGNIN: 1, Kind.ECHO: 1}


def test_blocking_connection_maps_failures() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(ExchangeFailed) as refused:
            BlockingConnection("127.0.0.1", port, provisioned_host(1).fmt, 2.0)
    assert refused.value.failure is Failure.REFUSED
    with threaded_host(provisioned_host(1, silent=True)) as silent:
        conn = BlockingConnection("127.0.0.1", silent, provisioned_host(1).fmt, 2.0)
        with pytest.raises(ExchangeFailed) as timed_out:
            conn.exchange(b"\x00\x02ab", 0.2)
        assert timed_out.value.failure is Failure.TIMEOUT
        assert not conn.usable
