"""Two `switchsim serve` processes on two ports sharing one PostgreSQL store, end to end.

A terminal signs in on one and buys on the other; a STAN repeated across them is answered 94;
kill -9 of one under load loses no approval a client saw. Real processes, a real PostgreSQL
(tests/pgserver.py), real sockets; the store is read back afterwards through its own API.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from specs.framing import Frame, FrameDecoder
from specs.message import Message
from switch.cards import pan_ref
from switch.pg_store import PgStore
from switch.records import TerminalId, TxnStatus
from tests.ports import free_port, wait_port
from tests.switch.pos import CODEC, MERCHANT, TERMINAL, Pos

PAN, PIN, BALANCE = "6222021234567890123", "123456", 10_000_000
ROOT = Path(__file__).resolve().parents[2]
TID = TerminalId(MERCHANT, TERMINAL)



def _config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "switch.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\ndb = "{url}"\n\n'
        f'[[terminals]]\nmerchant = "{MERCHANT}"\nterminal = "{TERMINAL}"\ntmk = "{"11" * 16}"\n\n'
        f'[[cards]]\npan = "{PAN}"\nexpiry = "3012"\npin = "{PIN}"\nbalance = {BALANCE}\n'
    )
    return config


def _serve(config: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "switchsim.cli",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--log-exchanges",
            "off",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )


@contextmanager
def _two_switches(config: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, subprocess.Popen[bytes], int]]:
    first_port, second_port = free_port(), free_port()
    first = _serve(config, first_port)
    procs = [first]
    try:
        asyncio.run(wait_port(first_port))  # the first installs the schema; then the second joins
        second = _serve(config, second_port)
        procs.append(second)
        asyncio.run(wait_port(second_port))
        yield first, first_port, second, second_port
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()



async def _ask(port: int, wire: bytes) -> Message:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(wire)
        decoder = FrameDecoder(CODEC.dialect.framing)
        while True:
            data = await asyncio.wait_for(reader.read(4096), 30)
            assert data, "the switch closed the connection"
            decoder.feed(data)
            event = decoder.next_event()
            if isinstance(event, Frame):
                return CODEC.decode(event.body)
    finally:
        writer.close()


def _purchase(pos: Pos, amount: int) -> bytes:
    return pos.swiped_purchase(PAN, PIN, amount)


async def _signed_in(port: int) -> Pos:
    pos = Pos()
    answer = await _ask(port, pos.wire(pos.signin()))
    assert answer[39] == "00"
    pos.take_keys(answer)
    return pos


def test_sign_in_on_one_switch_buy_on_the_other_and_a_repeated_stan_is_94(tmp_path: Path, pg_url: str) -> None:
    with _two_switches(_config(tmp_path, pg_url)) as (_first, first_port, _second, second_port):

        async def day() -> None:
            pos = await _signed_in(first_port)
            wire = _purchase(pos, 1234)
            bought = await _ask(second_port, wire)  # the other process: keys from the shared store
            assert bought[39] == "00", bought
            pos.check_mac(bought)
            again = await _ask(first_port, wire)  # the same STAN, back on the first
            assert again[39] == "94", again
            later = await _ask(first_port, _purchase(pos, 99))
            assert later[39] == "00"

        asyncio.run(day())
    totals = asyncio.run(_read_back(pg_url, []))
    assert totals.debited == 1234 + 99 and totals.balance == BALANCE - 1234 - 99


@dataclass(frozen=True)
class _Totals:
    debited: int
    balance: int
    found: dict[str, int]  # approved STAN -> amount, of those asked for


async def _read_back(url: str, stans: list[str]) -> _Totals:
    store = await PgStore.open(url, create=False)
    try:
        found: dict[str, int] = {}
        for stan in stans:
            txn = await store.find_transaction(TID, "000001", stan)
            if txn is not None and txn.status is TxnStatus.APPROVED:
                found[stan] = txn.amount
        card = await store.get_card(pan_ref(PAN))
        assert card is not None
        debited = (await store.batch_totals(TID, "000001"))[0]
        return _Totals(debited, card.balance, found)
    finally:
        await store.close()


def test_kill_9_of_one_switch_under_load_loses_no_approval_a_client_saw(tmp_path: Path, pg_url: str) -> None:
    approved: dict[str, int] = {}  # STAN -> amount, as the clients saw them approved

    with _two_switches(_config(tmp_path, pg_url)) as (first, first_port, _second, second_port):

        async def load() -> None:
            pos = await _signed_in(first_port)

            async def lane(port: int) -> None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                decoder = FrameDecoder(CODEC.dialect.framing)
                in_flight = 0
                try:
                    while len(approved) < 600:
                        while in_flight < 4:
                            writer.write(_purchase(pos, 100 + len(approved) % 50))
                            in_flight += 1
                        data = await reader.read(65536)
                        if not data:
                            return
                        decoder.feed(data)
                        for event in decoder.events():
                            assert isinstance(event, Frame)
                            in_flight -= 1
                            reply = CODEC.decode(event.body)
                            if reply[39] == "00":
                                approved[reply[11]] = int(reply[4])
                except (ConnectionError, OSError):
                    return
                finally:
                    writer.close()

            lanes = [asyncio.ensure_future(lane(port)) for port in (first_port, first_port, second_port, second_port)]
            while len(approved) < 150:
                await asyncio.sleep(0.005)
            first.send_signal(signal.SIGKILL)  # mid-load: requests in flight on its two lanes
            await asyncio.wait_for(asyncio.gather(*lanes), 60)  # the other carries on to 600

        asyncio.run(load())
    assert len(approved) >= 600
    totals = asyncio.run(_read_back(pg_url, sorted(approved)))
    assert totals.found == approved  # every approval a client saw is in the store, as it saw it
    assert totals.balance == BALANCE - totals.debited
    assert totals.debited >= sum(approved.values())
