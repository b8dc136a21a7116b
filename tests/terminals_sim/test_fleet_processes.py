"""``switchsim fleet --processes N`` against the real switch (real processes, real sockets): the
shards cover the terminals once, one merged report and summary, and one /metrics port serving
the sum of every process (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from switch.records import AuditEvent
from switchsim.fleet_processes import plan_shards, split
from tests.scrape import scrape, value
from tests.storeread import read_store
from tests.terminals_sim.switchthread import threaded_switch

TERMINALS = 10


def test_split_and_shards_cover_every_terminal_once() -> None:
    assert split(10, 3) == [4, 3, 3]
    shards = plan_shards(3, 10, 5, exchanges=100, rate=1000.0, connect_rate=None)
    assert [(s.first_terminal, s.terminals) for s in shards] == [(5, 4), (9, 3), (12, 3)]
    assert [s.exchanges for s in shards] == [34, 33, 33]
    assert [s.rate for s in shards] == [400.0, 300.0, 300.0]
    with pytest.raises(ValueError, match="at least as many --terminals"):
        plan_shards(4, 3, 1, None, None, None)


def test_two_processes_one_merged_report_and_one_metrics_port(tmp_path: Path) -> None:
    report = tmp_path / "all.json"
    with threaded_switch(tmp_path, TERMINALS) as port:
        proc = subprocess.Popen(
            [sys.executable, "-m", "switchsim.cli", "fleet", "--target", f"127.0.0.1:{port}", "--terminals",
             str(TERMINALS), "--processes", "2", "--scenario", "steady", "--duration", "6s", "--report", str(report),
             "--metrics-port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("metrics on http://127.0.0.1:"), first
        url = first.split()[-1]
        # Both processes' sign-ins reach the one port while they run.
        # (The run lasts 6 s once the processes are up; a loaded machine starts them slowly.)
        deadline = time.monotonic() + 30
        signed_in = 0.0
        while time.monotonic() < deadline and signed_in < TERMINALS and proc.poll() is None:
            signed_in = value(scrape(url), "switchsim_fleet_exchanges_total", kind="signin", code="00")
            time.sleep(0.1)
        out, err = proc.communicate(timeout=60)
    assert signed_in == TERMINALS
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0:2] == ["process 1/2: terminals 1-5", "process 2/2: terminals 6-10"]
    assert lines[2].startswith("verdict: PASSED")
    assert sum(line.startswith("verdict:") for line in lines) == 1  # one summary
    doc = json.loads(report.read_text())
    assert doc["terminals"] == TERMINALS
    assert doc["by_kind"]["signin"]["exchanges"] == TERMINALS
    assert doc["by_kind"]["signoff"]["exchanges"] == TERMINALS
    assert doc["exchanges"] == sum(k["exchanges"] for k in doc["by_kind"].values())
    assert report.with_suffix(".html").exists()
    audit = read_store(tmp_path / "switch.db", lambda store: store.list_audit())
    signins = Counter(r.terminal for r in audit if r.event is AuditEvent.TERMINAL_SIGNIN)
    assert signins == Counter({f"{n:08d}": 1 for n in range(1, TERMINALS + 1)})


_CHILD = """
import sys
from specs.metrics import metrics_for
m = metrics_for("fleet")
for _ in range(int(sys.argv[1])):
    m.exchange_done("echo", "00", 0.002)
m.exchange_done("purchase", "51", 0.004, "unexpected_code", "39 = 51, expected 00")
m.connection_opened()
m.close()  # the last sync into the multiprocess directory
m.refusals.flush()
"""


def test_multiprocess_mode_serves_the_sum_of_processes(tmp_path: Path) -> None:
    from specs.metrics import MULTIPROC_ENV, serve_multiprocess

    env = {**__import__("os").environ, MULTIPROC_ENV: str(tmp_path)}
    from prometheus_client import multiprocess

    for n in (3, 4):
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(n)], env=env)
        assert child.wait(60) == 0
        # As fleet --processes does: a process gone takes its live gauges (connections) along.
        multiprocess.mark_process_dead(child.pid, str(tmp_path))  # type: ignore[no-untyped-call]
    with serve_multiprocess(tmp_path) as server:
        samples = scrape(server.url)
        import urllib.request

        with urllib.request.urlopen(server.url.replace("/metrics", "/refusals"), timeout=5) as r:
            refusals = json.loads(r.read())["refusals"]
    assert value(samples, "switchsim_fleet_exchanges_total", kind="echo", code="00") == 7
    assert value(samples, "switchsim_fleet_exchanges_total", kind="purchase", code="51") == 2
    assert value(samples, "switchsim_fleet_failures_total", kind="purchase", failure="unexpected_code") == 2
    assert value(samples, "switchsim_fleet_exchange_seconds_count", kind="echo") == 7
    assert value(samples, "switchsim_fleet_exchange_seconds_bucket", kind="echo", le="0.0025") == 7
    assert value(samples, "switchsim_fleet_exchange_seconds_bucket", kind="echo", le="0.001") == 0
    assert value(samples, "switchsim_fleet_exchange_seconds_sum", kind="echo") == pytest.approx(0.014)
    assert value(samples, "switchsim_fleet_connections_open") == 0  # both processes are gone
    assert value(samples, "switchsim_fleet_connections_accepted_total") == 2
    assert [r["reason"] for r in refusals] == ["unexpected_code: 39 = 51, expected 00"] * 2


def test_each_shard_is_given_the_tls_options() -> None:
    from switchsim.cli import build_parser
    from switchsim.fleet_processes import shard_argv

    tls = ["--tls-ca", "tls/ca.pem", "--tls-cert", "tls/client.pem", "--tls-key", "tls/client.key"]
    args = build_parser().parse_args(["fleet", "--target", "127.0.0.1:5800", "--processes", "2", *tls])
    [shard, _] = plan_shards(2, 10, 1, None, None, None)
    argv = shard_argv(args, shard, Path("shard.json"), 5.0, False)
    assert argv[:3] == [sys.executable, "-m", "switchsim.cli"]
    child = build_parser().parse_args(argv[3:])
    assert (child.tls, child.tls_ca, child.tls_cert, child.tls_key) == (True, "tls/ca.pem", "tls/client.pem",
                                                                         "tls/client.key")
    plain = shard_argv(build_parser().parse_args(["fleet", "--target", "h:1"]), shard, Path("s.json"), 5.0, False)
    assert not any(a.startswith("--tls") for a in plain)
