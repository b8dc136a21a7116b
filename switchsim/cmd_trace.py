"""`switchsim trace`: the journal, every message in and out, masked, with why each refusal was made.

Each line names the time, the direction, the MTI, merchant and terminal, STAN, 39 and, beside a
39 other than 00, its reason in words; then the warnings of the field checks
(docs/diagnostics.md), the masked fields, and with `--hex` the frame as it was on the wire
(sensitive nibbles as `*`; `--unmasked` shows it raw, only from a switch run with
`serve --keep-raw`). A summary counts the exchanges, refusals by code and warnings by check.
`--follow` keeps printing what the running switch journals (it reaches the store within 0.2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import signal
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from specs.codec import Codec, codec_for
from specs.errors import WireError
from specs.message import split_subfields
from switch.records import JournalEntry
from switch.store import Store
from switch.storeurl import open_store, parse_store_url
from switchsim import argtypes
from switchsim.cmd_switch import _common, _config
from switchsim.errors import EXIT_OK, UsageError

_POLL = 0.05  # seconds between two looks at the store when following
NO_RAW = "the journal keeps no raw frames: start the switch with `serve --keep-raw` (a test lab's opt-in)"


def register(sub: Any) -> None:
    tr = sub.add_parser(
        "trace",
        help="show the journal: every message in and out, masked, with the reason of each refusal",
        description="Every message in and out, masked; a refusal (39 other than 00) with its reason in words, "
        "the field checks' warnings, and a summary.",
    )
    _common(tr)
    tr.add_argument("--terminal", type=argtypes.terminal_id, help="only this terminal id (field 41)")
    tr.add_argument("--merchant", type=argtypes.merchant_id, help="only this merchant id (field 42)")
    tr.add_argument("--last", type=argtypes.positive_int, default=20, help="how many messages (default 20)")
    tr.add_argument("--follow", action="store_true", help="keep printing new messages until interrupted")
    tr.add_argument("--hex", action="store_true", help="each frame as on the wire, sensitive nibbles as *")
    tr.add_argument(
        "--unmasked", action="store_true", help="with --hex: the raw frames (only kept by `serve --keep-raw`)"
    )
    tr.set_defaults(func=_trace)


@dataclass
class Summary:
    """What a trace showed, counted: exchanges, refusals by 39, warnings by check."""

    exchanges: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)

    def add(self, entry: JournalEntry) -> None:
        if entry.direction != "out":
            return
        self.exchanges += 1
        if entry.response_code and entry.response_code != "00":
            self.refused[entry.response_code] += 1
        for warning in entry.warnings:
            self.warnings[warning.partition(":")[0]] += 1

    def line(self) -> str:
        refused = sum(self.refused.values())
        codes = ", ".join(f"{code} x{n}" for code, n in sorted(self.refused.items()))
        checks = ", ".join(f"{name} x{n}" for name, n in sorted(self.warnings.items()))
        parts = [f"{self.exchanges} answers", f"{refused} refused" + (f" ({codes})" if codes else "")]
        parts.append(f"{sum(self.warnings.values())} warnings" + (f" ({checks})" if checks else ""))
        return "summary: " + ", ".join(parts)


def render(entry: JournalEntry, codec: Codec, *, hex_view: bool = False, unmasked: bool = False) -> list[str]:
    """The lines of one journal entry."""
    when = dt.datetime.fromtimestamp(entry.time).isoformat(timespec="milliseconds")
    arrow = "<-" if entry.direction == "in" else "->"
    who = f"{entry.merchant or '?'}/{entry.terminal or '?'}"
    head = f"{when} {arrow} {entry.mti or '????'} {who} stan={entry.stan or '-'}"
    if entry.direction == "out":
        head += f" 39={entry.response_code or '-'}"
        if entry.reason:
            head += f" ({entry.reason})"
    lines = [f"{head} {entry.remote}"]
    if entry.error:
        lines.append(f"    error: {entry.error}")
    lines += [f"    warning: {warning}" for warning in entry.warnings]
    lines.append(f"    {_with_subfields(codec, entry.masked_json)}")
    if hex_view:
        lines.append(f"    hex: {(entry.raw if unmasked else entry.wire) or '(not kept)'}")
    return lines


def _with_subfields(codec: Codec, masked_json: str) -> str:
    """The journal keeps masked field values; subfields (60.1 ...) are derived for display."""
    try:
        record = json.loads(masked_json)
        dialect = codec.dialect
        subfields: dict[str, str] = {}
        for key, value in record.get("fields", {}).items():
            spec = dialect.fields.get(int(key))
            if spec is not None and spec.subfields and "*" not in value:
                subfields.update(split_subfields(int(key), value, dialect))
    except (ValueError, AttributeError, WireError):
        return masked_json
    if subfields:
        record["subfields"] = subfields
    return json.dumps(record)


def _print(entries: Iterable[JournalEntry], codec: Codec, args: argparse.Namespace, summary: Summary) -> int | None:
    last_id = None
    for entry in entries:
        if args.unmasked and not entry.raw:
            raise UsageError(NO_RAW)
        for line in render(entry, codec, hex_view=args.hex, unmasked=args.unmasked):
            print(line)
        summary.add(entry)
        last_id = entry.id
    sys.stdout.flush()
    return last_id


def _trace(args: argparse.Namespace) -> int:
    if args.unmasked and not args.hex:
        raise UsageError("--unmasked shows raw frames and needs --hex")
    config = _config(args)
    codec = codec_for(config.dialect)
    parse_store_url(config.db)  # a URL that names no store is refused before anything runs
    summary = Summary()

    async def go() -> None:
        store = await open_store(config.db, create=False)
        try:
            query = {"merchant": args.merchant}
            last_id = _print(await store.list_journal(args.terminal, args.last, **query), codec, args, summary)
            if args.follow:
                await _follow(store, codec, args, summary, last_id or 0)
        finally:
            await store.close()

    asyncio.run(go())
    print(summary.line())
    return EXIT_OK


async def _follow(store: Store, codec: Codec, args: argparse.Namespace, summary: Summary, after: int) -> None:
    """Print new entries as the switch journals them, until SIGINT or SIGTERM."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        while not stopping.is_set():
            found = await store.list_journal(args.terminal, 1000, merchant=args.merchant, after=after)
            after = _print(found, codec, args, summary) or after
            if not found:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), _POLL)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
