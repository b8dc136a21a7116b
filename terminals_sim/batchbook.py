"""Booking financial answers in the virtual terminal's own batch (``Ledger``).

An approved answer books the transaction; a decline forgets it; a request that got no answer
it can trust (timeout, reset, bad MAC, an answer it cannot use) is in doubt, and the terminal
owes a reversal for it. A settlement answered 00 closes the batch; 95 starts the batch upload,
whose last item closes it.
"""

from __future__ import annotations

from dataclasses import replace

from specs.message import Message
from terminals_sim import chipflow
from terminals_sim.financial import (
    MOVES_NO_MONEY,
    REVERSAL_KINDS,
    REVERSIBLE_KINDS,
    TRANSACTION_KINDS,
    UPLOAD_KINDS,
    ReversalReason,
    next_batch,
    parse_balance,
    parse_field48,
)
from terminals_sim.outcome import Failure, Kind, Outcome
from terminals_sim.terminalstate import Pending, TerminalState
from terminals_sim.transitions import ANSWERED


def book_no_answer(st: TerminalState, pending: Pending, failure: Failure) -> None:
    """No trustworthy answer came (timeout, reset, bad MAC, unusable answer)."""
    seq = pending.seq
    assert seq is not None
    ledger = st.ledger
    if pending.kind in REVERSAL_KINDS:
        ledger.owe_reversal(seq, pending.reason or ReversalReason.OTHER)
    elif pending.kind in REVERSIBLE_KINDS and failure is not Failure.REFUSED:
        silent = failure in (Failure.TIMEOUT, Failure.RESET)
        reason = ReversalReason.NO_ANSWER if silent else ReversalReason.OTHER
        st.last_transaction = ledger.lose(seq, reason)
    elif pending.kind in TRANSACTION_KINDS:
        # A refused connection sent nothing; a lost balance inquiry moved no money.
        st.last_transaction = ledger.get(seq)
        ledger.forget(seq)


def book(st: TerminalState, pending: Pending, outcome: Outcome, message: Message | None) -> Outcome:
    kind = pending.kind
    if kind is Kind.SETTLEMENT:
        return _book_settlement(st, outcome, message)
    if kind is Kind.IC_UPLOAD_END:
        if message is not None and outcome.response_code in ANSWERED:
            st.ledger.uploaded()
            if st.ledger.next_upload_item is None:
                close_batch(st)
        return outcome
    seq = pending.seq
    assert seq is not None
    ledger = st.ledger
    if outcome.mirrored:
        if kind in TRANSACTION_KINDS:
            ledger.forget(seq)
        return outcome
    if message is None:
        book_no_answer(st, pending, outcome.failure or Failure.PROTOCOL)
        return outcome
    code = outcome.response_code
    if kind in REVERSAL_KINDS:
        if code in ANSWERED:
            st.last_transaction = ledger.reversed(seq) or st.last_transaction
        return outcome
    if kind in UPLOAD_KINDS:
        if code in ANSWERED:
            ledger.uploaded()
            if ledger.next_upload_item is None:
                close_batch(st)
        return outcome
    if kind is Kind.SCRIPT_ADVICE:
        if code in ANSWERED:
            ledger.advised(seq)
        return outcome
    if code != "00":
        st.last_transaction = ledger.decline(seq, code or "")
        ledger.forget(seq)
        return outcome
    balance = None
    if kind is Kind.BALANCE:
        try:
            balance = parse_balance(message.get(54) or "")
        except ValueError as exc:
            ledger.forget(seq)
            return replace(outcome, failure=Failure.PROTOCOL, detail=f"approved balance inquiry: {exc}")
    st.last_transaction = ledger.approve(
        seq, code=code, rrn=message.get(37) or "", auth_code=message.get(38) or "", date=message.get(13) or ""
    )
    if kind in MOVES_NO_MONEY:
        ledger.forget(seq)
        return replace(outcome, balance_cents=balance)
    return outcome


def book_chip(st: TerminalState, pending: Pending, outcome: Outcome, message: Message | None) -> Outcome:
    """A chip transaction's answer: the card decides (terminals_sim/chipflow.py), then the
    batch books it. An approval whose ARPC failed is booked as unanswered: the card declined,
    so the terminal reverses (06) and keeps the record for the IC batch upload (204/206)."""
    seq = pending.seq
    assert seq is not None and pending.chip is not None
    txn = st.ledger.get(seq)
    assert txn.card.chip is not None and txn.chip is not None
    judged, decision, scripts = chipflow.complete(txn.card.chip, pending.chip, outcome, message)
    if decision is None:
        return book(st, pending, judged, message)
    arpc_error = judged.failure is not None
    outcome = book(st, pending, judged, None if arpc_error else message)
    if seq in {t.seq for t in st.ledger}:
        chip = replace(txn.chip, final=decision.final, scripts=scripts, arpc_error=arpc_error)
        updated = st.ledger.update(seq, chip=chip)
        if st.last_transaction is not None and st.last_transaction.seq == seq:
            st.last_transaction = updated
        if scripts:
            st.ledger.owe_advice(seq)
    return outcome


def _book_settlement(st: TerminalState, outcome: Outcome, message: Message | None) -> Outcome:
    code = outcome.response_code
    if message is None or outcome.failure is not None or code not in ("00", "95"):
        return outcome
    try:
        _totals, flag = parse_field48(message.get(48) or "")
    except ValueError as exc:
        return replace(outcome, failure=Failure.PROTOCOL, detail=f"settlement answer: {exc}")
    want = "1" if code == "00" else "2"
    if flag != want:
        return replace(
            outcome, failure=Failure.PROTOCOL, detail=f"48 settlement flag {flag} with 39 = {code}, expected {want}"
        )
    st.ledger.start_uploads(st.batch, balanced=code == "00")
    if st.ledger.next_upload_item is None:
        close_batch(st)
    return outcome


def close_batch(st: TerminalState) -> None:
    st.ledger.close(st.batch)
    st.batch = next_batch(st.batch)
