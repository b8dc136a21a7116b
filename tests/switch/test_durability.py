"""kill -9 of the switch under load loses no transaction a terminal saw approved.

A real switch process (file store), four connections pipelining purchases; the switch is
SIGKILLed while requests are in flight; the store is then reconciled with what the client saw.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from specs.framing import Frame, FrameDecoder
from switch.cards import pan_ref
from switch.records import TerminalId, TxnStatus
from switch.sqlite_store import SqliteStore
from tests.ports import free_port, wait_port
from tests.switch.pos import CODEC, MERCHANT, TERMINAL, Pos

PAN, PIN, BALANCE = "6222021234567890123", "123456", 10_000_000
ROOT = Path(__file__).resolve().parents[2]




async def _roundtrip(port: int, wire: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(wire)
    decoder = FrameDecoder(CODEC.dialect.framing)
    while True:
        decoder.feed(await reader.read(4096))
        event = decoder.next_event()
        if isinstance(event, Frame):
            writer.close()
            return (
                b"\x00\x00"
                + (event.tpdu.to_bytes() if event.tpdu else b"")
                + (event.header.to_bytes() if event.header else b"")
                + event.body
            )


def _rewire(raw: bytes) -> bytes:
    return (len(raw) - 2).to_bytes(2, "big") + raw[2:]


async def test_kill_9_loses_no_approved_transaction(tmp_path: Path) -> None:
    db = tmp_path / "switch.db"
    config = tmp_path / "switch.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\ndb = "{db}"\n\n'
        f'[[terminals]]\nmerchant = "{MERCHANT}"\nterminal = "{TERMINAL}"\ntmk = "{"11" * 16}"\n\n'
        f'[[cards]]\npan = "{PAN}"\nexpiry = "3012"\npin = "{PIN}"\nbalance = {BALANCE}\n'
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchsim.cli", "serve", "--config", str(config), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    approved: list[tuple[str, int]] = []
    try:
        await wait_port(port, 10)
        pos = Pos()
        pos.take_keys(pos.read(_rewire(await _roundtrip(port, pos.wire(pos.signin())))))

        def purchase(amount: int) -> bytes:
            return pos.swiped_purchase(PAN, PIN, amount)

        async def lane() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            decoder = FrameDecoder(CODEC.dialect.framing)
            in_flight = 0
            try:
                while True:
                    while in_flight < 4:
                        writer.write(purchase(100 + len(approved) % 50))
                        in_flight += 1
                    data = await reader.read(65536)
                    if not data:
                        return
                    decoder.feed(data)
                    for event in decoder.events():
                        assert isinstance(event, Frame)
                        in_flight -= 1
                        reply = CODEC.decode(event.body)  # strictly, as every answer
                        if reply[39] == "00":
                            approved.append((reply[11], int(reply[4])))
            except (ConnectionError, OSError):
                return

        lanes = [asyncio.ensure_future(lane()) for _ in range(4)]
        while len(approved) < 150:
            await asyncio.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*lanes), 10)
    finally:
        proc.kill()
        proc.wait()
    store = SqliteStore(db)
    tid = TerminalId(MERCHANT, TERMINAL)
    for stan, amount in approved:
        txn = await store.find_transaction(tid, "000001", stan)
        assert txn is not None and txn.status is TxnStatus.APPROVED and txn.amount == amount, stan
    card = await store.get_card(pan_ref(PAN))
    assert card is not None
    debited = (await store.batch_totals(tid, "000001"))[0]
    assert card.balance == BALANCE - debited
    assert debited >= sum(amount for _, amount in approved)
    await store.close()
