"""`switchsim demo` (what `make demo` runs): HSM + switch + a small fleet on loopback.

Provisions 50 terminals into a temporary SQLite store (TMKs derived from the fleet's seed),
starts the switch with its in-process HSM as a child process on a free loopback port, runs
the `steady` scenario for about 20 seconds with the live progress display, prints the summary
and the report's path, then stops the switch with SIGTERM and waits for its clean exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from switch.provisioning import provision
from switchsim.cli import EXIT_FAILED, main
from terminals_sim.provision import provision_plan

DEMO_TERMINALS = 50


def register(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run HSM + switch + a 50-terminal fleet on loopback for ~20 s")
    demo.add_argument("--terminals", type=int, default=DEMO_TERMINALS)
    demo.add_argument("--duration", default="20s")
    demo.add_argument("--keep", action="store_true", help="keep the temporary directory")
    demo.set_defaults(func=run)


def _start_switch(db: Path, log: Path) -> tuple[subprocess.Popen[str], int]:
    switch = subprocess.Popen(
        [sys.executable, "-m", "switchsim.cli", "serve", "--db", str(db), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert switch.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = switch.stdout.readline()
        if line.startswith("switch listening on"):
            return switch, int(line.split()[3].rsplit(":", 1)[1])
        if not line and switch.poll() is not None:
            break
    switch.kill()
    raise RuntimeError(f"the switch did not start; see {log}")


def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="switchsim-demo-"))
    db, report = work / "switchsim.db", work / "report.json"
    print(f"switchsim demo: working in {work}")
    started = time.perf_counter()
    provision(str(db), [(p.merchant, p.terminal, p.tmk) for p in provision_plan(args.terminals)])
    print(
        f"provisioned {args.terminals} terminals (TMKs kept under the LMK only) "
        f"in {time.perf_counter() - started:.2f} s"
    )
    try:
        switch, port = _start_switch(db, work / "switch.log")
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"switch with in-process HSM listening on 127.0.0.1:{port}; "
        f"fleet of {args.terminals} terminals running 'steady'"
    )
    try:
        status = main(
            [
                "fleet",
                "--target",
                f"127.0.0.1:{port}",
                "--terminals",
                str(args.terminals),
                "--scenario",
                "steady",
                "--duration",
                args.duration,
                "--report",
                str(report),
            ]
        )
    finally:
        switch.send_signal(signal.SIGTERM)
        try:
            switch.wait(15)
        except subprocess.TimeoutExpired:
            switch.kill()
    print(f"switch stopped (exit {switch.returncode}); its JSON log: {work / 'switch.log'}")
    print(f"try: switchsim trace --db {db} --terminal {provision_plan(1)[0].terminal} --last 6")
    return status
