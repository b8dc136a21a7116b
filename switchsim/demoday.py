"""The day a terminal lives, against a running switch: what `switchsim demo` shows first.

One virtual terminal (terminals_sim/terminal.py) signs in, its supervisor signs in, it sells with
PIN and MAC, voids, refunds, asks a balance, loses an answer and reverses it, settles; then it
signs in again and sends one purchase MACed with the previous sign-in's MAK, the mistake a
firmware engineer makes, which the switch refuses (A0) and explains (switch/macdiag.py). Each
step is one line that fits 80 columns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from hsm_sim.mac import cup_pos_mac
from specs.catalogue import mac_input
from specs.codec import codec_for
from specs.framing import decode_frame, encode_frame
from specs.response import meaning
from terminals_sim.connection import ExchangeFailed, exchange_once
from terminals_sim.financial import CardProfile
from terminals_sim.outcome import Failure, Outcome
from terminals_sim.terminal import TerminalProfile, VirtualTerminal

_TIMEOUT = 30.0
_WIDTH = 80
SUPERVISOR, SUPERVISOR_PASSWORD = "00", "123456"  # the UnionPay default every terminal gets


@dataclass(frozen=True, slots=True)
class Step:
    label: str
    code: str | None
    detail: str = ""

    def line(self) -> str:
        code = self.code or "--"
        what = self.detail or (meaning(self.code) or "" if self.code else "").partition(":")[0]
        return f"  {self.label:<36} 39={code}  {what}"[:_WIDTH]


class Day:
    def __init__(self, host: str, port: int, merchant: str, terminal: str, tmk: bytes, card: CardProfile) -> None:
        self.host, self.port = host, port
        profile = TerminalProfile(
            merchant, terminal, tmk, operator=SUPERVISOR, password=SUPERVISOR_PASSWORD, card=card
        )
        self.terminal = VirtualTerminal(profile)
        self.codec = codec_for(profile.dialect)
        self.steps: list[Step] = []

    async def _send(self, label: str, frame: bytes) -> Outcome:
        try:
            answer = await exchange_once(self.host, self.port, self.codec.dialect.framing, frame, _TIMEOUT)
        except ExchangeFailed as exc:
            outcome = self.terminal.fail_pending(exc.failure, exc.detail)
        else:
            outcome = self.terminal.receive(answer)
        self.steps.append(Step(label, outcome.response_code, outcome.failure.value if outcome.failure else ""))
        return outcome

    async def step(self, label: str, start: Callable[[], bytes]) -> Outcome:
        return await self._send(label, start())

    async def lose_answer(self, label: str, frame: bytes) -> None:
        """Send a request and hang up before the answer: the terminal owes a reversal."""
        _reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(frame)
        await writer.drain()
        await asyncio.sleep(0.3)  # the switch has it (and commits it) before the line drops
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        self.terminal.fail_pending(Failure.TIMEOUT, "answer lost")
        self.steps.append(Step(label, None, "no answer: a reversal is owed"))

    def remac(self, frame: bytes, mak: bytes) -> bytes:
        """The same request with its MAC under another MAK (the terminal's mistake)."""
        fmt = self.codec.dialect.framing
        parsed = decode_frame(fmt, frame)
        message = self.codec.decode(parsed.body)
        mac = cup_pos_mac(mak, mac_input(self.codec, message)).decode("ascii")
        changed = self.codec.amend(message, {64: bytes(mac, "ascii").hex().upper()})
        return encode_frame(fmt, self.codec.encode(changed), tpdu=parsed.tpdu, header=parsed.header)


async def run_day(host: str, port: int, merchant: str, terminal: str, tmk: bytes, card: CardProfile) -> list[Step]:
    day = Day(host, port, merchant, terminal, tmk, card)
    t = day.terminal
    await day.step("sign-in (60.3 = 003, keys checked)", t.start_signin)
    await day.step("supervisor 00 signs in", t.start_operator_signin)
    await day.step("purchase 12.34 with PIN and MAC", lambda: t.start_purchase(1234))
    first = t.last_transaction
    await day.step("purchase 56.78 with PIN and MAC", lambda: t.start_purchase(5678))
    await day.step("void of the 56.78 (supervisor)", t.start_void)
    await day.step("refund 5.00 of the 12.34", lambda: t.start_refund(500, original=first))
    await day.step("balance inquiry with PIN", t.start_balance)
    await day.lose_answer("purchase 9.99, the answer is lost", t.start_purchase(999))
    await day.step("reversal of the 9.99", t.start_reversal)
    await day.step("settlement (totals in 48)", t.start_settlement)
    keys = t.working_keys
    assert keys is not None
    old_mak = keys.mak
    await day.step("sign-in again (new keys)", t.start_signin)
    await day.step("supervisor 00 signs in", t.start_operator_signin)
    wrong = day.remac(t.start_purchase(100), old_mak)
    await day._send("purchase MACed with the old MAK", wrong)
    return day.steps
