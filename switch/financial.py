"""Financial messages (docs/financial.md): purchase, balance, void, refund, pre-authorisation and
completion, reversal, settlement and batch upload.

Each handler decides, then commits the transaction, the balance change and any update of an
original in one store transaction, before the engine sends the answer: an approval a terminal
has seen is on disk. The switch never sees a PIN: the HSM compares the PIN block (BC). Which
request is which operation, and that voids and refunds need the supervisor, is the message
catalogue's (specs/dialects/cup-pos.messages.toml; switch/routes.py applies it).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from enum import StrEnum

from specs.catalogue import MessageKind
from specs.masking import mask_pan
from specs.response import ResponseCode
from switch import chip, pindiag
from switch.cards import CardData, card_data, check_card, pan_ref
from switch.context import Exchange, Result, Services
from switch.records import Card, SessionKeys, Terminal, Transaction, TxnKind, TxnStatus
from switch.store import DuplicateTransaction

RC = ResponseCode


class Op(StrEnum):
    """The financial kinds this module serves, by their catalogue names (cup-pos.messages.toml)."""

    PURCHASE = "purchase"
    BALANCE = "balance"
    VOID = "void"
    REFUND = "refund"
    PREAUTH = "preauth"
    COMPLETION = "completion"
    REVERSAL = "reversal"
    SETTLEMENT = "settlement"
    BATCH_UPLOAD = "batch_upload"


async def handle(
    op: Op, services: Services, ex: Exchange, terminal: Terminal, session: SessionKeys, kind: MessageKind | None = None
) -> Result:
    t = _Txn(services, ex, terminal, session, op)
    try:
        if kind is not None and kind.icc is not None:
            return await _chip(t, kind)
        return await _HANDLERS[op](t)
    except DuplicateTransaction:
        # Another request with this STAN was committed first, by this process or another
        # sharing the store, after the check in _card_checks: the store's unique STAN settles it.
        return _duplicate(t)


def _duplicate(t: _Txn) -> Result:
    return Result(RC.DUPLICATE_TRANSACTION, reason=f"STAN {t.stan} already used in batch {t.batch}")


# What each operation records when a chip request is declined before its business is looked at.
_RECORDED = {
    Op.PURCHASE: TxnKind.PURCHASE,
    Op.BALANCE: TxnKind.BALANCE,
    Op.VOID: TxnKind.VOID,
    Op.REFUND: TxnKind.REFUND,
    Op.PREAUTH: TxnKind.PREAUTH,
}


async def _chip(t: _Txn, kind: MessageKind) -> Result:
    """A chip request (docs/chip.md): 55 read against the kind's list, then for a kind with an
    ARQC the cryptogram verified before the business, and 91 for the answer's code after it."""
    objects = chip.read_icc(t.message, kind)
    if isinstance(objects, Result):
        return objects
    handler = _HANDLERS[t.op]
    if not kind.arqc:
        return await handler(t)
    data = card_data(t.message)
    card = await t.services.store.get_card(pan_ref(data.pan)) if isinstance(data, CardData) else None
    if card is None or not isinstance(data, CardData):
        return await handler(t)  # no card to check the ARQC with: the card checks decline it
    if not card.chip:
        code = ResponseCode(t.services.config.arqc_failure_code)
        return await t.decline(_RECORDED[t.op], code, data, "ARQC not checked: the card has no chip profile (IMK-AC)")
    check = await chip.check_arqc(t.services, t.message, card, data.pan, objects)
    if isinstance(check, Result):
        return check
    refused = chip.refusal(t.services, check)
    if refused is not None:
        result = await t.decline(_RECORDED[t.op], refused[0], data, refused[1])
    else:
        result = await handler(t)
    return await chip.with_arpc(t.services, check, result)


