"""`switchsim serve` keeps its journal in a process beside it (switchsim/journal_child.py) unless
told `--journal-process off`: the entries of an exchange are written either way, the process
ends with the switch, and a switch killed with -9 takes no written entry with it."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from switchsim.cmd_switch import journal_process_wanted
from tests.switchsim.cli import Serving
from tests.switchsim.test_serve import purchase_answer
from tests.switchsim.workerwire import alive, iso87_answer, worker_of, worker_pids


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def journal(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT direction, mti, stan FROM journal ORDER BY id").fetchall()


@pytest.mark.parametrize("option", ["on", "off"])  # on: whatever the cores of the machine running this
def test_the_journal_of_an_exchange_is_written_with_or_without_its_process(tmp_path: Path, option: str) -> None:
    db = tmp_path / "s.db"
    with Serving(["--db", str(db), "--port", "0", "--journal-process", option], tmp_path) as serving:
        helpers = children(serving.pid)
        assert purchase_answer(serving.port, "000000000100") != ""
    assert len(helpers) == (1 if option == "on" else 0)
    assert journal(db) == [("in", "0200", "000123"), ("out", "0210", "000123")]
    assert not any(alive(pid) for pid in helpers)  # it ended with the switch
    assert serving.result is not None and serving.result.returncode == 0


@pytest.mark.parametrize(
    ("choice", "workers", "cores", "memory", "wanted"),
    [
        ("auto", 1, 2, False, True),  # a core left over: the process takes the journal there
        ("auto", 2, 2, False, False),  # every core runs a worker's loop
        ("auto", 3, 2, False, False),
        ("auto", 1, 1, False, False),
        ("auto", 3, 4, False, True),
        ("on", 2, 2, False, True),  # asked for: whatever the cores
        ("off", 1, 8, False, False),
        ("on", 1, 8, True, False),  # nobody else can open a :memory: store
        ("auto", 1, 8, True, False),
    ],
)
def test_auto_runs_the_journal_process_where_a_core_is_left_for_it(
    choice: str, workers: int, cores: int, memory: bool, wanted: bool
) -> None:
    assert journal_process_wanted(choice, workers, cores, memory) is wanted


def test_a_memory_store_keeps_its_journal_in_the_switch(tmp_path: Path) -> None:
    with Serving(["--db", ":memory:", "--port", "0", "--journal-process", "on"], tmp_path) as serving:
        assert children(serving.pid) == []


def test_a_switch_killed_with_minus_9_leaves_no_journal_process_and_its_entries_written(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Serving(["--db", str(db), "--port", "0", "--journal-process", "on"], tmp_path) as serving:
        [helper] = children(serving.pid)
        purchase_answer(serving.port, "000000000100")
        time.sleep(0.5)  # the answer left; the drafts are handed over at the end of that turn
        assert serving.kill() == -signal.SIGKILL
        for _ in range(200):
            if not alive(helper):
                break
            time.sleep(0.05)
        assert not alive(helper)
    assert journal(db) == [("in", "0200", "000123"), ("out", "0210", "000123")]


def test_each_worker_has_its_own_journal_process_and_a_restarted_worker_a_new_one(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    argv = ["--db", str(db), "--port", "0", "--workers", "2", "--dialect", "iso87-binary", "--journal-process", "on"]
    with Serving(argv, tmp_path) as serving:
        pids = worker_pids(serving, 2)
        [first] = children(pids[2])
        assert len(children(pids[1])) == 1
        os.kill(pids[2], signal.SIGKILL)
        entries = serving.wait_log(
            lambda e: any(x.get("event") == "worker_started" and x["worker"] == 2 and x["pid"] != pids[2] for x in e)
        )
        restarted = [x["pid"] for x in entries if x.get("event") == "worker_started" and x["worker"] == 2][-1]
        for _ in range(200):  # the dead worker's journal process saw its pipe end
            if not alive(first):
                break
            time.sleep(0.05)
        assert not alive(first)
        for _ in range(200):  # the new worker starts its own once its store is open
            if children(restarted):
                break
            time.sleep(0.05)
        assert len(children(restarted)) == 1
        answered = [worker_of(iso87_answer(serving.port, stan)) for stan in range(1, 41)]
    # every 0800 answered reached the journal, whichever worker (and journal process) took it
    stans = {stan for direction, mti, stan in journal(db) if mti == "0810"}
    assert {f"{n:06d}" for n in range(1, 41)} <= stans and len(answered) == 40
