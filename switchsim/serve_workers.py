"""``switchsim serve --workers N``: N switch processes on one port, and the supervisor keeping them.

The supervisor (the process the user started) checks what it was given, registers the config's
declarations once, binds the port without listening on it (SO_REUSEPORT: it picks the port for
``--port 0`` and keeps it reserved for restarts), then starts each worker as ``switchsim serve``
with the same command line, the real port and ``--as-worker K``. A worker is a whole switch:
its own event loop, HSM connection (or in-process HSM) and store connection, listening on the
same port with SO_REUSEPORT, so that Linux spreads the connections over the workers. They share
the store; nothing else (switch/app.py: ``serve_switch(worker=K)``).

* Start: the start-up line is printed once every worker listens: the first worker's own line
  (real port, store, HSM, counts, rules) and ``workers=N``.
* A worker that dies is logged once (``worker_died``: number, pid, exit code or signal) and
  restarted; a crash loop waits longer between restarts (switchsim/restarts.py).
* SIGTERM or SIGINT (Ctrl-C): every worker is told to stop (SIGTERM: it stops accepting, answers
  what it has read, flushes its store, exits); after ``GRACE`` seconds what is left is killed; the
  supervisor exits 0. The workers run in a session of their own, so a Ctrl-C at the terminal
  reaches only the supervisor, which stops them in that order. A worker whose supervisor is gone
  (its stdin, a pipe from the supervisor, ends) stops by itself.
* Metrics: with ``--metrics-port`` the workers count into a temporary multiprocess directory and
  the supervisor serves their sum (switchsim/metrics_options.py, ``SharedMetrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from specs.logs import get_logger
from switch.config import SwitchConfig
from switch.context import MAX_WORKERS
from switchsim.errors import CliError, RunFailed, UsageError
from switchsim.restarts import RestartPolicy, exit_fields

_log = get_logger("switch.workers")

GRACE = 10.0  # seconds the workers have to stop (each drains its connections for up to 5 s)
STARTUP_TIMEOUT = 60.0  # seconds for every worker to say it listens
READY = "switch listening on "  # how a switch's start-up line begins (cmd_switch._startup_line)
WORKER_OPTION = "--as-worker"  # the hidden serve option that makes a process worker K


def check_workers(config: SwitchConfig, workers: int) -> None:
    """A UsageError when ``workers`` processes cannot serve as configured (exit 2)."""
    if not 1 <= workers <= MAX_WORKERS:
        raise UsageError(f"--workers must be 1 to {MAX_WORKERS} (the RRN's last digit names the worker), "
                         f"got {workers}")
    if workers == 1:
        return
    if not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"):
        # Elsewhere SO_REUSEPORT is missing, or lets several sockets bind without spreading the
        # connections over them (one worker would get them all): refused rather than pretended.
        raise UsageError(f"--workers {workers} needs Linux's SO_REUSEPORT to share one port between processes; "
                         f"on {sys.platform} run one process (--workers 1)")
    if in_memory(config.db):
        raise UsageError(f"--workers {workers} needs a store the workers share, a file; {config.db} is one "
                         "process's own")
    if config.capture:
        raise UsageError(f"--capture writes the frames of one process; with --workers {workers} each worker "
                         "would write the same file (capture with --workers 1)")


def in_memory(db: str) -> bool:
    return db == ":memory:" or db.endswith("/:memory:")


def listen_error(host: str, port: int, exc: OSError) -> CliError:
    """The one-line error of a port that cannot be listened on: a host that does not resolve is
    bad usage (exit 2), a port in use or not allowed a failed run (exit 1)."""
    if isinstance(exc, socket.gaierror):
        return UsageError(f"cannot listen on {host}: {exc.strerror}")
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return RunFailed(f"cannot listen on {host} port {port}: {reason}")


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind ``host:port`` with SO_REUSEPORT, without listening: the port the workers will bind
    (``port`` 0 picks it here, once), and held while the supervisor runs, so that a worker
    restarted while the others are down gets it back. A socket that does not listen takes no
    connections: Linux gives them only to the listening sockets of the group."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise listen_error(host, port, exc) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's listeners do
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise listen_error(host, port, exc) from None
    return sock


def worker_argv(argv: Sequence[str], port: int, number: int) -> list[str]:
    """The command line of worker ``number``: the user's own, on the real port (argparse keeps
    the last ``--port``)."""
    return [sys.executable, "-m", "switchsim", *argv, "--port", str(port), WORKER_OPTION, str(number)]


def startup_errors_to_supervisor() -> Callable[[], None]:
    """In a worker, until it listens: what it would write on stderr (the one error line of a
    failed start, or log lines) goes to stdout, the supervisor's pipe, so that the user reads
    one line from the supervisor and a restart's death says why. Returns what to call once the
    worker listens (stderr is the user's again)."""
    user_stderr = sys.stderr
    sys.stderr = sys.stdout

    def listening() -> None:
        sys.stderr = user_stderr

    return listening


def stop_when_supervisor_goes(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
    """In a worker: call ``stop`` when stdin, a pipe whose other end only the supervisor holds,
    ends (the supervisor is gone, however it went)."""
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 512)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop()

    loop.add_reader(fd, readable)


@dataclass(frozen=True, slots=True)
class WorkerFailed(Exception):
    """A worker ended before it listened, at the first start (the whole serve fails)."""

    number: int
    returncode: int
    reason: str  # what it said last, "" if nothing

    def __str__(self) -> str:
        if self.reason:
            return f"worker {self.number} did not start: {self.reason}"
        how = ", ".join(f"{k} {v}" for k, v in exit_fields(self.returncode).items()).replace("_", " ")
        return f"worker {self.number} did not start ({how})"


class Supervisor:
    """Keeps ``workers`` processes running ``worker_argv`` until SIGTERM or SIGINT."""

    def __init__(self, argv: Sequence[str], workers: int, port: int, env: Mapping[str, str],
                 on_exit: Callable[[int], None] = lambda _pid: None, grace: float = GRACE) -> None:
        self._argv = tuple(argv)
        self._workers = workers
        self._port = port
        self._env = dict(env)
        self._on_exit = on_exit  # told the pid of every worker process that ended
        self._grace = grace
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._stop = asyncio.Event()
        self._stopping = False

    async def run(self, say: Callable[[str], None]) -> None:
        """Start the workers, say the start-up line, keep them until told to stop, stop them.
        Raises RunFailed when a worker cannot start the first time (the others are stopped)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        ready = {n: loop.create_future() for n in range(1, self._workers + 1)}
        keepers = [asyncio.create_task(self._keep(n, ready[n])) for n in ready]
        try:
            lines = await self._first_start(list(ready.values()))
            if lines is not None:
                say(f"{lines[0]} workers={self._workers}")
                await self._stop.wait()
        finally:
            await self._shutdown(keepers)
            for future in ready.values():
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: a failure was raised once already
        say("switch stopped")

    async def _first_start(self, ready: list[asyncio.Future[str]]) -> list[str] | None:
        """Every worker's start-up line once all listen; None when told to stop first."""
        stopped: asyncio.Future[Any] = asyncio.ensure_future(self._stop.wait())
        everyone: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*ready))
        try:
            done, _ = await asyncio.wait({stopped, everyone}, timeout=STARTUP_TIMEOUT,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if everyone in done:
            try:
                lines: list[str] = everyone.result()
            except WorkerFailed as exc:
                raise RunFailed(str(exc)) from None
            return lines
        everyone.cancel()
        if stopped in done:
            return None
        raise RunFailed(f"not every worker listened within {STARTUP_TIMEOUT:.0f} s")

    async def _keep(self, number: int, ready: asyncio.Future[str]) -> None:
        """Run worker ``number``, and again each time it dies, until the supervisor stops."""
        try:
            await self._keep_running(number, ready)
        except Exception as exc:
            if not ready.done():  # the first start waits for this worker: it must not wait in vain
                ready.set_exception(exc)
            raise

    async def _keep_running(self, number: int, ready: asyncio.Future[str]) -> None:
        loop = asyncio.get_running_loop()
        policy = RestartPolicy()
        while not self._stopping:
            started = loop.time()
            proc = await asyncio.create_subprocess_exec(
                *worker_argv(self._argv, self._port, number), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, env=self._env, start_new_session=True)
            self._procs[number] = proc
            if self._stopping:  # told to stop while it was being started
                _signal(proc, signal.SIGTERM)
            line, said = await _ready_line(proc)
            drain = asyncio.create_task(_drain(proc)) if line is not None else None
            if line is not None:
                _log.info("worker_started", worker=number, pid=proc.pid)
                if not ready.done():
                    ready.set_result(line)
            code = await proc.wait()
            if drain is not None:
                await drain
            del self._procs[number]
            self._on_exit(proc.pid)
            if self._stopping:
                return
            if not ready.done():
                ready.set_exception(WorkerFailed(number, code, said))
                return
            restart = policy.died(loop.time() - started)
            extra: dict[str, object] = {"reason": said} if line is None and said else {}
            if restart.crash_loop:
                extra.update(crash_loop=True, quick_deaths=restart.quick_deaths)
            _log.error("worker_died", worker=number, pid=proc.pid, **exit_fields(code),
                       ran_s=round(loop.time() - started, 1), restart_in_s=restart.delay, **extra)
            if restart.delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), restart.delay)

    async def _shutdown(self, keepers: list[asyncio.Task[None]]) -> None:
        """Tell every worker to stop; kill those still there after the grace period."""
        self._stopping = True
        self._stop.set()  # a keeper waiting to restart its worker gives up
        for proc in list(self._procs.values()):
            _signal(proc, signal.SIGTERM)
        _done, late = await asyncio.wait(keepers, timeout=self._grace)
        if late:
            for number, proc in list(self._procs.items()):
                _log.warning("worker_killed", worker=number, pid=proc.pid, after_s=self._grace)
                _signal(proc, signal.SIGKILL)
            await asyncio.wait(keepers)
        for keeper in keepers:
            error = None if keeper.cancelled() else keeper.exception()
            if error is not None:
                raise error  # a bug of ours, not a worker's


def _signal(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)


_ERROR_PREFIX = "switchsim serve: error: "


async def _ready_line(proc: asyncio.subprocess.Process) -> tuple[str | None, str]:
    """The worker's start-up line (None when its stdout ends first: it did not start), and the
    last other line it wrote before (its error, without the ``switchsim serve: error:`` the
    supervisor's own line will carry)."""
    assert proc.stdout is not None
    said = ""
    while line := await proc.stdout.readline():
        text = line.decode(errors="replace").rstrip("\n")
        if text.startswith(READY):
            return text, said
        if text.strip():
            said = text.removeprefix(_ERROR_PREFIX)
    return None, said


async def _drain(proc: asyncio.subprocess.Process) -> None:
    """Read what else the worker prints ("switch stopped"), so its pipe never fills."""
    assert proc.stdout is not None
    while await proc.stdout.read(4096):
        pass