class _Txn:
    """One financial request being decided: the parts every handler needs."""

    def __init__(self, services: Services, ex: Exchange, terminal: Terminal, session: SessionKeys, op: Op) -> None:
        self.services, self.ex, self.terminal, self.session, self.op = services, ex, terminal, session, op
        self.message = ex.message
        self.batch = ex.message.sub("60.2") or terminal.batch
        self.stan = ex.message.get(11) or ""
        self.now = services.clock()
        self.date = time.strftime("%m%d", time.localtime(self.now))

    @property
    def amount(self) -> int:
        value = self.message.get(4)
        return int(value) if value else 0

    def record(
        self,
        kind: TxnKind,
        code: ResponseCode,
        data: CardData | None,
        *,
        amount: int | None = None,
        original: Transaction | None = None,
        remaining: int = 0,
    ) -> Transaction:
        approved = code is RC.APPROVED
        return Transaction(
            merchant=self.ex.tid.merchant,
            terminal=self.ex.tid.terminal,
            batch=self.batch,
            stan=self.stan,
            kind=kind,
            mti=self.message.mti,
            processing_code=self.message.get(3) or "",
            amount=self.amount if amount is None else amount,
            pan_ref=pan_ref(data.pan) if data else "",
            pan_masked=mask_pan(data.pan) if data else "",
            response_code=code.value,
            status=TxnStatus.APPROVED if approved else TxnStatus.DECLINED,
            rrn=self.services.next_rrn(),
            auth_code=f"{secrets.randbelow(1_000_000):06d}" if approved else "",
            date=self.date,
            time=self.now,
            original_id=original.id if original else None,
            remaining=remaining if approved else 0,
        )

    def answer(self, txn: Transaction, reason: str = "", **fields: str) -> Result:
        out = {37: txn.rrn, 15: self.date, 32: self.services.config.acquirer_id}
        if txn.auth_code:
            out[38] = txn.auth_code
        out.update({int(k[1:]): v for k, v in fields.items()})
        return Result(ResponseCode(txn.response_code), out, reason=reason or txn.kind.value)

    async def decline(self, kind: TxnKind, code: ResponseCode, data: CardData | None, reason: str) -> Result:
        """A declined request is recorded too: it holds its STAN and can be reversed (a no-op)."""
        txn = self.record(kind, code, data)
        await self.services.store.commit_financial(txn)
        return self.answer(txn, reason)


_TODAY: Callable[[float], str] = lambda now: time.strftime("%y%m", time.localtime(now))  # noqa: E731


async def _card_checks(t: _Txn, kind: TxnKind, *, pin_required: bool) -> tuple[CardData, Card] | Result:
    """Card data, duplicate STAN, card state and PIN, in the order a host checks them."""
    data = card_data(t.message)
    if isinstance(data, ResponseCode):
        return Result(data, reason="card data (2/35/14) missing or inconsistent")
    if await t.services.store.find_transaction(t.ex.tid, t.batch, t.stan) is not None:
        return _duplicate(t)
    card = await t.services.store.get_card(pan_ref(data.pan))
    refused = check_card(card, data, _TODAY(t.now))
    if refused is not None or card is None:
        return await t.decline(kind, refused or RC.INVALID_CARD, data, "card refused")
    swiped = chip.swiped_chip_card(t.message)
    if swiped is not None:
        return await t.decline(kind, RC.USE_CHIP, data, swiped)
    block = t.message.get(52)
    if block is None:
        if pin_required:
            return await t.decline(kind, RC.INCORRECT_PIN, data, "PIN required")
        return data, card
    max_tries = t.services.config.max_operator_failures
    if card.pin_failures >= max_tries:
        return await t.decline(kind, RC.PIN_TRIES_EXCEEDED, data, "card PIN tries exceeded")
    without_pan = (t.message.sub("53.1") or "2") == "1"
    # A block that is not what 53 announces is a PIN format error (99), not a wrong PIN: it
    # does not count towards the card's PIN tries (switch/pindiag.py).
    good = await pindiag.verify(t.services, t.session, block, data.pan, card, without_pan=without_pan)
    if isinstance(good, pindiag.PinFormatError):
        return (await t.decline(kind, RC.PIN_FORMAT_ERROR, data, good.reason))._replace(sign_in_again=True)
    if good:
        if card.pin_failures:
            await t.services.store.set_card_pin_failures(card.pan_ref, 0)
        return data, card
    # Counted in the store, so that workers sharing it count one card's tries together.
    failures = await t.services.store.add_card_pin_failure(card.pan_ref)
    code = RC.PIN_TRIES_EXCEEDED if failures >= max_tries else RC.INCORRECT_PIN
    return await t.decline(kind, code, data, f"wrong PIN ({failures})")


