"""`switchsim serve --workers 2` as a user runs it: one port picked once and served by both
workers, what it refuses, a worker killed with SIGKILL (logged once, restarted, the port keeps
answering), a crash loop slowed down, and the staged stop on SIGTERM, Ctrl-C or the supervisor's
death. Real processes, real sockets on 127.0.0.1; which worker answered is the RRN's last digit."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.server import HsmServerConfig, serve_hsm
from switch.config import SwitchConfig
from switchsim.errors import UsageError
from switchsim.serve_workers import GRACE, check_workers
from tests.switchsim.cli import REPO, Serving, one_error_line, run
from tests.switchsim.workerwire import (
    ISO87,
    Lane,
    Till,
    alive,
    iso87_answer,
    network_management,
    worker_of,
    worker_pids,
    workers_answering,
)

TWO = ["--port", "0", "--workers", "2", "--dialect", "iso87-binary"]


def wait_until(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def deaths(entries: list[dict[str, Any]], worker: int) -> list[dict[str, Any]]:
    return [e for e in entries if e.get("event") == "worker_died" and e.get("worker") == worker]


def test_two_workers_share_one_port_picked_once_and_say_so_in_one_line(tmp_path: Path) -> None:
    with Serving(["--db", "s.db", *TWO], tmp_path) as serving:
        pids = worker_pids(serving, 2)
        assert workers_answering(serving.port, {"1", "2"}) == {"1", "2"}
        answer = iso87_answer(serving.port)
        assert (answer.mti, answer[39]) == ("0810", "00")
    assert serving.line == (
        f"switch listening on 127.0.0.1:{serving.port} dialect=iso87-binary store=s.db hsm=inproc config=- "
        "terminals=0 cards=0 rules=0 workers=2"
    )
    assert len(set(pids.values())) == 2 and serving.pid not in pids.values()
    assert serving.result is not None
    assert serving.result.stdout.count("switch listening on") == 1
    assert serving.result.stdout.endswith("switch stopped\n")
    assert not any(alive(pid) for pid in pids.values())


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--db", ":memory:"], "--workers 2 needs a store the workers share, a file; :memory: is one process's own"),
        (
            ["--db", "s.db", "--capture", "x.pcap"],
            "--capture writes the frames of one process; with --workers 2 each worker would write the same file "
            "(capture with --workers 1)",
        ),
        (["--db", "s.db", "--workers", "10"], "--workers must be 1 to 9 (the RRN's last digit names the worker), "
                                              "got 10"),
    ],
    ids=["memory-store", "capture", "ten-workers"],
)
def test_what_workers_cannot_share_is_refused_before_anything_starts(
    tmp_path: Path, argv: list[str], expected: str
) -> None:
    result = run(["serve", *TWO, *argv], tmp_path)
    assert result.returncode == 2
    assert one_error_line(result, "serve") == f"switchsim serve: error: {expected}"
    assert not (tmp_path / "s.db").exists()
    assert not (tmp_path / "x.pcap").exists()


@pytest.mark.parametrize("platform", ["darwin", "win32", "freebsd14"])
def test_workers_are_refused_where_linux_so_reuseport_is_not(monkeypatch: pytest.MonkeyPatch, platform: str) -> None:
    monkeypatch.setattr("sys.platform", platform)
    with pytest.raises(UsageError) as refused:
        check_workers(SwitchConfig(db="s.db"), 2)
    assert str(refused.value) == (
        f"--workers 2 needs Linux's SO_REUSEPORT to share one port between processes; on {platform} run one "
        "process (--workers 1)"
    )
    check_workers(SwitchConfig(db="s.db"), 1)  # one process needs nothing of the kind


def test_workers_are_refused_on_a_linux_without_so_reuseport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.delattr(socket, "SO_REUSEPORT")
    with pytest.raises(UsageError, match="needs Linux's SO_REUSEPORT"):
        check_workers(SwitchConfig(db="s.db"), 2)


def test_a_port_in_use_exits_1_as_one_process_does(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(["serve", "--db", "s.db", *TWO, "--port", str(port)], tmp_path)
    assert result.returncode == 1
    assert one_error_line(result, "serve") == (
        f"switchsim serve: error: cannot listen on 127.0.0.1 port {port}: Address already in use")


def test_a_killed_worker_is_logged_once_and_restarted_while_the_port_keeps_answering(tmp_path: Path) -> None:
    with Serving(["--db", "s.db", *TWO], tmp_path) as serving:
        pids = worker_pids(serving, 2)
        assert workers_answering(serving.port, {"1", "2"}) == {"1", "2"}
        os.kill(pids[2], signal.SIGKILL)
        serving.wait_log(lambda e: bool(deaths(e, 2)))
        # Worker 1 alone, or both again once 2 is back: every connection is answered.
        assert all(iso87_answer(serving.port, stan)[39] == "00" for stan in range(20))
        entries = serving.wait_log(
            lambda e: any(x.get("event") == "worker_started" and x["worker"] == 2 and x["pid"] != pids[2] for x in e))
        assert workers_answering(serving.port, {"1", "2"}) == {"1", "2"}
    [death] = deaths(entries, 2)
    assert {k: death[k] for k in ("pid", "signal", "restart_in_s")} == {
        "pid": pids[2], "signal": "SIGKILL", "restart_in_s": 0.0}
    assert death["level"] == "error" and not deaths(entries, 1)


def test_a_worker_that_cannot_start_again_is_restarted_ever_more_slowly(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    with Serving(["--db", str(folder / "s.db"), *TWO], tmp_path) as serving:
        pids = worker_pids(serving, 2)
        shutil.rmtree(folder)  # worker 1 keeps its open store; a new worker cannot open one
        os.kill(pids[2], signal.SIGKILL)
        entries = serving.wait_log(lambda e: sum(1 for d in deaths(e, 2) if d.get("crash_loop")) >= 2, timeout=90)
        assert {worker_of(iso87_answer(serving.port, stan)) for stan in range(10)} == {"1"}
    died = deaths(entries, 2)
    assert died[0]["signal"] == "SIGKILL"
    looping = [d for d in died if d.get("crash_loop")]
    assert all(d["exit_code"] == 2 for d in died[1:])  # a store that cannot be opened: bad configuration
    assert looping[1]["restart_in_s"] == 2 * looping[0]["restart_in_s"] > 0
    assert [d["quick_deaths"] for d in looping[:2]] == [looping[0]["quick_deaths"], looping[0]["quick_deaths"] + 1]
    assert died[1]["reason"] == f"{folder / 's.db'}: folder {folder} does not exist"  # what the worker said


def rules_fired(n: int) -> Callable[[list[dict[str, Any]]], bool]:
    """Whether the switch's log says a response rule decided ``n`` requests (each read whole)."""
    return lambda entries: sum(1 for x in entries if x.get("event") == "rule") == n


