"""The fleet's own limits: the TPS it can drive, and how many connected terminals it holds.

1. Ceiling. The bare echo host (shared/bench/echo_limit.py) answers every frame by echoing it
   with the third byte after the length incremented; for cup-pos frames that byte is inside the
   TPDU, so the answer is the request itself, MTI unchanged. The fleet runs in bench mode
   (``accept_mirror``): every terminal still builds its 0820 echo test with the shared codec
   (the first in full, later ones from the codec's own output with field 11 filled in afresh,
   ``Codec.slot``), frames it and reads the answer through the frame decoder; an answer whose
   body is byte for byte the request it sent counts as answered without being decoded (there
   is nothing in it to judge), any other is decoded and judged. In the same run the
   pre-encoded blaster (shared/bench/blast.py) drives the same echo host with the same number
   of connections and one request in flight on each (as the fleet has), and once more
   pipelined (depth 8) for the host's own ceiling. The ratio fleet / blaster says how much of the load-generation budget
   the fleet spends on being a real terminal.
2. Load. The fleet (sign-in, then echo tests back to back) against the switch with the same
   number of terminals: the TPS, and the CPU each process burned over the run, so one sees which
   side is the bottleneck.
3. Hold. N terminals connect at a given rate, each signs in (against the switch, in-process HSM,
   a temporary SQLite store with the fleet's seed-derived TMKs registered) and then sends an
   echo test every few seconds; the bench reports the most connections open at once, the
   sign-ins approved, and the peak RSS of the fleet process and of the host process.

Every party runs in its own process, so the RSS and CPU of each are its own.

usage: python bench/fleet.py [--conns 50] [--count 20000] [--rounds 2] [--hold 10000]
                             [--connect-rate 1000] [--hold-seconds 10] [--hold-against switch|echo]
                             [--skip-ceiling] [--skip-load] [--skip-hold]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness import ROOT, free_port

SHARED_BENCH = ROOT.parent / "shared" / "bench"
PY = sys.executable


# -- helpers -------------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Peak resident set size of some processes, sampled every 0.2 s."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], rss_kb(pid))


def start_server(argv: list[str], ready: str, timeout: float = 120.0) -> subprocess.Popen[str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{argv[1]} exited before it was ready")
        if ready in line:
            return proc
    proc.kill()
    raise RuntimeError(f"{argv[1]} not ready after {timeout:g} s")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_json(argv: list[str], timeout: float = 600.0) -> dict[str, Any]:
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=timeout, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(argv[:3])} failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def echo_frames(path: Path, n: int = 1000) -> None:
    """Pre-encoded 0820 echo tests (shared codec and framer), for the blaster."""
    from specs.codec import codec_for
    from specs.framing import encode_frame
    from terminals_sim.terminal import DEFAULT_HEADER, DEFAULT_TPDU

    codec = codec_for("cup-pos")
    frames = []
    for i in range(1, n + 1):
        fields = {11: f"{i:06d}", 41: "00000001", 42: "848100000000000", 60: "00000001301"}
        body = codec.encode(codec.message("0820", fields))
        frames.append(encode_frame(codec.dialect.framing, body, tpdu=DEFAULT_TPDU, header=DEFAULT_HEADER))
    path.write_bytes(b"".join(frames))


# -- workers (run as subprocesses of this script) -------------------------------------------


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def worker_fleet(a: argparse.Namespace) -> None:
    """Run a fleet and print one JSON line of what it did."""
    _raise_fd_limit()
    from switchsim import logs
    from terminals_sim.fleet import FleetConfig, run_fleet
    from terminals_sim.scenario import parse_scenario

    logs.configure("error")
    if a.mode == "echo":
        text = '[[mix]]\nstep = "echo"\n'
    elif a.mode == "load":  # sign in, then echo tests back to back
        text = '[[setup]]\nstep = "signin"\n[[mix]]\nstep = "echo"\n'
    else:  # hold: sign in, then an echo test every few seconds
        text = f"think_ms = [{a.think_ms * 0.5}, {a.think_ms * 1.5}]\n"
        text += '[[setup]]\nstep = "signin"\n[[mix]]\nstep = "echo"\n'
    scenario = parse_scenario(text, f"bench-{a.mode}")
    config = FleetConfig(
        host="127.0.0.1",
        port=a.port,
        terminals=a.terminals,
        scenario=scenario,
        connect_rate=a.connect_rate,
        duration=a.duration,
        exchanges=a.count,
        accept_mirror=a.mirror,
        timeout=30.0,
        random_seed=1,
    )
    started = time.perf_counter()
    if a.uvloop:
        import uvloop

        result = uvloop.run(run_fleet(config))
    else:
        result = asyncio.run(run_fleet(config))
    elapsed = time.perf_counter() - started
    stats = result.stats
    from terminals_sim.outcome import Kind

    signin = stats.by_kind.get(Kind.SIGNIN)
    print(
        json.dumps(
            {
                "exchanges": stats.exchanges,
                "ok": stats.ok,
                "failures": {k.value: v for k, v in stats.failures.items() if v},
                "seconds": round(elapsed, 3),
                "tps": round(stats.exchanges / result.duration_s, 1),
                "max_connected": stats.max_connected,
                "signins_ok": signin.ok if signin else 0,
                "problems": dict(stats.problems.most_common(3)),
                "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "cpu_s": round(_cpu_self(), 3),
            }
        ),
        flush=True,
    )


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_switch(a: argparse.Namespace) -> None:
    """The switch with the fleet's terminals registered; prints its port, serves until killed."""
    _raise_fd_limit()
    from switch.app import serve_switch
    from switch.config import DeclaredTerminal, SwitchConfig
    from switchsim import logs
    from terminals_sim.provision import provision_plan

    logs.configure("error")

    async def main() -> None:
        declared = tuple(DeclaredTerminal(p.merchant, p.terminal, p.tmk) for p in provision_plan(a.terminals))
        config = SwitchConfig(
            port=a.port,
            db=a.db,
            hsm="inproc",
            terminals=declared,
            max_connections=a.terminals + 1000,
            idle_timeout=600.0,
        )
        started = time.perf_counter()
        running = await serve_switch(config)
        print(
            f"switch listening {running.port} registered {a.terminals} in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        await asyncio.Event().wait()

    asyncio.run(main())


# -- the measurements -----------------------------------------------------------------------


def ceiling(a: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    echo = start_server([PY, str(SHARED_BENCH / "echo_limit.py"), str(port)], "echo listening")
    rounds: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            frames = Path(tmp) / "echo.frames"
            echo_frames(frames)
            blast = [PY, str(SHARED_BENCH / "blast.py"), "127.0.0.1", str(port), str(frames)]
            for _ in range(a.rounds):
                b1 = run_json([*blast, "--conns", str(a.conns), "--depth", "1", "--count", str(a.count)])
                fleet = run_json(
                    [
                        PY,
                        __file__,
                        "--worker",
                        "fleet",
                        "--mode",
                        "echo",
                        "--mirror",
                        "--port",
                        str(port),
                        "--terminals",
                        str(a.conns),
                        "--count",
                        str(a.count),
                        *(["--uvloop"] if a.uvloop else []),
                    ]
                )
                b8 = run_json([*blast, "--conns", str(a.conns), "--depth", "8", "--count", str(a.count * 2)])
                rounds.append({"blast_depth1": b1, "fleet": fleet, "blast_depth8": b8})
                print(
                    f"  round: fleet {fleet['tps']} TPS, blast depth 1 {b1['tps']} TPS, blast depth 8 {b8['tps']} TPS",
                    flush=True,
                )
    finally:
        stop(echo)
    fleet_tps = statistics.median(r["fleet"]["tps"] for r in rounds)
    b1_tps = statistics.median(r["blast_depth1"]["tps"] for r in rounds)
    b8_tps = statistics.median(r["blast_depth8"]["tps"] for r in rounds)
    return {
        "conns": a.conns,
        "count": a.count,
        "fleet_tps": fleet_tps,
        "blast_depth1_tps": b1_tps,
        "blast_depth8_tps": b8_tps,
        "fleet_over_blast_depth1": round(fleet_tps / b1_tps, 3),
        "fleet_over_blast_depth8": round(fleet_tps / b8_tps, 3),
        "fleet_failures": [r["fleet"]["failures"] for r in rounds],
        "fleet_maxrss_kb": max(r["fleet"]["maxrss_kb"] for r in rounds),
        "rounds": rounds,
    }


def load(a: argparse.Namespace) -> dict[str, Any]:
    """The fleet against the switch at full speed: who runs out of CPU first."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            PY,
            __file__,
            "--worker",
            "switch",
            "--port",
            str(port),
            "--terminals",
            str(a.conns),
            "--db",
            str(Path(tmp) / "switch.db"),
        ]
        host = start_server(argv, "switch listening", timeout=600)
        try:
            before = cpu_seconds(host.pid)
            fleet = run_json(
                [
                    PY,
                    __file__,
                    "--worker",
                    "fleet",
                    "--mode",
                    "load",
                    "--port",
                    str(port),
                    "--terminals",
                    str(a.conns),
                    "--count",
                    str(a.count),
                ]
            )
            host_cpu = cpu_seconds(host.pid) - before
        finally:
            stop(host)
    return {
        "conns": a.conns,
        "tps": fleet["tps"],
        "seconds": fleet["seconds"],
        "failures": fleet["failures"],
        "fleet_cpu_s": fleet["cpu_s"],
        "switch_cpu_s": round(host_cpu, 3),
        "fleet_cpu_share_of_run": round(fleet["cpu_s"] / fleet["seconds"], 2),
        "switch_cpu_share_of_run": round(host_cpu / fleet["seconds"], 2),
    }


def hold(a: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        if a.hold_against == "switch":
            argv = [
                PY,
                __file__,
                "--worker",
                "switch",
                "--port",
                str(port),
                "--terminals",
                str(a.hold),
                "--db",
                str(Path(tmp) / "switch.db"),
            ]
            host = start_server(argv, "switch listening", timeout=600)
        else:
            host = start_server([PY, str(SHARED_BENCH / "echo_limit.py"), str(port)], "echo listening")
        ramp = a.hold / a.connect_rate
        duration = ramp + a.hold_seconds
        fleet_argv = [
            PY,
            __file__,
            "--worker",
            "fleet",
            "--mode",
            "hold",
            "--port",
            str(port),
            "--terminals",
            str(a.hold),
            "--connect-rate",
            str(a.connect_rate),
            "--duration",
            str(duration),
            "--think-ms",
            str(a.think_ms),
        ]
        if a.hold_against == "echo":
            fleet_argv.append("--mirror")
        try:
            fleet = subprocess.Popen(fleet_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
            with RssSampler({"fleet": fleet.pid, "host": host.pid}) as sampler:
                out, err = fleet.communicate(timeout=duration + 300)
            lines = [line for line in out.splitlines() if line.startswith("{")]
            if not lines:
                raise RuntimeError(f"fleet worker failed: {err[-2000:]}")
            result = json.loads(lines[-1])
        finally:
            stop(host)
    return {
        "against": a.hold_against,
        "terminals": a.hold,
        "connect_rate": a.connect_rate,
        "hold_seconds": a.hold_seconds,
        "max_connected": result["max_connected"],
        "signins_ok": result["signins_ok"],
        "exchanges": result["exchanges"],
        "failures": result["failures"],
        "problems": result["problems"],
        "fleet_peak_rss_mb": round(sampler.peak["fleet"] / 1024, 1),
        "host_peak_rss_mb": round(sampler.peak["host"] / 1024, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--conns", type=int, default=50, help="connections / terminals for the ceiling")
    p.add_argument("--count", type=int, default=20000, help="exchanges per ceiling run")
    p.add_argument("--rounds", type=int, default=2, help="ceiling rounds (the median is reported)")
    p.add_argument("--hold", type=int, default=10000, help="terminals to hold connected")
    p.add_argument("--connect-rate", type=float, default=1000.0, help="terminals started per second")
    p.add_argument("--hold-seconds", type=float, default=10.0, help="plateau after the ramp")
    p.add_argument("--think-ms", type=float, default=5000.0, help="mean pause between echo tests")
    p.add_argument("--hold-against", choices=("switch", "echo"), default="switch")
    p.add_argument("--uvloop", action="store_true", help="run the fleet on uvloop (pip install uvloop)")
    p.add_argument("--skip-ceiling", action="store_true")
    p.add_argument("--skip-hold", action="store_true")
    p.add_argument("--skip-load", action="store_true")
    # worker mode (internal)
    p.add_argument("--worker", choices=("fleet", "switch"), help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=("echo", "load", "hold"), default="echo", help=argparse.SUPPRESS)
    p.add_argument("--mirror", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--terminals", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--duration", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--db", default="", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker == "fleet":
        if a.duration is not None:
            a.count = None
        worker_fleet(a)
        return
    if a.worker == "switch":
        worker_switch(a)
        return
    print(f"fleet bench on {os.cpu_count()} cores (python {sys.version.split()[0]})", flush=True)
    report: dict[str, Any] = {}
    if not a.skip_ceiling:
        print(f"ceiling: {a.conns} connections, {a.count} echo tests, {a.rounds} rounds", flush=True)
        c = ceiling(a)
        report["ceiling"] = c
        print(
            f"ceiling: fleet {c['fleet_tps']} TPS vs blast (same conns, depth 1) {c['blast_depth1_tps']} "
            f"TPS: ratio {c['fleet_over_blast_depth1']}; blast depth 8 {c['blast_depth8_tps']} TPS: "
            f"ratio {c['fleet_over_blast_depth8']}; fleet max RSS {c['fleet_maxrss_kb'] / 1024:.1f} MB",
            flush=True,
        )
    if not a.skip_load:
        print(f"load: {a.conns} terminals against the switch, {a.count} exchanges", flush=True)
        lo = load(a)
        report["load"] = lo
        print(
            f"load: fleet drives the switch at {lo['tps']} TPS; CPU over the run: fleet "
            f"{lo['fleet_cpu_share_of_run']:.0%} of a core, switch {lo['switch_cpu_share_of_run']:.0%}",
            flush=True,
        )
    if not a.skip_hold:
        print(f"hold: {a.hold} terminals against the {a.hold_against}, {a.connect_rate:g}/s", flush=True)
        h = hold(a)
        report["hold"] = h
        print(
            f"hold: {h['max_connected']} connected at once, {h['signins_ok']} signed in, "
            f"failures {h['failures'] or 'none'}; peak RSS fleet {h['fleet_peak_rss_mb']} MB, "
            f"host {h['host_peak_rss_mb']} MB",
            flush=True,
        )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
