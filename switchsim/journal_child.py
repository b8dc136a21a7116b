"""The journal process: `python -m switchsim.journal_child --dialect D`, started by `serve`
(switch/journalproc.py), one beside each switch process.

It reads the store's URL from stdin first (a 4-byte big-endian length, then the URL in UTF-8:
not on the command line, which anyone on the machine can read). Then come batches of drafts
(a 4-byte big-endian length, then the pickled ``(items, flush)`` of
`journalproc.encode_batch`); it makes each entry (switch/journaldraft.py) and queues it in
its own connection to the switch's store. On stdout it says one line per event: ``r`` once
the store is open, ``f N`` once everything up to flush request N is written, ``d N`` when its
store dropped N more entries (a full queue, a write that failed). End of stdin (the switch
closed it, or died) writes what is queued and ends the process.

It ignores SIGINT: a Ctrl-C at the terminal reaches the whole process group, and the switch,
stopping, still hands over its last drafts and then closes stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pickle
import signal
import sys

from specs.codec import codec_for
from specs.logs import get_logger
from switch.journaldraft import Item, entry_of
from switch.store import StoreError
from switch.storeurl import open_store
from switchsim import logs

_log = get_logger("switch.journal")

COMMAND = (sys.executable, "-m", "switchsim.journal_child")  # what `serve` starts


def _say(line: str) -> None:
    os.write(sys.stdout.fileno(), line.encode() + b"\n")


async def _run(store_url: str, dialect: str, keep_raw: bool) -> int:
    codec = codec_for(dialect)
    store = await open_store(store_url, create=False, shared=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    _say("r")
    dropped = failed = 0
    try:
        while True:
            try:
                size = int.from_bytes(await reader.readexactly(4), "big")
                body = await reader.readexactly(size)
            except asyncio.IncompleteReadError:
                return 0  # the switch closed stdin (or is gone): what is queued is written below
            items: list[Item]
            items, flush = pickle.loads(body)
            for item in items:
                try:
                    store.add_journal(entry_of(codec, item, keep_raw=keep_raw))
                except Exception as exc:  # a bug of ours: the entry is lost, counted, never its values
                    failed += 1
                    _log.error("journal_entry_failed", error_type=type(exc).__name__, failed=failed)
            if flush:
                # A write that failed is logged by the store and its rows counted as dropped
                # (reported below): the flush is answered all the same, and the process goes on.
                with contextlib.suppress(StoreError):
                    await store.flush()
            lost = store.journal_dropped + failed
            if lost != dropped:
                _say(f"d {lost - dropped}")
                dropped = lost
            if flush:
                _say(f"f {flush}")
    finally:
        await store.close()


def _read_exactly(n: int) -> bytes:
    """``n`` bytes of stdin, read off its descriptor: a buffered reader could read ahead into
    the batches, which the loop reads from the same descriptor."""
    data = b""
    while len(data) < n:
        chunk = os.read(sys.stdin.fileno(), n - len(data))
        if not chunk:
            raise EOFError(f"stdin ended after {len(data)} of the {n} bytes of the store's URL")
        data += chunk
    return data


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="python -m switchsim.journal_child")
    parser.add_argument("--dialect", required=True)
    parser.add_argument("--keep-raw", action="store_true")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logs.configure(args.log_level)
    try:
        size = int.from_bytes(_read_exactly(4), "big")
        return asyncio.run(_run(_read_exactly(size).decode(), args.dialect, args.keep_raw))
    except Exception as exc:  # the switch logs that its journal process ended, and goes on
        _log.error("journal_process_failed", error_type=type(exc).__name__, error=str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