async def test_sigterm_lets_every_worker_answer_what_it_read_then_exits_0(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nname = "slow"\nmatch = { mti = "0800" }\naction = { delay_ms = 2000 }\n')
    with Serving(["--db", "s.db", *TWO, "--rules", str(rules)], tmp_path) as serving:
        worker_pids(serving, 2)
        lanes: dict[int, list[Lane]] = {1: [], 2: []}
        for stan in range(1, 81):  # a request on each new connection, until both workers hold one
            lane = await Lane.open(serving.port, ISO87.dialect.framing)
            await lane.send(network_management(stan))
            entries = await asyncio.to_thread(serving.wait_log, rules_fired(stan))
            lanes[[x for x in entries if x.get("event") == "rule"][-1]["worker"]].append(lane)
            if lanes[1] and lanes[2]:
                break
        assert lanes[1] and lanes[2]
        os.kill(serving.pid, signal.SIGTERM)  # every request has been read and waits for its answer
        for worker, held in lanes.items():
            for lane in held:
                answer = ISO87.decode((await lane.frame()).body)
                assert (answer.mti, answer[39], worker_of(answer)) == ("0810", "00", str(worker))
                assert await lane.closed()
    assert serving.result is not None and serving.result.returncode == 0
    assert serving.result.stdout.endswith("switch stopped\n")


def test_ctrl_c_stops_every_worker_and_exits_0_without_a_traceback(tmp_path: Path) -> None:
    with Serving(["--db", "s.db", *TWO], tmp_path, stop_signal=signal.SIGINT) as serving:
        pids = worker_pids(serving, 2)
    assert serving.result is not None and serving.result.returncode == 0
    assert "Traceback" not in serving.result.stderr
    assert not any(alive(pid) for pid in pids.values())
    assert not deaths(serving.logs(), 1) and not deaths(serving.logs(), 2)  # a stop is not a death


def test_workers_stop_by_themselves_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    with Serving(["--db", "s.db", *TWO], tmp_path) as serving:
        pids = worker_pids(serving, 2)
        assert serving.kill() == -signal.SIGKILL
        wait_until(lambda: not any(alive(pid) for pid in pids.values()))
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", serving.port), timeout=5).close()


async def test_the_readme_workers_command_line_runs_as_written(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    # the PostgreSQL lines need a server of the reader's (tests/switch/test_shared_postgresql.py runs
    # two serve processes on one the tests start)
    lines = readme.splitlines()
    [line] = [x for x in lines if x.startswith("switchsim serve ") and "--workers" in x and "postgresql://" not in x]
    argv = shlex.split(line)[2:]
    for option in ("--port", "--metrics-port"):  # the README's ports may be taken here: any free one
        argv[argv.index(option) + 1] = "0"
    with Serving(argv, tmp_path) as serving:
        till = Till(serving.port)  # a cup-pos switch: found by the echo tests of an unknown terminal
        for worker in ("1", "2"):
            (await till.lane(worker)).close()
        assert serving.metrics_url.startswith("http://127.0.0.1:")
    assert serving.line.endswith(" workers=2")
    assert (tmp_path / "switchsim.db").exists()


class FirstDiagnosticsOnly:
    """An HSM that answers its first NC (the supervisor's check) and refuses every later one
    (error 68, command disabled): the workers, each asking on its own connection, cannot start."""

    def __init__(self) -> None:
        self._real = Dispatcher()
        self.asked = 0

    def handle(self, message: bytes) -> bytes:
        if message.startswith(b"NC"):
            self.asked += 1
            if self.asked > 1:
                return b"ND68"
        return self._real.handle(message)


async def test_a_worker_that_cannot_start_fails_the_serve_in_one_line_and_stops_the_others(tmp_path: Path) -> None:
    hsm = FirstDiagnosticsOnly()
    async with await serve_hsm(HsmServerConfig(port=0), handler=hsm) as running:
        result = await asyncio.to_thread(run, ["serve", "--db", "s.db", *TWO, "--hsm", running.tcp_url], tmp_path)
    assert result.returncode == 1
    line = one_error_line(result, "serve")
    assert re.fullmatch(rf"switchsim serve: error: worker [12] did not start: HSM {running.tcp_url} is not "
                        r"usable: .*68.*", line), line
    assert hsm.asked >= 2  # the supervisor's NC, then a worker's
    assert result.stdout == ""  # no start-up line: the switch never listened


def test_a_worker_that_does_not_stop_within_the_grace_period_is_killed(tmp_path: Path) -> None:
    with Serving(["--db", "s.db", *TWO], tmp_path) as serving:
        pids = worker_pids(serving, 2)
        os.kill(pids[2], signal.SIGSTOP)  # hangs: it cannot hear the SIGTERM
        started = time.monotonic()
    took = time.monotonic() - started
    assert serving.result is not None and serving.result.returncode == 0
    killed = [e for e in serving.logs() if e.get("event") == "worker_killed"]
    assert [(e["worker"], e["pid"], e["after_s"]) for e in killed] == [(2, pids[2], GRACE)]
    assert took >= GRACE
    assert not any(alive(pid) for pid in pids.values())
