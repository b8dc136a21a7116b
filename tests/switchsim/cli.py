"""Running the real `switchsim` command in a child process, as a user's shell would.

`run` waits for a command to finish; `Serving` starts `switchsim serve`, waits for its start-up
line and stops it with SIGTERM. `one_error_line` is the CLI's promise for any failure: exactly
one line on stderr, `switchsim <command>: error: ...`, and never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
COMMAND = [sys.executable, "-m", "switchsim"]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run(argv: Sequence[str], cwd: Path, *, stdin: bytes | None = None, timeout: float = 60) -> Result:
    done = subprocess.run([*COMMAND, *argv], cwd=cwd, env=env(), input=stdin, capture_output=True, timeout=timeout)
    return Result(tuple(argv), done.returncode, done.stdout.decode(), done.stderr.decode())


def start(argv: Sequence[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*COMMAND, *argv], cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen[str], argv: Sequence[str], timeout: float = 60) -> Result:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return Result(tuple(argv), proc.returncode, out, err)


def one_error_line(result: Result, command: str) -> str:
    """The single stderr line of a failed command, checked to be `switchsim <command>: error: ...`."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"{result.argv}: expected one stderr line, got {lines}"
    assert lines[0].startswith(f"switchsim {command}: error: "), lines[0]
    return lines[0]


class Serving:
    """`switchsim serve ARGS` until the end of the `with` block; `.port`, `.line` (the start-up
    line), `.metrics_url` (with --metrics-port, said on the line before), `.logs()` (the JSON log
    lines so far) and, after the block, `.result` (status 0 after ``stop_signal`` is checked)."""

    def __init__(
        self,
        argv: Sequence[str],
        cwd: Path,
        *,
        startup_timeout: float = 60,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.argv = ["serve", *argv]
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self.stop_signal = stop_signal
        self.line = ""
        self.port = 0
        self.metrics_url = ""
        self._killed = False
        self.result: Result | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._errors: list[str] = []

    def __enter__(self) -> Serving:
        self._proc = proc = start(self.argv, self.cwd)
        assert proc.stdout is not None and proc.stderr is not None
        stdout, stderr = proc.stdout, proc.stderr

        def pump() -> None:
            for line in stdout:
                self._lines.put(line)
            self._lines.put(None)

        # stderr carries the switch's JSON log: drained all along, so a full pipe never stalls it
        self._drain = threading.Thread(target=lambda: self._errors.extend(stderr), daemon=True)
        self._drain.start()
        threading.Thread(target=pump, daemon=True).start()
        try:
            first = self._lines.get(timeout=self.startup_timeout)
            if first is not None and first.startswith("metrics on "):
                self.metrics_url = first.split()[-1]
                first = self._lines.get(timeout=self.startup_timeout)
        except queue.Empty:
            first = None
        if first is None or not first.startswith("switch listening on "):
            proc.kill()
            proc.wait()
            self._drain.join(10)
            raise AssertionError(f"serve did not start: {first!r}; stderr: {''.join(self._errors)[-2000:]}")
        self.line = first.rstrip("\n")
        self.port = int(self.line.split()[3].rsplit(":", 1)[1])
        return self

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines written to stderr so far (other lines left out)."""
        found = []
        for line in list(self._errors):
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    found.append(entry)
        return found

    def wait_log(self, check: Callable[[list[dict[str, Any]]], bool], timeout: float = 60) -> list[dict[str, Any]]:
        """The log lines once ``check`` holds for them (they are read by a thread as they come)."""
        deadline = time.monotonic() + timeout
        while not check(entries := self.logs()):
            assert self._proc is not None and self._proc.poll() is None, "serve ended"
            assert time.monotonic() < deadline, f"not in the log within {timeout} s: {entries[-20:]}"
            time.sleep(0.02)
        return entries

    def kill(self) -> int:
        """SIGKILL serve itself (no clean stop to check at the end); its return code."""
        assert self._proc is not None
        self._killed = True
        self._proc.kill()
        return self._proc.wait(30)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        proc = self._proc
        assert proc is not None
        proc.send_signal(self.stop_signal)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._drain.join(10)
        err = "".join(self._errors)
        rest: list[str] = []
        while (line := self._lines.get(timeout=10)) is not None:
            rest.append(line)
        self.result = Result(tuple(self.argv), proc.returncode, self.line + "\n" + "".join(rest), err)
        if kind is None and not self._killed:
            assert proc.returncode == 0, err[-2000:]
            assert "Traceback" not in err
