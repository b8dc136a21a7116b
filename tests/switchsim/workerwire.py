"""Talking to `switchsim serve --workers N` over real sockets, and knowing which worker answered.

Every answer of the switch carries an RRN (37) whose last digit is the number of the worker that
built it (docs: README, "Several worker processes"), so a test opens connections until the
kernel has handed one to the worker it wants. The processes are found through the supervisor's
log (``worker_started``: number and pid) and looked at in /proc.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from specs.codec import codec_for
from specs.framing import Frame, FrameDecoder, FrameFormat, encode_frame
from specs.message import Message
from tests.switch import independent
from tests.switch.pos import CODEC, MERCHANT, TERMINAL, TMK, TPDU, Pos
from tests.switchsim.cli import Serving

ISO87 = codec_for("iso87-binary")
MAX_TRIES = 80  # connections opened to find one worker: the chance of missing one of 2 is 2**-80


def network_management(stan: int) -> bytes:
    """An iso87-binary 0800 echo (70 = 301): answered 00 by the switch without any set-up."""
    message = ISO87.message("0800", {7: "1122123456", 11: f"{stan:06d}", 70: "301"})
    return encode_frame(ISO87.dialect.framing, ISO87.encode(message))


def read_frame(conn: socket.socket) -> bytes:
    """One 2-byte-length frame's body."""
    head = _read(conn, 2)
    return _read(conn, int.from_bytes(head, "big"))


def _read(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        assert chunk, "the switch closed the connection"
        data += chunk
    return data


def iso87_answer(port: int, stan: int = 1) -> Message:
    """The answer to one 0800 sent on a connection of its own."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(network_management(stan))
        return ISO87.decode(read_frame(conn))


def worker_of(answer: Message) -> str:
    rrn = answer[37]
    assert len(rrn) == 12 and rrn.isdigit(), rrn
    return rrn[-1]


def workers_answering(port: int, want: set[str]) -> set[str]:
    """The workers (RRN digits) that answered 0800s on new connections, until all of ``want``
    have been seen (or MAX_TRIES connections)."""
    seen: set[str] = set()
    for stan in range(1, MAX_TRIES + 1):
        seen.add(worker_of(iso87_answer(port, stan)))
        if want <= seen:
            break
    return seen


def worker_pids(serving: Serving, count: int) -> dict[int, int]:
    """Worker number -> pid of the latest start of each, once ``count`` workers have started."""
    entries = serving.wait_log(lambda e: len({x["worker"] for x in e if x.get("event") == "worker_started"}) >= count)
    return {x["worker"]: x["pid"] for x in entries if x.get("event") == "worker_started"}


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: nobody may have reaped a grandchild yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Lane:
    """One connection speaking a dialect's frames, one answer read at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, framing: FrameFormat) -> None:
        self.reader, self.writer = reader, writer
        self._decoder = FrameDecoder(framing)

    @classmethod
    async def open(cls, port: int, framing: FrameFormat) -> Lane:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, framing)

    async def send(self, wire: bytes) -> None:
        self.writer.write(wire)
        await self.writer.drain()

    async def frame(self, timeout: float = 30) -> Frame:
        async with asyncio.timeout(timeout):
            while True:
                event = self._decoder.next_event()
                if isinstance(event, Frame):
                    return event
                data = await self.reader.read(65536)
                assert data, "the switch closed the connection"
                self._decoder.feed(data)

    async def closed(self, timeout: float = 30) -> bool:
        """Whether the switch closes the connection (EOF) with nothing more to read."""
        async with asyncio.timeout(timeout):
            return await self.reader.read(1) == b""

    def close(self) -> None:
        self.writer.close()


async def lane_to(port: int, framing: FrameFormat, worker: str, probe: Callable[[Lane], Awaitable[str]]) -> Lane:
    """A connection the kernel gave to ``worker``: ``probe(lane)`` is awaited on each new one and
    says (an RRN digit) which worker answered it; the others are closed."""
    for _ in range(MAX_TRIES):
        lane = await Lane.open(port, framing)
        answered = await probe(lane)
        if answered == worker:
            return lane
        lane.close()
    raise AssertionError(f"no connection reached worker {worker} in {MAX_TRIES} tries")


# -- cup-pos: a POS terminal on a switch of several workers ------------------------------------

PAN, PIN = "6222021234567890123", "123456"
STRANGER = "99999999"  # a terminal id no test registers


def cup_config(tmp: Path, db: Path) -> Path:
    """A switch config declaring the test POS's terminal (tests/switch/pos.py) and one card."""
    config = tmp / "switch.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\ndb = "{db}"\n\n'
        f'[[terminals]]\nmerchant = "{MERCHANT}"\nterminal = "{TERMINAL}"\ntmk = "{TMK.hex()}"\n\n'
        f'[[cards]]\npan = "{PAN}"\nexpiry = "3012"\npin = "{PIN}"\nbalance = 100000000\n'
    )
    return config


def purchase(pos: Pos, pin: str = PIN, amount: int = 100) -> Message:
    """A swiped purchase with its PIN block (ISO format 0) under the POS's PIK; a new STAN."""
    block = independent.card_pin_block(pin, PAN, pos.pik).hex().upper()
    message = pos.message("0200", "000", f3="000000", f4=f"{amount:012d}", f22="021", f25="00", f26="12",
                          f49="156", f35=f"{PAN}D30121010000", f52=block, f53="2600000000000000")
    return message.replace(f60="22" + message[60][2:])


class Till:
    """The test POS on a switch of several workers. ``exchanges`` keeps every answer it got as
    (kind, 39, the worker that answered); ``connections`` counts what it opened."""

    def __init__(self, port: int, pos: Pos | None = None) -> None:
        self.port = port
        self.pos = pos if pos is not None else Pos()
        self.stranger = Pos(terminal=STRANGER)
        self.exchanges: list[tuple[str, str, str]] = []
        self.connections = 0

    async def ask(self, lane: Lane, kind: str, message: Message, *, mac: bool = False) -> Message:
        await lane.send(self.pos.wire(message, mac=mac))  # the stranger's echo has no MAC: any POS frames it
        return self.answer(kind, await lane.frame())

    def answer(self, kind: str, frame: Frame) -> Message:
        assert frame.tpdu == TPDU.reply()
        answer = CODEC.decode(frame.body)
        self.exchanges.append((kind, answer[39], worker_of(answer)))
        return answer

    async def echo(self, lane: Lane) -> str:
        """Which worker holds ``lane``: an echo test (0820, 60.3 = 301) of a terminal the switch
        does not know (97), so that finding a worker leaves this terminal's state alone (a
        worker that has looked up a terminal's session keeps what it found)."""
        return worker_of(await self.ask(lane, "echo", self.stranger.message("0820", "301")))

    async def lane(self, worker: str) -> Lane:
        """A connection of worker ``worker``, found by echo tests on new connections."""
        before = len(self.exchanges)
        lane = await lane_to(self.port, CODEC.dialect.framing, worker, self.echo)
        self.connections += len(self.exchanges) - before
        return lane

    async def on(self, worker: str, kind: str, message: Message, *, mac: bool = False) -> Message:
        """``message`` on a new connection of worker ``worker``; its answer."""
        lane = await self.lane(worker)
        try:
            return await self.ask(lane, kind, message, mac=mac)
        finally:
            lane.close()

    async def sign_in(self, worker: str) -> Message:
        answer = await self.on(worker, "signin", self.pos.signin())
        assert answer[39] == "00", answer[39]
        self.pos.take_keys(answer)
        return answer
