"""``switchsim top`` headless (Textual's App.run_test pilot) against real /metrics endpoints over
HTTP: it finds which component it watches from the families there and shows its numbers; and
the quantiles it draws from histogram buckets, worked by hand."""

from __future__ import annotations

import asyncio
import math

import pytest

from specs.livemetrics import parse, quantile, summarise
from specs.metrics import FleetMetrics, HsmMetrics, SwitchMetrics, serve_metrics
from switchsim.top import TopApp, endpoints


def test_endpoints_from_what_the_user_types() -> None:
    assert endpoints("http://127.0.0.1:9100") == ("http://127.0.0.1:9100/metrics", "http://127.0.0.1:9100/refusals")
    assert endpoints("127.0.0.1:9100/metrics") == ("http://127.0.0.1:9100/metrics", "http://127.0.0.1:9100/refusals")
    with pytest.raises(ValueError, match="--metrics"):
        endpoints("ftp://x")


def test_quantile_interpolates_within_the_bucket() -> None:
    # 50 observations in (1, 2.5] ms and 50 in (2.5, 5] ms.
    buckets = {0.001: 0.0, 0.0025: 50.0, 0.005: 100.0, math.inf: 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.0025)  # 0.001 + 1.5 ms * 50/50
    assert quantile(0.99, buckets) == pytest.approx(0.00495)  # 0.0025 + 2.5 ms * 49/50
    assert quantile(0.5, {0.001: 0.0, math.inf: 0.0}) is None
    assert quantile(0.99, {0.001: 1.0, math.inf: 3.0}) == 0.001  # past the last bound: that bound


def test_rates_and_latency_are_over_the_interval() -> None:
    before = parse('switchsim_fleet_exchanges_total{kind="echo",code="00"} 100\n'
                   'switchsim_fleet_exchange_seconds_bucket{kind="echo",le="0.001"} 100\n'
                   'switchsim_fleet_exchange_seconds_bucket{kind="echo",le="0.01"} 100\n'
                   'switchsim_fleet_exchange_seconds_bucket{kind="echo",le="+Inf"} 100\n', at=10.0)
    after = parse('switchsim_fleet_exchanges_total{kind="echo",code="00"} 300\n'
                  'switchsim_fleet_exchange_seconds_bucket{kind="echo",le="0.001"} 100\n'
                  'switchsim_fleet_exchange_seconds_bucket{kind="echo",le="0.01"} 300\n'
                  'switchsim_fleet_exchange_seconds_bucket{kind="echo",le="+Inf"} 300\n', at=12.0)
    (view,) = summarise(before, after)
    assert view.role == "fleet" and view.total == 300
    assert view.per_second == 100.0  # 200 exchanges in 2 s
    # The 200 of the interval all fell in (1, 10] ms: the median is halfway.
    assert view.p50_ms == pytest.approx(5.5)
    assert view.codes == (("00", 300),)


async def _shown(app: TopApp, pilot: object, refreshes: int) -> None:
    async with asyncio.timeout(20):
        while app.refreshes < refreshes:
            await pilot.pause(0.05)  # type: ignore[attr-defined]


async def test_top_watching_a_switch() -> None:
    m = SwitchMetrics()
    for _ in range(5):
        m.exchange_done("signin", "00", 0.004)
        m.hsm_command("A0", "00", 0.0001)
    m.terminals_signed_in(5)
    m.exchange_done("operator_signin", "55", 0.003, reason="wrong password")
    m.exchange_done("operator_signin", "55", 0.003, reason="wrong password")
    m.hsm_command("BC", "transport", 2.0)
    m.connection_opened()
    with serve_metrics(m) as server:
        app = TopApp(server.url, interval=0.2)
        async with app.run_test() as pilot:
            await _shown(app, pilot, 2)
            (view,) = app.views
            roles = str(app.query_one("#roles").content)  # type: ignore[attr-defined]
            refusals = app.query_one("#refusals")
            rows = [refusals.get_row_at(i) for i in range(refusals.row_count)]  # type: ignore[attr-defined]
    assert view.role == "switch"
    assert view.codes == (("00", 5), ("55", 2))
    assert view.signed_in == 5 and view.connections_open == 1
    assert view.hsm is not None and view.hsm.failures == (("transport", 1),)
    assert "5 signed in" in roles and "00: 5  55: 2" in roles and "transport: 1" in roles
    assert [(r[1], r[2], r[3]) for r in rows] == [("operator_signin", "55", "wrong password")] * 2


async def test_top_watching_an_hsm_and_a_fleet() -> None:
    hsm = HsmMetrics()
    for _ in range(3):
        hsm.hsm_command("NC", "00", 0.00002)
    hsm.hsm_command("other", "67", 0.00001)
    fleet = FleetMetrics()
    fleet.exchange_done("echo", "00", 0.002)
    fleet.exchange_done("purchase", "", 5.0, "timeout", "no answer within 5 s")
    with serve_metrics(hsm) as hsm_server, serve_metrics(fleet) as fleet_server:
        hsm_app = TopApp(hsm_server.url, interval=0.2)
        async with hsm_app.run_test() as pilot:
            await _shown(hsm_app, pilot, 1)
            (hsm_view,) = hsm_app.views
        fleet_app = TopApp(fleet_server.url, interval=0.2)
        async with fleet_app.run_test() as pilot:
            await _shown(fleet_app, pilot, 1)
            (fleet_view,) = fleet_app.views
            table = fleet_app.query_one("#refusals")
            rows = [table.get_row_at(i) for i in range(table.row_count)]  # type: ignore[attr-defined]
    assert hsm_view.role == "hsm" and hsm_view.codes == (("00", 3), ("67", 1)) and hsm_view.signed_in is None
    assert hsm_view.hsm is not None and hsm_view.hsm.failures == (("67", 1),)
    assert fleet_view.role == "fleet" and fleet_view.codes == (("00", 1), ("none", 1))
    assert fleet_view.failures == (("timeout", 1),)
    assert [(r[1], r[3]) for r in rows] == [("purchase", "timeout: no answer within 5 s")]


async def test_top_says_when_the_endpoint_cannot_be_read() -> None:
    app = TopApp("http://127.0.0.1:9/metrics", interval=0.2)  # port 9 (discard): nothing listens
    async with app.run_test() as pilot:
        async with asyncio.timeout(20):
            while app.error is None:
                await pilot.pause(0.05)
    assert app.error.startswith("cannot read http://127.0.0.1:9/metrics")
