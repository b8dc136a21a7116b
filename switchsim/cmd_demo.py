"""`switchsim demo` (what `make demo` runs): HSM + switch + the day of a terminal on loopback.

Provisions a terminal and the shared test cards into a temporary SQLite store, starts the switch
with its in-process HSM as a child process on a free loopback port, and runs the day a terminal
lives (switchsim/demoday.py: sign-in, supervisor, purchases with PIN and MAC, void, refund,
balance, a reversal after a lost answer, settlement), one line a step; then one refused exchange
explained, a purchase MACed with the previous sign-in's MAK, as `switchsim trace` shows it, and
the trace command to look at it. With `--terminals N` a fleet of N terminals then runs the
`steady` scenario for `--duration`. The switch is stopped with SIGTERM; the temporary folder
(store, switch log, report) is removed at the end unless `--keep` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from specs.testcards import DEFAULT_TEST_CARDS
from switch.records import JournalEntry
from switch.sqlite_store import SqliteStore
from switchsim import argtypes
from switchsim.demoday import run_day
from switchsim.errors import RunFailed
from switchsim.provisioning import provision
from terminals_sim.financial import CardProfile
from terminals_sim.provision import provision_plan

WIDTH = 80  # every line the demo prints fits, except a path, which is never broken


def register(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run HSM + switch + a terminal's day on loopback, one refusal explained")
    demo.add_argument(
        "--terminals", type=argtypes.positive_int, help="then run a fleet of this many terminals (default: none)"
    )
    demo.add_argument("--duration", type=argtypes.duration, default="10s", help="the fleet's run (default 10s)")
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
            reports = ", report.json and report.html" if args.terminals else ""
            print(f"kept {work}: switchsim.db (the store), switch.log{reports}")
        else:
            shutil.rmtree(work, ignore_errors=True)
            print(f"removed {work} (--keep keeps it)")


def _demo(args: argparse.Namespace, work: Path) -> int:
    from switchsim.cli import main  # the fleet runs as its own subcommand would

    db, report = work / "switchsim.db", work / "report.json"
    print(f"switchsim demo: working in {work}")
    plan = provision_plan(max(1, args.terminals or 1))
    provision(str(db), [(p.merchant, p.terminal, p.tmk) for p in plan])
    me = plan[0]
    switch, port = _start_switch(db, work / "switch.log")
    print(f"switch (in-process HSM) on 127.0.0.1:{port}, terminal {me.merchant}/{me.terminal}")
    status = 0
    try:
        card = CardProfile.of(DEFAULT_TEST_CARDS[0])
        print(f"the day of a terminal (card {card.masked_pan}):")
        steps = asyncio.run(run_day("127.0.0.1", port, me.merchant, me.terminal, me.tmk, card))
        for step in steps:
            print(step.line())
        if args.terminals:
            argv = ["fleet", "--target", f"127.0.0.1:{port}", "--terminals", str(args.terminals)]
            argv += ["--scenario", "steady", "--duration", f"{args.duration}s", "--report", str(report)]
            status = main(argv)
    finally:
        switch.send_signal(signal.SIGTERM)
        try:
            switch.wait(15)
        except subprocess.TimeoutExpired:
            switch.kill()
    print(f"switch stopped (exit {switch.returncode})")
    _explain_refusal(db, me.terminal)
    return status


def _explain_refusal(db: Path, terminal: str) -> None:
    """The refused purchase as `switchsim trace` keeps it, wrapped to the width; the command."""

    async def journal() -> Sequence[JournalEntry]:
        store = SqliteStore(db, create=False)  # read after the switch stopped: it wrote everything
        try:
            return await store.list_journal(terminal, 50)
        finally:
            await store.close()

    refused = [e for e in asyncio.run(journal()) if e.direction == "out" and e.response_code == "A0"]
    if not refused:
        raise RunFailed("the demo's refused purchase is not in the journal")
    entry = refused[-1]
    print("one refused exchange, explained (a purchase MACed with the old MAK):")
    print(f"  {entry.mti} stan={entry.stan} 39={entry.response_code}")
    for line in textwrap.wrap(entry.reason, WIDTH - 4, break_long_words=False, break_on_hyphens=False):
        print(f"    {line}")
    print("look at it in the trace (the store stays with --keep):")
    print(f"  switchsim trace --db {db} --terminal {terminal} --last 2")
