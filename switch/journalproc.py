"""The journal in a process of its own: what `serve` hands its drafts to.

Masking, formatting and writing the journal were a third of the loop's time on a bare 0800
(bench/iso87_peer.py), and the loop is the switch's one core. Here the loop only puts a draft
of each message (switch/journaldraft.py) in a list; once a turn the list is pickled and written to the
journal process's stdin (switchsim/journal_child.py, its protocol), which makes the entries
and writes them over its own connection to the same store. Entries arrive in the order the
drafts were put, so the journal reads as before.

What the store promises holds (switch/store.py): handing over never blocks or raises; a backlog of
more than `BACKLOG` bytes the process has not read drops drafts, counted and warned about once
a second; `flush` returns once everything put before it is written. If the process ends (a
bug, a kill), that is logged once and every later draft is made into its entry here
(the `InlineJournal` it was given): the journal goes on, minus what was in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import time
from collections.abc import Sequence

from specs.codec import Codec, codec_for
from specs.framing import Frame
from specs.logs import get_logger
from specs.message import Message
from specs.observer import Observer
from switch.journaldraft import Item, entry_of
from switch.journalsink import JournalSink
from switch.records import JournalEntry, TerminalId

_log = get_logger("switch.journal")

BACKLOG = 8 * 2**20  # bytes written to the process and not yet read by it, at most
START_TIMEOUT = 60.0  # seconds for the process to open the store
STOP_TIMEOUT = 10.0  # seconds for it to write what it holds once stdin is closed
_WARN_EVERY = 1.0


def encode_batch(items: Sequence[Item], flush: int) -> bytes:
    """One batch on the pipe: the pickled ``(items, flush)`` behind its 4-byte length."""
    body = pickle.dumps((items, flush), protocol=pickle.HIGHEST_PROTOCOL)
    return len(body).to_bytes(4, "big") + body


class JournalProcess:
    def __init__(
        self, proc: asyncio.subprocess.Process, codec: Codec, keep_raw: bool, fallback: JournalSink, observer: Observer
    ) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self._codec, self._keep_raw = codec, keep_raw
        self._proc, self._stdin, self._stdout = proc, proc.stdin, proc.stdout
        self._fallback, self._observer = fallback, observer
        self._loop = asyncio.get_running_loop()
        self._batch: list[Item] = []
        self._flushes: dict[int, asyncio.Future[None]] = {}
        self._sequence = 0
        self._gone = False  # the process ended, or close began: drafts are made here
        self._closing = False
        self.dropped = 0  # drafts refused here (backlog full) or by the process's store
        self._warned_at = -_WARN_EVERY
        self._reader = self._loop.create_task(self._read(), name="journal-process-reader")

    @classmethod
    async def start(
        cls,
        command: Sequence[str],
        *,
        store_url: str,
        dialect: str,
        keep_raw: bool,
        log_level: str,
        fallback: JournalSink,
        observer: Observer,
    ) -> JournalProcess | None:
        """The process running, its store open; None (logged) when it cannot start, and then
        the switch keeps its journal itself."""
        # The store's URL goes first on stdin, not on the command line, which anyone on the
        # machine can read (ps, /proc): a PostgreSQL URL may hold a password.
        argv = [*command, "--dialect", dialect, "--log-level", log_level]
        if keep_raw:
            argv.append("--keep-raw")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            _log.warning("journal_process_unavailable", reason=str(exc))
            return None
        assert proc.stdin is not None and proc.stdout is not None
        url = store_url.encode()
        proc.stdin.write(len(url).to_bytes(4, "big") + url)
        try:
            ready = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            ready = b""
        if ready != b"r\n":
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            status = await proc.wait()
            _log.warning("journal_process_unavailable", reason=f"it ended with status {status} before its store opened")
            return None
        return cls(proc, codec_for(dialect), keep_raw, fallback, observer)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def running(self) -> bool:
        """The process takes the drafts (it has not ended, and close has not begun)."""
        return not self._gone

    def message(
        self,
        when: float,
        direction: str,
        tid: TerminalId,
        remote: str,
        message: Message,
        frame: Frame,
        error: str,
        reason: str,
        warnings: tuple[str, ...],
        wire: bytes,
    ) -> None:
        if self._gone:
            self._fallback.message(when, direction, tid, remote, message, frame, error, reason, warnings, wire)
            return
        # a Draft (switch/journaldraft.py)
        merchant, terminal, mti, fields = tid.merchant, tid.terminal, message.mti, dict(message.fields)
        self._put((when, direction, merchant, terminal, remote, mti, fields, error, reason, warnings, wire))

    def entry(self, entry: JournalEntry) -> None:
        if self._gone:
            self._fallback.entry(entry)
            return
        self._put(entry)

    def _put(self, item: Item) -> None:
        batch = self._batch
        batch.append(item)
        if len(batch) == 1:  # the first of this turn: the batch leaves when the turn ends
            self._loop.call_soon(self._send, 0)

    def _send(self, flush: int) -> None:
        batch, self._batch = self._batch, []
        if not self._gone and self._stdin.transport.is_closing():
            self._gone = True  # the process went away; _read logs it once
        if self._gone:  # the process went before this batch: its entries are made here
            for item in batch:
                self._fallback.entry(entry_of(self._codec, item, keep_raw=self._keep_raw))
            return
        if not batch and not flush:
            return
        if self._stdin.transport.get_write_buffer_size() > BACKLOG:
            self._drop(len(batch))
            batch = []
            if not flush:
                return
        self._stdin.write(encode_batch(batch, flush))

    def _drop(self, count: int) -> None:
        self.dropped += count
        self._observer.journal_dropped(count)
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            why = f"{BACKLOG} bytes waiting for the journal process"
            _log.warning("journal_entries_dropped", dropped=self.dropped, reason=why)

    async def flush(self) -> None:
        if self._gone:
            await self._fallback.flush()
            return
        self._sequence += 1
        done = self._flushes[self._sequence] = self._loop.create_future()
        self._send(self._sequence)
        await done

    async def close(self) -> None:
        """Hand over the last drafts, close stdin and wait for the process to write them."""
        if not self._gone:
            self._send(0)
            self._closing = self._gone = True
            self._stdin.close()
            with contextlib.suppress(ConnectionError):
                await self._stdin.wait_closed()
            try:
                await asyncio.wait_for(self._reader, STOP_TIMEOUT)
            except TimeoutError:
                _log.error("journal_process_stuck", pid=self._proc.pid, waited_s=STOP_TIMEOUT)
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
        await self._reader
        await self._fallback.flush()

    async def _read(self) -> None:
        """The process's lines until it ends; then its status, logged unless it was asked to end."""
        stdout = self._stdout
        while line := await stdout.readline():
            kind, _, count = line.partition(b" ")
            if kind == b"f":
                sequence = int(count)
                for n in [n for n in self._flushes if n <= sequence]:
                    self._flushes.pop(n).set_result(None)
            elif kind == b"d":
                self.dropped += int(count)
                self._observer.journal_dropped(int(count))
        status = await self._proc.wait()
        self._gone = True
        if not self._closing or status != 0:
            _log.error("journal_process_ended", pid=self._proc.pid, status=status, lost="the drafts it had not written")
        for done in self._flushes.values():
            if not done.done():
                done.set_result(None)
        self._flushes.clear()