async def _debit(t: _Txn, kind: TxnKind) -> Result:
    """Purchase and pre-authorisation: the amount leaves the balance (a pre-auth holds it)."""
    if t.amount <= 0:
        return Result(RC.INVALID_AMOUNT, reason="amount must be positive")
    checked = await _card_checks(t, kind, pin_required=False)
    if isinstance(checked, Result):
        return checked
    data, card = checked
    if card.limit and t.amount > card.limit:
        return await t.decline(kind, RC.EXCEEDS_AMOUNT_LIMIT, data, "over the card's limit")
    if card.balance < t.amount:
        return await t.decline(kind, RC.INSUFFICIENT_FUNDS, data, "insufficient funds")
    txn = t.record(kind, RC.APPROVED, data, remaining=t.amount)
    await t.services.store.commit_financial(txn, balance=(card.pan_ref, -t.amount))
    return t.answer(txn)


async def _purchase(t: _Txn) -> Result:
    return await _debit(t, TxnKind.PURCHASE)


async def _preauth(t: _Txn) -> Result:
    return await _debit(t, TxnKind.PREAUTH)


async def _balance(t: _Txn) -> Result:
    checked = await _card_checks(t, TxnKind.BALANCE, pin_required=True)
    if isinstance(checked, Result):
        return checked
    data, card = checked
    txn = t.record(TxnKind.BALANCE, RC.APPROVED, data, amount=0)
    await t.services.store.commit_financial(txn)
    sign = "C" if card.balance >= 0 else "D"
    return t.answer(txn, f54=f"1002156{sign}{abs(card.balance):012d}")


async def _original_by_61(t: _Txn) -> Transaction | None:
    batch, stan = t.message.sub("61.1"), t.message.sub("61.2")
    if not batch or not stan:
        return None
    return await t.services.store.find_transaction(t.ex.tid, batch, stan)


async def _void(t: _Txn) -> Result:
    checked = await _card_checks(t, TxnKind.VOID, pin_required=False)
    if isinstance(checked, Result):
        return checked
    data, card = checked
    original = await _original_by_61(t)
    if original is None or original.kind is not TxnKind.PURCHASE or original.status is not TxnStatus.APPROVED:
        return await t.decline(TxnKind.VOID, RC.ORIGINAL_NOT_FOUND, data, "no approved purchase at 61")
    if original.pan_ref != card.pan_ref or original.amount != t.amount:
        return await t.decline(TxnKind.VOID, RC.INVALID_AMOUNT, data, "card or amount differ from the original")
    txn = t.record(TxnKind.VOID, RC.APPROVED, data, original=original)
    assert original.id is not None
    await t.services.store.commit_financial(
        txn, balance=(card.pan_ref, original.amount), updates=[(original.id, TxnStatus.VOIDED, 0)]
    )
    return t.answer(txn)


async def _refund(t: _Txn) -> Result:
    if t.amount <= 0:
        return Result(RC.INVALID_AMOUNT, reason="amount must be positive")
    checked = await _card_checks(t, TxnKind.REFUND, pin_required=False)
    if isinstance(checked, Result):
        return checked
    data, card = checked
    original = await _original_by_61(t)
    refundable = (TxnKind.PURCHASE, TxnKind.COMPLETION)
    if original is None or original.kind not in refundable or original.status is not TxnStatus.APPROVED:
        return await t.decline(TxnKind.REFUND, RC.ORIGINAL_NOT_FOUND, data, "no approved purchase at 61")
    if original.pan_ref != card.pan_ref or t.amount > original.remaining:
        return await t.decline(TxnKind.REFUND, RC.INVALID_AMOUNT, data, "more than is left to refund")
    txn = t.record(TxnKind.REFUND, RC.APPROVED, data, original=original)
    assert original.id is not None
    await t.services.store.commit_financial(
        txn,
        balance=(card.pan_ref, t.amount),
        updates=[(original.id, TxnStatus.APPROVED, original.remaining - t.amount)],
    )
    return t.answer(txn)


