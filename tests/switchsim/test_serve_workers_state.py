"""State stays coherent across the workers of `switchsim serve --workers 2`, which share only the
store: a terminal's keys, its STANs, the RRNs, operator lockout and card PIN tries. Real
processes and sockets; each request goes on a new connection until the kernel hands it to the
worker the test wants (the RRN's last digit says which answered, tests/switchsim/workerwire.py).

The tests marked ``needs the async store branch`` rely on what that branch adds: workers that do
not cache sessions when the store is shared, a UNIQUE STAN in the store (DuplicateTransaction,
answered 94) and counters incremented in the store (PIN tries, operator failures)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from switch.cards import pan_ref
from switch.records import TerminalId
from switch.sqlite_store import SqliteStore
from tests.switch.pos import MERCHANT, TERMINAL
from tests.switchsim.cli import Serving
from tests.switchsim.workerwire import PAN, Lane, Till, cup_config, purchase, worker_of

# Pairs sent to both workers at once. Without what the store branch adds, 10 to 40 % of them
# overlap in the two workers on this 2-core machine (both approved, or one count lost), so the
# chance that 100 pass by luck is below 1e-4.
ROUNDS = 100


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[Serving]:
    config = cup_config(tmp_path, tmp_path / "switch.db")
    with Serving(["--config", str(config), "--port", "0", "--workers", "2"], tmp_path) as running:
        yield running


@pytest.mark.parametrize(("first", "then"), [("1", "2"), ("2", "1")])
async def test_a_terminal_signed_in_through_one_worker_buys_through_the_other_with_its_new_keys(
    serving: Serving, first: str, then: str
) -> None:
    till = Till(serving.port)
    signin = await till.sign_in(first)
    assert worker_of(signin) == first
    answer = await till.on(then, "purchase", purchase(till.pos), mac=True)
    assert (answer.mti, answer[39], worker_of(answer)) == ("0210", "00", then)
    till.pos.check_mac(answer)  # the answer's MAC is under the MAK the first worker handed out


async def test_a_new_sign_in_through_one_worker_reaches_the_other_that_knew_the_old_keys(serving: Serving) -> None:
    till = Till(serving.port)
    await till.sign_in("1")
    assert (await till.on("2", "purchase", purchase(till.pos), mac=True))[39] == "00"  # worker 2 knows these keys
    await till.sign_in("1")  # new keys: the old ones are void
    answer = await till.on("2", "purchase", purchase(till.pos), mac=True)
    assert answer[39] == "00"
    till.pos.check_mac(answer)


async def test_a_repeated_stan_is_answered_94_whichever_worker_saw_the_first(serving: Serving) -> None:
    till = Till(serving.port)
    await till.sign_in("1")
    for first, then in (("1", "2"), ("2", "1")):
        message = purchase(till.pos)
        assert (await till.on(first, "purchase", message, mac=True))[39] == "00"
        repeated = await till.on(then, "purchase", message, mac=True)
        assert (repeated[39], worker_of(repeated)) == ("94", then)


async def both_at_once(
    till: Till, lanes: tuple[Lane, Lane], wires: tuple[bytes, bytes], kind: str = "purchase"
) -> list[str]:
    """Each wire on its worker's lane in the same moment; the two answers' 39, in lane order."""
    for lane, wire in zip(lanes, wires, strict=True):
        lane.writer.write(wire)
    frames = await asyncio.gather(*(lane.frame() for lane in lanes))
    return [till.answer(kind, frame)[39] for frame in frames]


async def test_one_stan_sent_to_both_workers_at_once_is_approved_once(serving: Serving) -> None:
    till = Till(serving.port)
    await till.sign_in("1")
    lanes = (await till.lane("1"), await till.lane("2"))
    for _ in range(ROUNDS):
        wire = till.pos.wire(purchase(till.pos), mac=True)
        assert sorted(await both_at_once(till, lanes, (wire, wire))) == ["00", "94"]


async def test_rrns_are_unique_across_workers_over_a_run(serving: Serving) -> None:
    till = Till(serving.port)
    await till.sign_in("1")
    lanes = [await till.lane(worker) for worker in ("1", "2", "1", "2")]
    rrns: list[str] = []
    for _ in range(25):  # a purchase and an echo on each lane, pipelined
        for lane in lanes:
            echo = till.pos.wire(till.pos.message("0820", "301"))
            await lane.send(till.pos.wire(purchase(till.pos), mac=True) + echo)
        for lane in lanes:
            for kind in ("purchase", "echo"):
                answer = till.answer(kind, await lane.frame())
                assert answer[39] == "00"
                rrns.append(answer[37])
    assert len(rrns) == 200
    assert len(set(rrns)) == len(rrns), "an RRN was handed out twice"
    assert {rrn[-1] for rrn in rrns} == {"1", "2"}


async def test_operator_lockout_counts_across_workers(serving: Serving) -> None:
    till = Till(serving.port)
    await till.sign_in("1")
    wrong = [await till.on(w, "operator_signin", till.pos.operator_signin("01", "9999"), mac=True) for w in "121"]
    assert [(a[39], worker_of(a)) for a in wrong] == [("55", "1"), ("55", "2"), ("75", "1")]
    right = await till.on("2", "operator_signin", till.pos.operator_signin("01", "0000"), mac=True)
    assert right[39] == "75"  # locked, whoever asks: until `switchsim operator unlock`


async def test_card_pin_tries_count_across_workers(serving: Serving) -> None:
    till = Till(serving.port)
    await till.sign_in("2")
    wrong = [await till.on(w, "purchase", purchase(till.pos, pin="654321"), mac=True) for w in "121"]
    assert [(a[39], worker_of(a)) for a in wrong] == [("55", "1"), ("55", "2"), ("75", "1")]
    assert (await till.on("2", "purchase", purchase(till.pos), mac=True))[39] == "75"  # the right PIN, too late


async def stored_failures(db: Path) -> tuple[int, int]:
    """What the store counts: the card's wrong PINs, and cashier 01's refused sign-ins."""
    store = SqliteStore(db, create=False)
    try:
        card = await store.get_card(pan_ref(PAN))
        operator = await store.get_operator(TerminalId(MERCHANT, TERMINAL), "01")
        assert card is not None and operator is not None
        return card.pin_failures, operator.failures
    finally:
        await store.close()


async def test_wrong_pins_sent_to_both_workers_at_once_both_count(serving: Serving, tmp_path: Path) -> None:
    till = Till(serving.port)
    await till.sign_in("1")
    lanes = (await till.lane("1"), await till.lane("2"))
    for _ in range(ROUNDS):
        pair = (till.pos.wire(purchase(till.pos, pin="654321"), mac=True),
                till.pos.wire(purchase(till.pos, pin="654321"), mac=True))
        assert await both_at_once(till, lanes, pair) == ["55", "55"]
        assert (await stored_failures(tmp_path / "switch.db"))[0] == 2, "a wrong PIN of the pair went uncounted"
        assert (await till.ask(lanes[0], "purchase", purchase(till.pos), mac=True))[39] == "00"  # back to 0


async def test_wrong_passwords_sent_to_both_workers_at_once_both_count(serving: Serving, tmp_path: Path) -> None:
    till = Till(serving.port)
    await till.sign_in("1")
    lanes = (await till.lane("1"), await till.lane("2"))
    for _ in range(ROUNDS):
        pair = (till.pos.wire(till.pos.operator_signin("01", "9999"), mac=True),
                till.pos.wire(till.pos.operator_signin("01", "9999"), mac=True))
        assert await both_at_once(till, lanes, pair, kind="operator_signin") == ["55", "55"]
        assert (await stored_failures(tmp_path / "switch.db"))[1] == 2, "a refused sign-in of the pair went uncounted"
        right = await till.ask(lanes[0], "operator_signin", till.pos.operator_signin("01", "0000"), mac=True)
        assert right[39] == "00"  # back to 0
