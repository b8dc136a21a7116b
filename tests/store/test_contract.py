"""The store contract (switch/store.py), once, against every store kind (tests/store/conftest.py).

Expected values are worked by hand from the records in tests/store/contract.py.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from switch.records import CardStatus, IssuedKeys, OperatorChange, OperatorFailures, TxnKind, TxnStatus
from switch.store import DuplicateTransaction, Store, StoreError
from tests.store.contract import (
    CARD,
    CHIP_CARD,
    NOW,
    T1,
    T2,
    T3,
    TERMINAL,
    Opener,
    audit,
    entry,
    operator,
    session,
    txn,
)

# -- terminals -------------------------------------------------------------------------------


async def test_terminal_round_trip_and_replace(store: Store) -> None:
    assert await store.get_terminal(T1) is None
    await store.put_terminal(TERMINAL)
    assert await store.get_terminal(T1) == TERMINAL
    again = replace(TERMINAL, tmk_lmk="U" + "F" * 32, tmk_kcv="000000", key_generation=4)
    await store.put_terminal(again)
    assert await store.get_terminal(T1) == again
    assert await store.get_terminal(T2) is None


async def test_merchant_exists(store: Store) -> None:
    await store.put_terminal(TERMINAL)
    assert await store.merchant_exists("898310048990001") is True
    assert await store.merchant_exists("898310048990002") is False


async def test_list_terminals_by_merchant_then_terminal(store: Store) -> None:
    for tid in (T3, T2, T1):
        await store.put_terminal(replace(TERMINAL, id=tid))
    assert [t.id for t in await store.list_terminals()] == [T1, T2, T3]


async def test_terminal_enabled_and_batch(store: Store) -> None:
    await store.put_terminal(TERMINAL)
    await store.set_terminal_enabled(T1, False)
    await store.set_terminal_batch(T1, "000002")
    assert await store.get_terminal(T1) == replace(TERMINAL, enabled=False, batch="000002")
    with pytest.raises(StoreError, match="00000765"):
        await store.set_terminal_enabled(T2, True)


# -- cards -----------------------------------------------------------------------------------


async def test_card_round_trip_and_list_order(store: Store) -> None:
    await store.put_card(CARD)
    await store.put_card(CHIP_CARD)
    assert await store.get_card(CARD.pan_ref) == CARD
    assert await store.get_card(CHIP_CARD.pan_ref) == CHIP_CARD
    assert await store.get_card("0" * 64) is None
    # by masked PAN: 621234... before 622202...
    assert await store.list_cards() == [CHIP_CARD, CARD]
    blocked = replace(CARD, status=CardStatus.BLOCKED, balance=-5)
    await store.put_card(blocked)
    assert await store.get_card(CARD.pan_ref) == blocked


async def test_card_pin_failures_and_atc(store: Store) -> None:
    await store.put_card(CHIP_CARD)
    await store.set_card_pin_failures(CHIP_CARD.pan_ref, 2)
    assert await store.add_card_pin_failure(CHIP_CARD.pan_ref) == 3
    await store.set_card_atc(CHIP_CARD.pan_ref, 45)
    await store.set_card_atc(CHIP_CARD.pan_ref, 43)  # lower than the last accepted: kept at 45
    card = await store.get_card(CHIP_CARD.pan_ref)
    assert card is not None and (card.pin_failures, card.atc) == (3, 45)
    await store.set_card_pin_failures(CHIP_CARD.pan_ref, 0)
    card = await store.get_card(CHIP_CARD.pan_ref)
    assert card is not None and card.pin_failures == 0


async def test_card_pin_failures_counted_atomically(store: Store) -> None:
    await store.put_card(CARD)
    counts = await asyncio.gather(*(store.add_card_pin_failure(CARD.pan_ref) for _ in range(25)))
    assert sorted(counts) == list(range(1, 26))
    card = await store.get_card(CARD.pan_ref)
    assert card is not None and card.pin_failures == 25


# -- the ledger ------------------------------------------------------------------------------


async def _balance(store: Store) -> int:
    card = await store.get_card(CARD.pan_ref)
    assert card is not None
    return card.balance


async def test_purchase_commits_row_and_balance(store: Store) -> None:
    await store.put_card(CARD)
    purchase = txn("000011")
    new_id = await store.commit_financial(purchase, balance=(CARD.pan_ref, -2500))
    assert isinstance(new_id, int)
    assert await store.get_transaction(new_id) == replace(purchase, id=new_id)
    assert await _balance(store) == 7500  # 10000 - 2500
    assert await store.get_transaction(new_id + 1000) is None


async def test_void_updates_original_with_balance(store: Store) -> None:
    await store.put_card(CARD)
    pid = await store.commit_financial(txn("000011"), balance=(CARD.pan_ref, -2500))
    assert pid is not None
    void = txn("000012", kind=TxnKind.VOID, original_id=pid, remaining=0)
    vid = await store.commit_financial(void, balance=(CARD.pan_ref, 2500), updates=[(pid, TxnStatus.VOIDED, 0)])
    assert vid is not None and vid != pid
    assert await _balance(store) == 10_000
    original = await store.get_transaction(pid)
    assert original is not None and (original.status, original.remaining) == (TxnStatus.VOIDED, 0)
    assert await store.get_transaction(vid) == replace(void, id=vid)


async def test_commit_without_new_row(store: Store) -> None:
    """A reversal: no row of its own, the balance back and the original marked."""
    await store.put_card(CARD)
    pid = await store.commit_financial(txn("000011"), balance=(CARD.pan_ref, -2500))
    assert pid is not None
    reversal = await store.commit_financial(None, balance=(CARD.pan_ref, 2500), updates=[(pid, TxnStatus.REVERSED, 0)])
    assert reversal is None
    original = await store.get_transaction(pid)
    assert original is not None and (original.status, original.remaining) == (TxnStatus.REVERSED, 0)
    assert await _balance(store) == 10_000


async def test_duplicate_stan_applies_nothing(store: Store) -> None:
    await store.put_card(CARD)
    first = await store.commit_financial(txn("000011"), balance=(CARD.pan_ref, -2500))
    assert first is not None
    again = txn("000011", amount=999)
    with pytest.raises(DuplicateTransaction):
        await store.commit_financial(again, balance=(CARD.pan_ref, -999), updates=[(first, TxnStatus.VOIDED, 0)])
    assert await _balance(store) == 7500  # only the first purchase's 2500 left
    kept = await store.get_transaction(first)
    assert kept is not None and (kept.amount, kept.status, kept.remaining) == (2500, TxnStatus.APPROVED, 2500)
    assert await store.find_transaction(T1, "000001", "000011") == kept
    assert await store.last_transaction(T1) == kept


async def test_commit_failing_at_its_last_step_applies_nothing(store: Store) -> None:
    """A remaining amount no 64-bit column holds fails the last statement of the commit: the
    row and the balance before it must go too."""
    await store.put_card(CARD)
    pid = await store.commit_financial(txn("000011"), balance=(CARD.pan_ref, -2500))
    assert pid is not None
    with pytest.raises((StoreError, OverflowError, ValueError)):
        await store.commit_financial(
            txn("000012", kind=TxnKind.REFUND, amount=100, original_id=pid),
            balance=(CARD.pan_ref, 100),
            updates=[(pid, TxnStatus.APPROVED, 2**63)],
        )
    assert await store.find_transaction(T1, "000001", "000012") is None
    assert await _balance(store) == 7500
    original = await store.get_transaction(pid)
    assert original is not None and original.remaining == 2500


async def test_declined_row_holds_its_stan(store: Store) -> None:
    """Every recorded request holds its STAN, a declined one too (it can be reversed)."""
    await store.put_card(CARD)
    await store.commit_financial(txn("000020", status=TxnStatus.DECLINED))
    with pytest.raises(DuplicateTransaction):
        await store.commit_financial(txn("000020"), balance=(CARD.pan_ref, -2500))
    assert await _balance(store) == 10_000


async def test_same_stan_in_other_batch_or_terminal(store: Store) -> None:
    await store.put_card(CARD)
    ids = [
        await store.commit_financial(txn("000011")),
        await store.commit_financial(txn("000011", batch="000002")),
        await store.commit_financial(txn("000011", tid=T2)),
        await store.commit_financial(txn("000011", tid=T3)),
    ]
    assert len({i for i in ids if i is not None}) == 4
    found = await store.find_transaction(T1, "000002", "000011")
    assert found is not None and found.batch == "000002"


async def test_lookups(store: Store) -> None:
    await store.put_card(CARD)
    assert await store.find_transaction(T1, "000001", "000001") is None
    assert await store.last_transaction(T1) is None
    older = await store.commit_financial(txn("000001", kind=TxnKind.PREAUTH, auth_code="123456"))
    await store.commit_financial(txn("000002", auth_code="123456"))  # a purchase with the same code
    newer = await store.commit_financial(txn("000003", kind=TxnKind.PREAUTH, auth_code="123456", batch="000002"))
    await store.commit_financial(txn("000004", tid=T2))
    assert older is not None and newer is not None
    preauth = await store.find_preauth(T1, "123456")
    assert preauth is not None and preauth.id == newer  # the newest pre-authorisation, not the purchase
    assert await store.find_preauth(T1, "999999") is None
    assert await store.find_preauth(T2, "123456") is None
    last = await store.last_transaction(T1)
    assert last is not None and (last.stan, last.batch) == ("000003", "000002")
    first = await store.find_transaction(T1, "000001", "000001")
    assert first is not None and first.id == older


async def test_last_rrn_sequence_is_the_newest_of_that_day_and_worker(store: Store) -> None:
    """What a restarted switch goes on from (Services.resume_rrns): YYDDD, 6 digits, the worker."""
    await store.put_card(CARD)
    assert await store.last_rrn_sequence("26032", 1) == 0
    for stan, rrn in [
        ("000001", "260320000411"),  # worker 1
        ("000002", "260320000071"),  # worker 1, newer: after a wrap the newest is where it goes on
        ("000003", "260320009992"),  # worker 2
        ("000004", "260310005551"),  # worker 1, the day before
        ("000005", "2603200A0081"),  # not six digits: no RRN of this switch's
    ]:
        await store.commit_financial(replace(txn(stan), rrn=rrn))
    assert await store.last_rrn_sequence("26032", 1) == 7
    assert await store.last_rrn_sequence("26032", 2) == 999
    assert await store.last_rrn_sequence("26031", 1) == 555
    assert await store.last_rrn_sequence("26032", 0) == 0
    assert await store.last_rrn_sequence("26033", 1) == 0


async def test_batch_totals(store: Store) -> None:
    await store.put_card(CARD)
    rows = [
        txn("000001", amount=1000),
        txn("000002", amount=2500),
        txn("000003", kind=TxnKind.COMPLETION, amount=400),
        txn("000004", amount=9999, status=TxnStatus.DECLINED),  # declined: not counted
        txn("000005", amount=700, status=TxnStatus.VOIDED),  # voided: not counted
        txn("000006", kind=TxnKind.REFUND, amount=300),
        txn("000007", kind=TxnKind.PREAUTH, amount=5000),  # a hold, not a debit
        txn("000008", kind=TxnKind.BALANCE, amount=0),
        txn("000009", kind=TxnKind.VOID, amount=700),  # a void: not a credit
        txn("000010", amount=8000, batch="000002"),  # another batch
        txn("000011", amount=8000, tid=T2),  # another terminal
    ]
    for row in rows:
        await store.commit_financial(row)
    # debit: 1000 + 2500 + 400 in 3; credit: 300 in 1
    assert await store.batch_totals(T1, "000001") == (3900, 3, 300, 1)
    assert await store.batch_totals(T1, "000003") == (0, 0, 0, 0)


async def test_concurrent_commits_all_durable(store: Store, opener: Opener) -> None:
    await store.put_card(replace(CARD, balance=100_000))
    stans = [f"{n:06d}" for n in range(1, 41)]
    ids = await asyncio.gather(
        *(store.commit_financial(txn(s, amount=250), balance=(CARD.pan_ref, -250)) for s in stans)
    )
    assert len({i for i in ids if i is not None}) == 40
    other = await opener.open()  # what another process (or a restart) reads
    try:
        card = await other.get_card(CARD.pan_ref)
        assert card is not None and card.balance == 90_000  # 100000 - 40 x 250
        for stan in stans:
            found = await other.find_transaction(T1, "000001", stan)
            assert found is not None and found.amount == 250
    finally:
        await other.close()


async def test_concurrent_same_stan_one_wins(store: Store) -> None:
    await store.put_card(CARD)

    async def attempt() -> int | DuplicateTransaction | None:
        try:
            return await store.commit_financial(txn("000077", amount=1000), balance=(CARD.pan_ref, -1000))
        except DuplicateTransaction as exc:
            return exc

    results = await asyncio.gather(*(attempt() for _ in range(8)))
    assert sum(isinstance(r, int) for r in results) == 1
    assert sum(isinstance(r, DuplicateTransaction) for r in results) == 7
    assert await _balance(store) == 9000


# -- IC downloads ----------------------------------------------------------------------------


async def test_ic_versions(store: Store) -> None:
    assert await store.get_ic_version(T1, "capk") is None
    await store.set_ic_version(T1, "capk", "20261201")
    await store.set_ic_version(T1, "aid", "0001")
    await store.set_ic_version(T1, "capk", "20261202")
    assert await store.get_ic_version(T1, "capk") == "20261202"
    assert await store.get_ic_version(T1, "aid") == "0001"
    assert await store.get_ic_version(T2, "capk") is None


# -- operators -------------------------------------------------------------------------------


async def test_operators_round_trip_and_order(store: Store) -> None:
    for op in ("99", "00", "01"):
        await store.put_operator(operator(op))
    await store.put_operator(operator("00", tid=T2))
    assert [o.operator_id for o in await store.list_operators(T1)] == ["00", "01", "99"]
    assert await store.get_operator(T1, "99") == operator("99")
    assert await store.get_operator(T1, "02") is None
    changed = replace(operator("01"), pin_lmk="NEWPIN", enabled=False, locked=True, failures=5)
    await store.put_operator(changed)
    assert await store.get_operator(T1, "01") == changed
    assert await store.list_operators(T3) == []


async def test_operator_failures_counted_atomically_and_lock(store: Store) -> None:
    await store.put_operator(operator("01"))
    after = await asyncio.gather(*(store.add_operator_failure(T1, "01", 3) for _ in range(6)))
    assert sorted(o.failures for o in after if o is not None) == [1, 2, 3, 4, 5, 6]
    assert all(o is not None and o.locked == (o.failures >= 3) for o in after)
    final = await store.get_operator(T1, "01")
    assert final is not None and (final.failures, final.locked) == (6, True)
    assert await store.add_operator_failure(T1, "42", 3) is None  # no such operator


async def test_update_operator_sets_only_the_fields_it_names(store: Store) -> None:
    await store.put_operator(replace(operator("01"), failures=2))
    await store.add_operator_failure(T1, "01", 3)  # another worker's count: 3, locked
    after = await store.update_operator(T1, "01", OperatorChange(enabled=False))
    expected = replace(operator("01"), enabled=False, locked=True, failures=3)
    assert after == expected and await store.get_operator(T1, "01") == expected
    # guarded by the lock: nothing changes, None says so
    assert await store.update_operator(T1, "01", OperatorChange(failures=0), unless_locked=True) is None
    assert await store.get_operator(T1, "01") == expected
    unlocked = await store.update_operator(T1, "01", OperatorChange(pin_lmk="NEWPIN", locked=False, failures=0))
    assert unlocked == replace(operator("01"), pin_lmk="NEWPIN", enabled=False)
    assert await store.update_operator(T1, "01", OperatorChange(enabled=True), unless_locked=True) == replace(
        operator("01"), pin_lmk="NEWPIN"
    )
    assert await store.update_operator(T1, "42", OperatorChange(enabled=False)) is None  # no such operator
    assert await store.get_operator(T1, "42") is None
    assert await store.update_operator(T2, "01", OperatorChange(failures=0)) is None  # another terminal's


async def test_stranger_failures_counted_atomically_and_lock(store: Store) -> None:
    first = await store.add_stranger_failure(T1, "42", 3)
    assert first == OperatorFailures(T1, "42", 1, False)
    after = await asyncio.gather(*(store.add_stranger_failure(T1, "42", 3) for _ in range(5)))
    assert sorted(r.failures for r in after) == [2, 3, 4, 5, 6]
    assert all(r.locked == (r.failures >= 3) for r in after)
    assert await store.get_operator_failures(T1, "42") == OperatorFailures(T1, "42", 6, True)
    assert await store.add_stranger_failure(T2, "42", 1) == OperatorFailures(T2, "42", 1, True)


async def test_operator_failures_put_get_delete(store: Store) -> None:
    assert await store.get_operator_failures(T1, "42") is None
    await store.put_operator_failures(OperatorFailures(T1, "42", 2, False))
    assert await store.get_operator_failures(T1, "42") == OperatorFailures(T1, "42", 2, False)
    await store.put_operator_failures(OperatorFailures(T1, "42", 0, False))
    assert await store.get_operator_failures(T1, "42") == OperatorFailures(T1, "42", 0, False)
    assert await store.delete_operator_failures(T1, "42") is True
    assert await store.delete_operator_failures(T1, "42") is False
    assert await store.get_operator_failures(T1, "42") is None


# -- sessions --------------------------------------------------------------------------------


async def test_session_put_get_delete(store: Store) -> None:
    assert await store.get_session(T1) is None
    signed = session("A")
    await store.put_session(signed)
    assert await store.get_session(T1) == signed
    with_operator = replace(signed, operator_id="01", tdk_lmk="TDK-A")
    await store.put_session(with_operator)
    assert await store.get_session(T1) == with_operator
    assert await store.get_session(T2) is None
    await store.delete_session(T1)
    assert await store.get_session(T1) is None


async def test_count_sessions_counts_the_live_ones_of_every_terminal(store: Store) -> None:
    assert await store.count_sessions(NOW) == 0
    await store.put_session(session("A"))  # expires at NOW + 86,400.5
    await store.put_session(session("B", tid=T2, at=NOW - 86_401))  # ended half a second before NOW
    await store.put_session(session("C", tid=T3, at=NOW + 10))
    assert await store.count_sessions(NOW) == 2  # T1 and T3
    assert await store.count_sessions(NOW - 1) == 3
    await store.put_session(session("A2", operator_id="01"))  # T1 again: still one session
    assert await store.count_sessions(NOW) == 2
    await store.delete_session(T3)
    assert await store.count_sessions(NOW) == 1
    assert await store.count_sessions(NOW + 86_400.5) == 0  # T1's ends at that instant, not after


async def test_key_history_newest_first_keeps_two(store: Store) -> None:
    def issued(keys: str, generation: int, at: float) -> IssuedKeys:
        return IssuedKeys(T1, generation, "003", f"PIK-{keys}", f"MAK-{keys}", None, at)

    assert await store.key_history(T1) == []
    await store.put_session(session("A", at=NOW))
    assert await store.key_history(T1) == [issued("A", 1, NOW)]
    await store.put_session(session("A", at=NOW, operator_id="01"))  # same keys: not a new set
    assert await store.key_history(T1) == [issued("A", 1, NOW)]
    await store.put_session(session("B", at=NOW + 60.25))
    assert await store.key_history(T1) == [issued("B", 2, NOW + 60.25), issued("A", 1, NOW)]
    await store.put_session(session("C", at=NOW + 120.5))
    assert await store.key_history(T1) == [issued("C", 3, NOW + 120.5), issued("B", 2, NOW + 60.25)]
    assert await store.key_history(T2) == []


# -- audit and journal -----------------------------------------------------------------------


async def test_audit_filters(store: Store) -> None:
    a, b, c = audit(100.5, T1), audit(200.25, T2, "55"), audit(300.125, T1)
    for record in (a, b, c):
        await store.add_audit(record)
    assert await store.list_audit() == [a, b, c]
    assert await store.list_audit(terminal=T1.terminal) == [a, c]
    assert await store.list_audit(since=200.25) == [b, c]  # since is inclusive
    assert await store.list_audit(terminal=T1.terminal, since=200.25) == [c]
    assert await store.list_audit(terminal="99999999") == []


async def test_journal_visible_after_flush(store: Store) -> None:
    entries = [
        entry("000001"),
        entry("000001", direction="out", warnings=("field 22: unusual", "field 25: 08")),
        entry("000002", tid=T2),
        entry("000003", tid=T3),
    ]
    for e in entries:
        store.add_journal(e)  # not awaited
    await store.flush()
    listed = await store.list_journal()
    ids = [e.id for e in listed if e.id is not None]
    assert len(ids) == 4 and ids == sorted(set(ids))
    assert listed == [e._replace(id=i) for e, i in zip(entries, ids, strict=True)]
    assert await store.list_journal(last=2) == listed[2:]
    assert await store.list_journal(terminal=T1.terminal) == listed[:2]
    assert await store.list_journal(merchant=T1.merchant) == listed[:3]
    assert await store.list_journal(after=ids[0]) == listed[1:]
    assert await store.list_journal(after=ids[0], last=1) == [listed[1]]
    assert await store.list_journal(terminal=T1.terminal, after=ids[1]) == []


async def test_journal_written_without_flush(store: Store, opener: Opener) -> None:
    """At most 200 ms behind (store.py): another reader sees the entry without anyone flushing."""
    other = await opener.open()
    try:
        start = time.monotonic()
        store.add_journal(entry("000009"))
        seen: list[object] = []
        while time.monotonic() - start < 3.0 and not seen:
            seen = list(await other.list_journal(terminal=T1.terminal))
            if not seen:
                await asyncio.sleep(0.01)
        elapsed = time.monotonic() - start
    finally:
        await other.close()
    assert seen, "the journal entry was not written within 3 s"
    assert elapsed < 0.2 + 0.5, f"written after {elapsed:.3f} s (200 ms allowed, plus a loaded machine's margin)"


async def test_close_writes_the_journal(opener: Opener) -> None:
    first = await opener.open()
    first.add_journal(entry("000005"))
    await first.close()
    second = await opener.open()
    try:
        assert [e.stan for e in await second.list_journal()] == ["000005"]
    finally:
        await second.close()