async def _completion(t: _Txn) -> Result:
    if t.amount <= 0:
        return Result(RC.INVALID_AMOUNT, reason="amount must be positive")
    checked = await _card_checks(t, TxnKind.COMPLETION, pin_required=False)
    if isinstance(checked, Result):
        return checked
    data, card = checked
    auth = t.message.get(38) or ""
    preauth = await t.services.store.find_preauth(t.ex.tid, auth) if auth else None
    if preauth is None or preauth.status is not TxnStatus.APPROVED or preauth.pan_ref != card.pan_ref:
        return await t.decline(TxnKind.COMPLETION, RC.ORIGINAL_NOT_FOUND, data, "no open pre-authorisation for 38")
    if t.amount > preauth.remaining:
        return await t.decline(TxnKind.COMPLETION, RC.INVALID_AMOUNT, data, "more than was pre-authorised")
    txn = t.record(TxnKind.COMPLETION, RC.APPROVED, data, original=preauth, remaining=t.amount)
    assert preauth.id is not None
    # The hold already left the balance; completing for less gives the difference back.
    await t.services.store.commit_financial(
        txn,
        balance=(card.pan_ref, preauth.remaining - t.amount),
        updates=[(preauth.id, TxnStatus.COMPLETED, 0)],
    )
    return t.answer(txn)


async def _reversal(t: _Txn) -> Result:
    store = t.services.store
    original = await store.find_transaction(t.ex.tid, t.batch, t.stan)
    if original is None or (t.message.get(4) is not None and original.amount != t.amount):
        code = ResponseCode(t.services.config.unknown_reversal)
        return Result(code, {15: t.date}, reason="reversal of an unknown original")
    if original.status in (TxnStatus.REVERSED, TxnStatus.DECLINED, TxnStatus.VOIDED, TxnStatus.COMPLETED):
        return Result(RC.APPROVED, {15: t.date}, reason=f"nothing to reverse ({original.status.value})")
    assert original.id is not None
    updates: list[tuple[int, TxnStatus, int]] = [(original.id, TxnStatus.REVERSED, 0)]
    delta = 0
    match original.kind:
        case TxnKind.PURCHASE | TxnKind.COMPLETION:
            delta = original.amount
        case TxnKind.PREAUTH:
            delta = original.remaining
        case TxnKind.VOID | TxnKind.REFUND:
            delta = -original.amount
            parent = await store.get_transaction(original.original_id) if original.original_id else None
            if parent is not None and parent.id is not None:
                if original.kind is TxnKind.VOID:
                    updates.append((parent.id, TxnStatus.APPROVED, parent.amount))
                else:
                    updates.append((parent.id, parent.status, parent.remaining + original.amount))
        case TxnKind.BALANCE:
            delta = 0
    await store.commit_financial(None, balance=(original.pan_ref, delta) if delta else None, updates=updates)
    return Result(RC.APPROVED, {15: t.date}, reason=f"reversed {original.kind.value}")


def _totals_field(totals: tuple[int, int, int, int], flag: str) -> str:
    debit_amount, debit_count, credit_amount, credit_count = totals
    return f"{debit_amount:012d}{debit_count:03d}{credit_amount:012d}{credit_count:03d}{flag}"


async def _settlement(t: _Txn) -> Result:
    field48 = t.message.get(48) or ""
    if len(field48) < 31 or not field48[:31].isdigit():
        return Result(RC.FORMAT_ERROR, reason="48 must start with 31 digits of totals")
    theirs = (int(field48[0:12]), int(field48[12:15]), int(field48[15:27]), int(field48[27:30]))
    ours = await t.services.store.batch_totals(t.ex.tid, t.batch)
    if theirs != ours:
        return Result(RC.RECONCILIATION_ERROR, {48: _totals_field(theirs, "2"), 15: t.date}, reason="totals differ")
    next_batch = f"{int(t.batch) % 999999 + 1:06d}"
    await t.services.store.set_terminal_batch(t.ex.tid, next_batch)
    return Result(RC.APPROVED, {48: _totals_field(theirs, "1"), 15: t.date}, reason=f"batch {t.batch} closed")


async def _batch_upload(t: _Txn) -> Result:
    original = await t.services.store.find_transaction(t.ex.tid, t.batch, t.stan)
    if original is None or original.status is not TxnStatus.APPROVED or original.amount != t.amount:
        return Result(RC.ORIGINAL_NOT_FOUND, reason="no such approved transaction in the batch")
    return Result(RC.APPROVED, {15: t.date}, reason="uploaded transaction matches the journal")


_HANDLERS = {
    Op.PURCHASE: _purchase,
    Op.BALANCE: _balance,
    Op.VOID: _void,
    Op.REFUND: _refund,
    Op.PREAUTH: _preauth,
    Op.COMPLETION: _completion,
    Op.REVERSAL: _reversal,
    Op.SETTLEMENT: _settlement,
    Op.BATCH_UPLOAD: _batch_upload,
}
