"""Two switches on one store file, as two worker processes would be (no sockets): a session made
by one serves the other, a STAN the other committed first answers 94 through the store's unique
index, and PIN tries and operator failures of requests in flight at once count together.

The HSM answers only after a turn of the loop (`YieldingHsm`), so that requests in flight at
once interleave between what they read and what they write, as in two processes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from switch.app import build_services, register_terminal
from switch.cards import add_card, pan_ref
from switch.config import SwitchConfig
from switch.context import Services
from switch.records import TerminalId
from switch.sqlite_store import SqliteStore
from tests.switch.pos import MERCHANT, TERMINAL, TMK
from tests.switch.test_financial import EXPIRY, PAN, PIN, Till

TID = TerminalId(MERCHANT, TERMINAL)


class YieldingHsm:
    """The in-process HSM, answering after a turn of the loop; a command can be held."""

    def __init__(self) -> None:
        self.inner = InProcTransport(Dispatcher(reraise_bugs=True))
        self.held: bytes | None = None
        self.reached = asyncio.Event()  # a held command arrived
        self.go = asyncio.Event()

    async def request(self, message: bytes) -> bytes:
        await asyncio.sleep(0)
        if self.held is not None and message[:2] == self.held:
            self.reached.set()
            await self.go.wait()
        return await self.inner.request(message)

    async def close(self) -> None:
        await self.inner.close()


async def worker(path: Path, hsm: YieldingHsm, *, shared: bool = True) -> Services:
    return build_services(SwitchConfig(db=str(path)), SqliteStore(path, shared=shared), hsm)


async def two_workers(path: Path, *, b_shared: bool = True) -> tuple[Services, Services, YieldingHsm]:
    a = await worker(path, YieldingHsm())
    await register_terminal(a, MERCHANT, TERMINAL, TMK)
    await add_card(a, PAN, EXPIRY, PIN, balance=100_000)
    hsm_b = YieldingHsm()
    return a, await worker(path, hsm_b, shared=b_shared), hsm_b


def beside(till: Till, services: Services) -> Till:
    """A till on another worker, the same terminal (its keys and STANs)."""
    other = Till(services)
    other.pos = till.pos
    return other


@pytest.mark.parametrize(("shared", "code"), [(True, "00"), (False, "A0")])
async def test_a_sign_in_on_one_worker_serves_the_next_request_on_the_other(
    tmp_path: Path, shared: bool, code: str
) -> None:
    a, b, _ = await two_workers(tmp_path / "s.db", b_shared=shared)
    till_a = Till(a)
    await till_a.open()
    till_b = beside(till_a, b)
    assert (await till_b.purchase(100))[39] == "00"  # b learns the session from the store
    await till_a.open()  # the terminal signs in again on a: new working keys
    # b asks the shared store again and verifies the MAC under the new MAK; a b that kept the
    # session it read (a store of its own) still holds the old MAK: A0
    assert (await till_b.purchase(100))[39] == code
    for s in (a, b):
        await s.store.close()


async def test_a_stan_the_other_worker_committed_after_the_check_answers_94(tmp_path: Path) -> None:
    a, b, hsm_b = await two_workers(tmp_path / "s.db")
    till_a = Till(a)
    await till_a.open()
    till_b = beside(till_a, b)
    message = till_a.fin("0200", "000000", "22", 100, **till_a.card())
    hsm_b.held = b"BC"  # b's PIN check waits: b has looked for the STAN and not found it
    on_b = asyncio.ensure_future(till_b.ask(message))
    await hsm_b.reached.wait()
    assert (await till_a.ask(message))[39] == "00"  # a commits the STAN first
    hsm_b.go.set()
    reply = await on_b
    assert reply[39] == "94"
    card = await a.store.get_card(pan_ref(PAN))
    assert card is not None and card.balance == 100_000 - 100  # debited once
    journal = await b.store.list_journal(TERMINAL, 1)
    assert journal[0].reason == "STAN 000003 already used in batch 000001"  # sign-in 1, operator 2
    for s in (a, b):
        await s.store.close()


async def test_wrong_pins_in_flight_on_two_workers_count_together(tmp_path: Path) -> None:
    a, b, _ = await two_workers(tmp_path / "s.db")
    till_a = Till(a)
    await till_a.open()
    till_b = beside(till_a, b)
    wrong = [till_a.fin("0200", "000000", "22", 100, **till_a.card(pin="000000")) for _ in range(4)]
    replies = await asyncio.gather(*(till.ask(m) for till, m in zip([till_a, till_b] * 2, wrong, strict=True)))
    # all four read 0 tries before any counted one; counted in the store: 1, 2, 3, 4 (3 locks)
    assert sorted(r[39] for r in replies) == ["55", "55", "75", "75"]
    card = await b.store.get_card(pan_ref(PAN))
    assert card is not None and card.pin_failures == 4
    assert (await till_b.purchase(100))[39] == "75"  # locked for both workers
    for s in (a, b):
        await s.store.close()


@pytest.mark.parametrize("operator", ["01", "42"])  # a real operator, an id the terminal does not have
async def test_wrong_passwords_in_flight_on_two_workers_lock_at_the_same_count(
    tmp_path: Path, operator: str
) -> None:
    a, b, _ = await two_workers(tmp_path / "s.db")
    till_a = Till(a)
    till_a.pos.take_keys(await till_a.ask(till_a.pos.signin(), mac=False))
    till_b = beside(till_a, b)
    tries = [till_a.pos.operator_signin(operator, "9999") for _ in range(4)]
    replies = await asyncio.gather(*(till.ask(m) for till, m in zip([till_a, till_b] * 2, tries, strict=True)))
    assert sorted(r[39] for r in replies) == ["55", "55", "75", "75"]
    if operator == "01":
        counted = await a.store.get_operator(TID, operator)
        assert counted is not None and (counted.failures, counted.locked) == (4, True)
    else:
        stranger = await a.store.get_operator_failures(TID, operator)
        assert stranger is not None and (stranger.failures, stranger.locked) == (4, True)
    assert (await till_b.ask(till_b.pos.operator_signin(operator, "0000")))[39] == "75"
    for s in (a, b):
        await s.store.close()
