"""Running the real `switchsim` command in a child process, as a user's shell would.

`run` waits for a command to finish; `Serving` starts `switchsim serve`, waits for its start-up
line and stops it with SIGTERM. `one_error_line` is the CLI's promise for any failure: exactly
one line on stderr, `switchsim <command>: error: ...`, and never a traceback.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

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
    line) and, after the block, `.result` (status 0 after SIGTERM is checked)."""

    def __init__(self, argv: Sequence[str], cwd: Path, *, startup_timeout: float = 60) -> None:
        self.argv = ["serve", *argv]
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self.line = ""
        self.port = 0
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

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        proc = self._proc
        assert proc is not None
        proc.send_signal(signal.SIGTERM)
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
        if kind is None:
            assert proc.returncode == 0, err[-2000:]
            assert "Traceback" not in err
