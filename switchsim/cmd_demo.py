"""`switchsim demo` (what `make demo` runs): HSM + switch + a small fleet on loopback.

Provisions 50 terminals into a temporary SQLite store (TMKs derived from the fleet's seed),
starts the switch with its in-process HSM as a child process on a free loopback port, runs
the `steady` scenario for about 20 seconds with the live progress display, prints the summary,
then stops the switch with SIGTERM and waits for its clean exit. The temporary folder (store,
report, switch log) is removed at the end unless `--keep` is given.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from switchsim import argtypes
from switchsim.errors import RunFailed
from switchsim.provisioning import provision
from terminals_sim.provision import provision_plan

DEMO_TERMINALS = 50


def register(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run HSM + switch + a 50-terminal fleet on loopback for ~20 s")
    demo.add_argument("--terminals", type=argtypes.positive_int, default=DEMO_TERMINALS, help="default 50")
    demo.add_argument("--duration", type=argtypes.duration, default="20s", help="run length (default 20s)")
    demo.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (store, report, switch log); removed otherwise"
    )
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
    switch.wait()
    reason = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
    raise RunFailed(f"the switch did not start: {reason[0]}")


def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="switchsim-demo-"))
    try:
        return _demo(args, work)
    finally:
        if args.keep:
            print(f"kept {work}: switchsim.db (the store), report.json and report.html, switch.log")
        else:
            shutil.rmtree(work, ignore_errors=True)
            print(f"removed {work} (--keep keeps it)")


def _demo(args: argparse.Namespace, work: Path) -> int:
    from switchsim.cli import main  # the fleet runs as its own subcommand would

    db, report = work / "switchsim.db", work / "report.json"
    print(f"switchsim demo: working in {work}")
    started = time.perf_counter()
    provision(str(db), [(p.merchant, p.terminal, p.tmk) for p in provision_plan(args.terminals)])
    print(
        f"provisioned {args.terminals} terminals (TMKs kept under the LMK only) "
        f"in {time.perf_counter() - started:.2f} s"
    )
    switch, port = _start_switch(db, work / "switch.log")
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
                f"{args.duration}s",
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
    print(f"switch stopped (exit {switch.returncode})")
    if args.keep:
        print(f"try: switchsim trace --db {db} --terminal {provision_plan(1)[0].terminal} --last 6")
    return status
