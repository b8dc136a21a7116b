"""What observing costs: the switch's purchase TPS with and without ``--metrics-port`` (scraped
once a second meanwhile, as Prometheus would), and the microseconds each observer call costs.

usage: python bench/metrics.py [--shared ../shared] [--count 3000] [--rounds 3]

Two switches run as processes of their own (in-process HSM, SQLite store), one with metrics and
one without, each with a signed-in terminal; the same kind of pre-encoded purchases with PIN
(bench/switch_tps.py) go to each in turn through ../shared/bench/blast.py, 10 connections, one
in flight each, alternating rounds. The baseline is the switch without metrics, in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

from harness import ROOT, blast, free_port, per_call_us, stop, wait_port
from prometheus_client import CollectorRegistry, Counter, Histogram
from switch_tps import MERCHANT, PAN, PIN, TERMINAL, TMK, purchases, sign_in

from specs.metrics import LATENCY_BUCKETS, FleetMetrics, HsmMetrics, SwitchMetrics
from specs.observer import NullObserver


def start(config: Path, port: int, metrics_port: int | None) -> subprocess.Popen[bytes]:
    extra = ["--metrics-port", str(metrics_port)] if metrics_port is not None else []
    return subprocess.Popen(
        [sys.executable, "-m", "switchsim.cli", "serve", "--config", str(config), "--port", str(port), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=ROOT,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): a measure that a loaded machine
    disturbs far less than throughput."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scraper(url: str, stop_event: threading.Event) -> None:
    while not stop_event.wait(1.0):
        with urllib.request.urlopen(url, timeout=5) as r:
            r.read()


def micro() -> None:
    null, switch, hsm, fleet = NullObserver(), SwitchMetrics(), HsmMetrics(), FleetMetrics()
    # What specs/tally.py replaces: prometheus-client's own labelled counter and histogram.
    registry = CollectorRegistry()
    counter = Counter("c", "c", ["kind", "code"], registry=registry).labels("purchase", "00")
    histogram = Histogram("h", "h", ["kind"], buckets=LATENCY_BUCKETS, registry=registry).labels("purchase")

    def both() -> None:
        counter.inc()
        histogram.observe(0.0004)

    n = 100_000
    rows = [
        ("null observer exchange_done", per_call_us(lambda: null.exchange_done("purchase", "00", 0.0004), n)),
        ("switch exchange_done (00)", per_call_us(lambda: switch.exchange_done("purchase", "00", 0.0004), n)),
        ("switch hsm_command", per_call_us(lambda: switch.hsm_command("M8", "00", 0.00002), n)),
        ("switch store_commit", per_call_us(lambda: switch.store_commit(0.0002), n)),
        ("hsm hsm_command", per_call_us(lambda: hsm.hsm_command("CA", "00", 0.00002), n)),
        ("fleet exchange_done (00)", per_call_us(lambda: fleet.exchange_done("echo", "00", 0.002), n)),
        ("prometheus-client inc + observe", per_call_us(both, n)),
    ]
    print("observer call                      us/call")
    for name, us in rows:
        print(f"{name:<34} {us:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    shared = Path(args.shared)
    micro()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        ports = {}
        procs = []
        for name, metrics in (("plain", None), ("metrics", free_port())):
            config = tmp / f"{name}.toml"
            config.write_text(
                f'[server]\nhost = "127.0.0.1"\ndb = "{tmp / (name + ".db")}"\n\n'
                f'[[terminals]]\nmerchant = "{MERCHANT}"\nterminal = "{TERMINAL}"\ntmk = "{TMK.hex()}"\n\n'
                f'[[cards]]\npan = "{PAN}"\nexpiry = "3012"\npin = "{PIN}"\nbalance = 900000000000\n'
            )
            port = free_port()
            procs.append(start(config, port, metrics))
            ports[name] = (port, metrics)
        done = threading.Event()
        try:
            keys = {}
            for name, (port, _m) in ports.items():
                wait_port(port)
                keys[name] = sign_in(port)
            metrics_port = ports["metrics"][1]
            assert metrics_port is not None
            wait_port(metrics_port)
            threading.Thread(target=scraper, args=(f"http://127.0.0.1:{metrics_port}/metrics", done),
                             daemon=True).start()
            stan = {name: 2 for name in ports}
            tps: dict[str, list[float]] = {name: [] for name in ports}
            cpu_us: dict[str, list[float]] = {name: [] for name in ports}
            pids = {name: proc.pid for name, proc in zip(ports, procs, strict=True)}
            for rnd in range(args.rounds + 1):  # round 0 warms up
                for name, (port, _m) in ports.items():
                    pik, mak = keys[name]
                    frames = purchases(tmp / f"{name}{rnd}.frames", pik, mak, stan[name], args.count)
                    stan[name] += args.count
                    before = cpu_seconds(pids[name])
                    result = blast(shared, port, frames, 10, args.count, 1)
                    assert result["received"] == args.count, result
                    if rnd:
                        tps[name].append(result["tps"])
                        cpu_us[name].append((cpu_seconds(pids[name]) - before) / args.count * 1e6)
            plain, observed = statistics.median(tps["plain"]), statistics.median(tps["metrics"])
            print("purchase with PIN, 10 connections x 1, median of", args.rounds, "rounds")
            print(f"switch without metrics {plain:>8.0f} TPS   rounds {[round(t) for t in tps['plain']]}")
            print(f"switch with metrics    {observed:>8.0f} TPS   rounds {[round(t) for t in tps['metrics']]}")
            print(f"ratio (with / without) {observed / plain:>8.3f}")
            cpu_plain, cpu_observed = statistics.median(cpu_us["plain"]), statistics.median(cpu_us["metrics"])
            print(f"switch CPU per purchase without metrics {cpu_plain:>7.0f} us   rounds "
                  f"{[round(c) for c in cpu_us['plain']]}")
            print(f"switch CPU per purchase with metrics    {cpu_observed:>7.0f} us   rounds "
                  f"{[round(c) for c in cpu_us['metrics']]}")
            print(f"CPU ratio (with / without)              {cpu_observed / cpu_plain:>7.3f}")
        finally:
            done.set()
            stop(*procs)


if __name__ == "__main__":
    main()
