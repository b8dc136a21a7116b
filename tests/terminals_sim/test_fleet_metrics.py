"""The fleet's /metrics after a known run against the fake host over real sockets: exactly the
exchanges the host received, by step kind and the code it answered, the failures by kind, the
latencies and the connections; and ``switchsim fleet --metrics-port`` serving them while it runs."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter

from specs.metrics import FleetMetrics, serve_metrics
from terminals_sim.fleet import FleetConfig, run_fleet
from terminals_sim.scenario import parse_scenario
from tests.scrape import scrape, series, value
from tests.terminals_sim.fakehost import provisioned_host, serve_fake_host, threaded_host

# What each request the host saw is, by MTI and 60.3 (docs/financial.md, the README's table).
KIND_OF = {("0800", "003"): "signin", ("0800", "011"): "operator_signin", ("0820", "301"): "echo",
           ("0800", "360"): "param_download", ("0820", "362"): "status_upload", ("0820", "002"): "signoff"}
SCENARIO = parse_scenario(
    '[[setup]]\nstep = "signin"\n[[setup]]\nstep = "operator_signin"\n'
    '[[mix]]\nstep = "echo"\nweight = 3\n[[mix]]\nstep = "status_upload"\n'
    '[[mix]]\nstep = "param_download"\n[[teardown]]\nstep = "signoff"\n', "t")


async def test_scrape_shows_exactly_the_exchanges_the_host_answered() -> None:
    host = provisioned_host(4, force_code={"301": "05"})  # the first echo is answered 05, once
    server, port = await serve_fake_host(host)
    metrics = FleetMetrics()
    config = FleetConfig("127.0.0.1", port, 4, SCENARIO, exchanges=40, random_seed=3, timeout=5.0)
    with serve_metrics(metrics) as endpoint:
        result = await run_fleet(config, observer=metrics)
        server.close()
        samples = await asyncio.to_thread(scrape, endpoint.url)
    sent = Counter(KIND_OF[(m.mti, m.sub("60.3") or "")] for m in host.seen)
    expected = {frozenset({("kind", k), ("code", "00")}): float(n) for k, n in sent.items()}
    expected[frozenset({("kind", "echo"), ("code", "00")})] -= 1
    expected[frozenset({("kind", "echo"), ("code", "05")})] = 1.0
    assert series(samples, "switchsim_fleet_exchanges_total") == expected
    assert sum(sent.values()) == result.stats.exchanges
    assert series(samples, "switchsim_fleet_failures_total") == {
        frozenset({("kind", "echo"), ("failure", "unexpected_code")}): 1.0}
    for kind, n in sent.items():
        assert value(samples, "switchsim_fleet_exchange_seconds_count", kind=kind) == n
        assert value(samples, "switchsim_fleet_exchange_seconds_bucket", kind=kind, le="+Inf") == n
    assert value(samples, "switchsim_fleet_connections_accepted_total") == host.connections == 4
    assert value(samples, "switchsim_fleet_connections_open") == 0
    assert series(samples, "switchsim_fleet_connections_closed_total") == {frozenset({("reason", "end")}): 4.0}


def test_fleet_cli_serves_metrics_while_it_runs() -> None:
    with threaded_host(provisioned_host(2)) as port:
        proc = subprocess.Popen(
            [sys.executable, "-m", "switchsim.cli", "fleet", "--target", f"127.0.0.1:{port}", "--terminals", "2",
             "--scenario", "steady", "--duration", "4s", "--quiet", "--metrics-port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("metrics on http://127.0.0.1:"), line
            url = line.split()[-1]
            deadline = time.monotonic() + 30  # generous: a loaded machine starts the fleet slowly
            signed_in = 0.0
            while time.monotonic() < deadline and signed_in < 2 and proc.poll() is None:
                signed_in = value(scrape(url), "switchsim_fleet_exchanges_total", kind="signin", code="00")
                time.sleep(0.1)
            assert signed_in == 2
        finally:
            _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
