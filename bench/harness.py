"""What the switch benchmarks share: free ports, child processes, and the shared blast client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: A typical cup-pos purchase (swiped, PIN, MAC) as the codec and rules benchmarks time it.
CUP_PURCHASE_0200: dict[int, str] = {
    2: "6222021234567890123",
    3: "000000",
    4: "000000010000",
    11: "000123",
    14: "2512",
    22: "051",
    25: "00",
    26: "12",
    35: "6222021234567890123D2512101",
    41: "00000764",
    42: "848100058126002",
    49: "156",
    52: "0123456789ABCDEF",
    53: "2600000000000000",
    60: "22000001000",
    64: "3132333435363738",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def start_switch(config: Path, port: int, *extra: str, workers: int = 1) -> subprocess.Popen[bytes]:
    """``switchsim serve --config CONFIG --port PORT EXTRA...`` as a child process; with
    ``workers`` > 1 (``--workers``) it returns once every worker listens (the start-up line),
    since the port answers as soon as the first one does."""
    argv = [sys.executable, "-m", "switchsim.cli", "serve", "--config", str(config), "--port", str(port), *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if workers == 1:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    proc = subprocess.Popen(
        [*argv, "--workers", str(workers)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(b"switch listening on "):
            return proc
    raise SystemExit(f"switchsim serve --workers {workers} did not start (status {proc.wait()})")


def start_echo(shared: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(shared / "bench" / "echo_limit.py"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def blast(shared: Path, port: int, frames: Path, conns: int, count: int, depth: int = 1) -> dict[str, float]:
    """Run ../shared/bench/blast.py once; its one JSON line as a dict."""
    out = subprocess.run(
        [
            sys.executable,
            str(shared / "bench" / "blast.py"),
            "127.0.0.1",
            str(port),
            str(frames),
            "--conns",
            str(conns),
            "--depth",
            str(depth),
            "--count",
            str(count),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def per_call_us(fn: Callable[[], object], n: int, rounds: int = 5) -> float:
    """Best-of-``rounds`` microseconds per call of ``fn`` over ``n`` calls, after a warm-up."""
    for _ in range(min(n // 10, 1000)):
        fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6
