"""HSM commands per second: in process, over TCP (pipelined and one at a time), beside pythales.

usage: python bench/hsm.py [--seconds 3] [--connections 4] [--depth 64] [--no-pythales]

Measures CA (translate a PIN block from TPK to ZPK) and M6 (retail MAC of 1 KiB) on:

* ``Dispatcher.handle`` in a loop (no I/O: the cost of the command itself);
* our TCP server (``switchsim hsm serve``, one process, one thread) driven by a separate client
  process: C connections each keeping D requests in flight, then one connection with one
  request at a time, then through ``TcpTransport`` (our client) for the full round trip;
* pythales 0.74 (a Python payShield simulator) answering the same CA load. It serves one
  client at a time and reads one request per ``recv``, so it gets one connection, one request
  at a time. It is installed into its own venv outside the repo (/tmp/pythales-venv) and run as
  a separate program; nothing of it is imported here.

Every answer is checked: our CA and M6 answers against values computed here with
``cryptography``; pythales' CA answers for error code 00 and the PIN length.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hsm_sim.dispatcher import Dispatcher  # noqa: E402
from hsm_sim.lmk import Lmk  # noqa: E402
from hsm_sim.transports.tcp import TcpTransport  # noqa: E402
from switchsim import logs  # noqa: E402

TARGET_TCP_CA = 25_000
HEADER = b"0000"
PYTHALES_VENV = Path("/tmp/pythales-venv")
# pythales' built-in LMK: one double-length key, used without variants (published in its
# README and source); keys "under its LMK" are plain TDES-ECB of the clear key.
PYTHALES_LMK = bytes.fromhex("deafbeedeafbeedeafbeedeafbeedeaf")

# Clear test keys (odd parity). Not secrets: published-style test values for this benchmark.
TPK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
ZPK = bytes.fromhex("1C1C1C1C1C1C1C1C2A2A2A2A2A2A2A2A")
TAK = bytes.fromhex("4C4C4C4C4C4C4C4C8F8F8F8F8F8F8F8F")
PIN = "1234"
ACCOUNT = "400000123456"  # 12 right-most PAN digits excluding the check digit
MAC_MESSAGE = bytes(range(256)) * 4  # 1 KiB


def tdes_ecb(key: bytes, data: bytes, *, decrypt: bool = False) -> bytes:
    full = key + key[:8] if len(key) == 16 else key
    cipher = Cipher(TripleDES(full), modes.ECB())
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(data) + ctx.finalize()


def retail_mac(key: bytes, message: bytes) -> bytes:
    """ISO 9797-1 MAC algorithm 3, padding method 1 (zeros)."""
    padded = message + bytes(-len(message) % 8)
    k1, k2 = key[:8], key[8:]
    cbc = Cipher(TripleDES(k1 * 3), modes.CBC(bytes(8))).encryptor()
    last = (cbc.update(padded) + cbc.finalize())[-8:]
    return tdes_ecb(k1 * 3, tdes_ecb(k2 * 3, last, decrypt=True))


def iso0_block(pin: str, account: str) -> bytes:
    pin_field = bytes.fromhex(f"{len(pin):02d}{pin}".ljust(16, "F"))
    pan_field = bytes.fromhex("0000" + account)
    return bytes(a ^ b for a, b in zip(pin_field, pan_field, strict=True))


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(2, "big") + body


@dataclass(frozen=True)
class Load:
    name: str
    message: bytes  # command code + fields
    expect: Callable[[bytes], bool]  # checks an answer (no header)


def build_loads(lmk: Lmk) -> tuple[Load, Load, Load]:
    clear_block = iso0_block(PIN, ACCOUNT)
    pin_block = tdes_ecb(TPK, clear_block).hex().upper().encode()
    ca_tail = b"12" + pin_block + b"01" + b"01" + ACCOUNT.encode()

    def under(key: bytes, key_type: str) -> bytes:
        return b"U" + lmk.encrypt_key(key_type, key).hex().upper().encode()

    ca_expected = b"CB00" + b"04" + tdes_ecb(ZPK, clear_block).hex().upper().encode() + b"01"
    ca = Load(
        "CA",
        b"CA" + under(TPK, "002") + under(ZPK, "001") + ca_tail,
        lambda answer: answer == ca_expected,
    )
    mac_expected = b"M700" + retail_mac(TAK, MAC_MESSAGE)[:4].hex().upper().encode()
    m6 = Load(
        "M6",
        b"M6"
        + b"0"
        + b"0"
        + b"0"
        + b"3"
        + b"1"
        + b"003"
        + under(TAK, "003")
        + f"{len(MAC_MESSAGE):04X}".encode()
        + MAC_MESSAGE,
        lambda answer: answer == mac_expected,
    )

    def under_pythales(key: bytes) -> bytes:
        # pythales' parity check rejects bytes with an odd number of set bits (the opposite of
        # the DES rule), so it gets the even-parity twin of each key. DES ignores the parity
        # bits, so the twin is the same key and the same PIN block decrypts under it.
        even = bytes(b ^ 1 if b.bit_count() % 2 else b for b in key)
        return b"U" + tdes_ecb(PYTHALES_LMK, even).hex().upper().encode()

    # pythales "translates" with the ZPK as sent, without decrypting it under its LMK, so only
    # the error code and the PIN length can be checked on its answer.
    ca_pythales = Load(
        "CA",
        b"CA" + under_pythales(TPK) + under_pythales(ZPK) + ca_tail,
        lambda answer: answer[:6] == b"CB0004" and len(answer) == 24,
    )
    return ca, m6, ca_pythales


# --- measuring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    rate: float
    server_cpu: float | None = None  # share of one core the server process used
    client_cpu: float | None = None  # same for this (the load-generating) process


@dataclass(frozen=True)
class Result:
    where: str
    command: str
    mode: str
    measured: Measured
    note: str = ""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Window:
    """A measuring window: answers, wall time and CPU of both processes between two marks."""

    def __init__(self, pid: int | None, answered: int) -> None:
        self._pid = pid
        self._n0 = answered
        self._t0 = time.perf_counter()
        self._own0 = time.process_time()
        self._cpu0 = cpu_seconds(pid) if pid else 0.0

    def close(self, answered: int) -> Measured:
        elapsed = time.perf_counter() - self._t0
        server = (cpu_seconds(self._pid) - self._cpu0) / elapsed if self._pid else None
        client = (time.process_time() - self._own0) / elapsed
        return Measured((answered - self._n0) / elapsed, server, client)


SLICE = 0.5  # seconds


class Slices:
    """Consecutive short windows; the median one is reported, so that a burst of other work on
    this shared machine moves the figure less than it would move one long average."""

    def __init__(self, pid: int | None) -> None:
        self._pid = pid
        self._done: list[Measured] = []
        self._window: Window | None = None

    def mark(self, answered: int) -> None:
        """Close the current slice (if any) and open the next one."""
        if self._window is not None:
            self._done.append(self._window.close(answered))
        self._window = Window(self._pid, answered)

    def median(self) -> Measured:
        ranked = sorted(self._done, key=lambda m: m.rate)
        return ranked[len(ranked) // 2]


def run_sync(step: Callable[[], int], seconds: float, pid: int | None) -> Measured:
    """Call ``step`` (returns how many commands it did) for ``seconds``, sliced."""
    slices = Slices(pid)
    n = 0
    slices.mark(n)
    start = time.perf_counter()
    next_mark, end = start + SLICE, start + seconds
    while True:
        n += step()
        now = time.perf_counter()
        if now >= next_mark:
            slices.mark(n)
            next_mark = now + SLICE
            if now >= end:
                return slices.median()


async def run_async(answered: Callable[[], int], seconds: float, pid: int) -> Measured:
    slices = Slices(pid)
    slices.mark(answered())
    for _ in range(max(1, round(seconds / SLICE))):
        await asyncio.sleep(SLICE)
        slices.mark(answered())
    return slices.median()


def bench_inproc(load: Load, dispatcher: Dispatcher, seconds: float) -> Measured:
    handle = dispatcher.handle
    message = load.message
    if not load.expect(handle(message)):
        raise SystemExit(f"in-process {load.name} answer is wrong: {handle(message)[:8]!r}")

    def step() -> int:
        for _ in range(100):
            handle(message)
        return 100

    return run_sync(step, seconds, None)


class _Counter:
    def __init__(self) -> None:
        self.answered = 0
        self.stop = False
        self.bad: bytes | None = None


class _PipelinedClient(asyncio.Protocol):
    """Keeps ``depth`` requests in flight: every answer read is replaced by a new request."""

    def __init__(self, wire: bytes, depth: int, load: Load, counter: _Counter) -> None:
        self._wire = wire
        self._depth = depth
        self._load = load
        self._counter = counter
        self._buf = bytearray()
        self._outstanding = 0
        self._transport: asyncio.Transport | None = None
        self._checked = False
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(self._wire * self._depth)
        self._outstanding = self._depth

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        got = 0
        hl = len(HEADER)
        while len(buf) - pos >= 2:
            n = (buf[pos] << 8) | buf[pos + 1]
            if len(buf) - pos - 2 < n:
                break
            # Full check of the first answer, error code of every one.
            if not self._checked:
                body = bytes(buf[pos + 2 : pos + 2 + n])
                if body[:hl] != HEADER or not self._load.expect(body[hl:]):
                    self._counter.bad = body[: hl + 8]
                self._checked = True
            elif buf[pos + 2 + hl + 2 : pos + 2 + hl + 4] != b"00":
                self._counter.bad = bytes(buf[pos + 2 : pos + 2 + hl + 8])
            pos += 2 + n
            got += 1
        del buf[:pos]
        self._outstanding -= got
        self._counter.answered += got
        assert self._transport is not None
        if not self._counter.stop:
            self._transport.write(self._wire * got)
            self._outstanding += got
        elif self._outstanding == 0 and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError("server closed the connection"))


async def bench_pipelined(port: int, load: Load, connections: int, depth: int, seconds: float, pid: int) -> Measured:
    loop = asyncio.get_running_loop()
    counter = _Counter()
    wire = frame(HEADER + load.message)
    clients = []
    for _ in range(connections):
        _, client = await loop.create_connection(
            lambda: _PipelinedClient(wire, depth, load, counter), "127.0.0.1", port
        )
        clients.append(client)
    await asyncio.sleep(min(1.0, seconds / 3))  # warm up
    measured = await run_async(lambda: counter.answered, seconds, pid)
    counter.stop = True
    await asyncio.wait_for(asyncio.gather(*(c.done for c in clients)), 10)
    for c in clients:
        assert c._transport is not None
        c._transport.close()
    if counter.bad is not None:
        raise SystemExit(f"wrong {load.name} answer over TCP: {counter.bad!r}")
    return measured


def bench_sequential(port: int, load: Load, seconds: float, pid: int | None) -> Measured:
    """One connection, one request at a time, blocking socket: what pythales supports."""
    wire = frame(HEADER + load.message)
    hl = len(HEADER)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def ask() -> bytes:
            sock.sendall(wire)
            head = _recv_exactly(sock, 2)
            return _recv_exactly(sock, int.from_bytes(head, "big"))

        first = ask()
        if first[:hl] != HEADER or not load.expect(first[hl:]):
            raise SystemExit(f"wrong {load.name} answer: {first[: hl + 8]!r}")
        for _ in range(200):  # warm up
            ask()

        def step() -> int:
            for _ in range(20):
                answer = ask()
            if answer[hl + 2 : hl + 4] != b"00":
                raise SystemExit(f"{load.name} answered {answer[: hl + 4]!r}")
            return 20

        return run_sync(step, seconds, pid)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("connection closed by the HSM")
        out += chunk
    return bytes(out)


async def bench_transport(port: int, load: Load, tasks: int, seconds: float, pid: int) -> Measured:
    """The full round trip through our own client: TcpTransport, ``tasks`` concurrent callers."""
    transport = TcpTransport("127.0.0.1", port, header=HEADER, pool_size=4)
    answered = 0
    stop = False

    async def caller() -> None:
        nonlocal answered
        while not stop:
            answer = await transport.request(load.message)
            if answer[2:4] != b"00":
                raise SystemExit(f"{load.name} answered {answer[:4]!r}")
            answered += 1

    first = await transport.request(load.message)
    if not load.expect(first):
        raise SystemExit(f"wrong {load.name} answer via TcpTransport: {first[:8]!r}")
    runners = [asyncio.create_task(caller()) for _ in range(tasks)]
    await asyncio.sleep(min(1.0, seconds / 3))
    measured = await run_async(lambda: answered, seconds, pid)
    stop = True
    await asyncio.gather(*runners)
    await transport.close()
    return measured


# --- the servers --------------------------------------------------------------------------


def start_ours() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchsim.cli", "hsm", "serve", "--port", "0", "--log-level", "warning"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"tcp://127\.0\.0\.1:(\d+)", line)
    if match is None:
        proc.kill()
        raise SystemExit(f"switchsim hsm serve did not start: {line!r}")
    return proc, int(match.group(1))


_PYTHALES_LAUNCHER = '''\
import socket
import sys

from pythales.hsm import HSM


class LoopbackHSM(HSM):
    """pythales binds every interface; the benchmark wants loopback only."""

    def init_connection(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(5)


LoopbackHSM(header=sys.argv[2], port=int(sys.argv[1])).run()
'''


def ensure_pythales() -> Path | None:
    """The venv python with pythales importable, installing it if absent; None if impossible."""
    python = PYTHALES_VENV / "bin" / "python"
    check = [str(python), "-c", "import pythales.hsm"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"installing pythales into {PYTHALES_VENV} ...", flush=True)
    steps = [
        [shutil.which("python3") or sys.executable, "-m", "venv", str(PYTHALES_VENV)],
        [str(PYTHALES_VENV / "bin" / "pip"), "install", "-q", "--no-deps", "pythales", "pynblock", "tracetools==1.12"],
        [str(PYTHALES_VENV / "bin" / "pip"), "install", "-q", "pycryptodome"],
    ]
    for step in steps:
        if subprocess.run(step, capture_output=True).returncode != 0:
            return None
    return python if subprocess.run(check, capture_output=True).returncode == 0 else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_pythales(python: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    launcher = workdir / "pythales_loopback.py"
    launcher.write_text(_PYTHALES_LAUNCHER)
    port = free_port()
    # It prints a trace of every message; as shipped, so it prints them, to /dev/null.
    proc = subprocess.Popen(
        [str(python), str(launcher), str(port), HEADER.decode()],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=workdir,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
            # pythales takes one client at a time: let it go back to accept().
            time.sleep(0.2)
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("pythales did not start listening")


def check_pythales_lmk(port: int) -> None:
    """Its NC check value must be the one of the LMK we encrypted its keys under."""
    expected = b"ND00" + tdes_ecb(PYTHALES_LMK, bytes(8)).hex().upper().encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(frame(HEADER + b"NC"))
        body = _recv_exactly(sock, int.from_bytes(_recv_exactly(sock, 2), "big"))
    if not body[len(HEADER) :].startswith(expected):
        raise RuntimeError(f"pythales NC answered {body!r}; its LMK is not the assumed one")


def stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- report -------------------------------------------------------------------------------


def print_table(results: list[Result]) -> None:
    print()
    head = f"{'HSM':<10} {'cmd':<4} {'how':<52} {'cmds/s':>8}"
    print(f"{head} {'server CPU':>10} {'client CPU':>10}")
    print("-" * 99)
    for r in results:
        m = r.measured
        server = f"{m.server_cpu * 100:.0f}%" if m.server_cpu is not None else ""
        client = f"{m.client_cpu * 100:.0f}%" if m.client_cpu is not None else ""
        row = f"{r.where:<10} {r.command:<4} {r.mode:<52} {m.rate:>8,.0f}"
        print(f"{row} {server:>10} {client:>10}")
        if r.note:
            print(f"{'':<16}{r.note}")


INPROC = "in process: Dispatcher.handle loop"
SEQUENTIAL = "TCP, 1 conn, 1 request at a time"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring window per row")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--depth", type=int, default=64, help="requests in flight per connection")
    parser.add_argument("--tasks", type=int, default=128, help="callers for the TcpTransport row")
    parser.add_argument("--no-pythales", action="store_true")
    args = parser.parse_args()
    logs.configure("warning")

    lmk = Lmk.default()
    ca, m6, ca_pythales = build_loads(lmk)
    results: list[Result] = []
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}; {args.seconds:g} s per row; median of "
        f"{SLICE:g} s slices; CPU columns: share of one core used by the server and by the "
        "client process",
        flush=True,
    )

    dispatcher = Dispatcher(lmk)
    for load in (ca, m6):
        results.append(Result("switchsim", load.name, INPROC, bench_inproc(load, dispatcher, args.seconds)))

    proc, port = start_ours()
    pipelined = f"TCP, {args.connections} conns x depth {args.depth}, raw client"
    try:
        for load in (ca, m6):
            measured = asyncio.run(bench_pipelined(port, load, args.connections, args.depth, args.seconds, proc.pid))
            results.append(Result("switchsim", load.name, pipelined, measured))
        results.append(Result("switchsim", "CA", SEQUENTIAL, bench_sequential(port, ca, args.seconds, proc.pid)))
        results.append(
            Result(
                "switchsim",
                "CA",
                f"TCP via TcpTransport, pool 4, {args.tasks} callers",
                asyncio.run(bench_transport(port, ca, args.tasks, args.seconds, proc.pid)),
            )
        )
    finally:
        stop(proc)

    pythales: Measured | None = None
    pythales_note = ""
    if args.no_pythales:
        pythales_note = "pythales skipped (--no-pythales)"
    else:
        python = ensure_pythales()
        if python is None:
            pythales_note = "pythales could not be installed: no comparison in this run"
        else:
            with tempfile.TemporaryDirectory(prefix="pythales-") as tmp:
                pproc, pport = start_pythales(python, Path(tmp))
                try:
                    check_pythales_lmk(pport)
                    pythales = bench_sequential(pport, ca_pythales, args.seconds, pproc.pid)
                    results.append(
                        Result(
                            "pythales",
                            "CA",
                            SEQUENTIAL,
                            pythales,
                            "(serves one client, one request per recv: cannot pipeline)",
                        )
                    )
                except (RuntimeError, OSError, SystemExit) as exc:
                    pythales_note = f"pythales run failed: {exc}"
                finally:
                    stop(pproc)

    print_table(results)
    print()
    by = {(r.where, r.mode): r.measured.rate for r in results if r.command == "CA"}
    ours_pipelined = by[("switchsim", pipelined)]
    ours_sequential = by[("switchsim", SEQUENTIAL)]
    if pythales is not None:
        print(
            f"CA ours/pythales: {ours_pipelined / pythales.rate:.1f}x (ours pipelined), "
            f"{ours_sequential / pythales.rate:.1f}x (both one request at a time); "
            "target >= 10x"
        )
    if pythales_note:
        print(pythales_note)
    print(f"CA over TCP vs the {TARGET_TCP_CA:,}/s target: {ours_pipelined / TARGET_TCP_CA:.2f}x")
    # Server CPU seconds per command: what one core can do, whatever else runs on the machine.
    cost = {
        (r.where, r.command, r.mode): (r.measured.server_cpu or r.measured.client_cpu or 0) / r.measured.rate * 1e6
        for r in results
    }
    ca_inproc = cost[("switchsim", "CA", INPROC)]
    ca_tcp = cost[("switchsim", "CA", pipelined)]
    print(
        f"CPU per CA: {ca_inproc:.1f} us in Dispatcher.handle, {ca_tcp:.1f} us in the TCP "
        f"server ({ca_tcp - ca_inproc:.1f} us for sockets and framing); one core's ceiling "
        f"over TCP: {1e6 / ca_tcp:,.0f} CA/s"
    )
    if pythales is not None and pythales.server_cpu:
        theirs = pythales.server_cpu / pythales.rate * 1e6
        print(f"CPU per CA in pythales: {theirs:.1f} us ({theirs / ca_tcp:.1f}x ours over TCP)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
