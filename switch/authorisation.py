"""ISO 8583:1987 authorisation (0100 in the iso87 dialects; docs/iso87.md).

The iso87 dialects exchange no working keys, so there is neither a PIN to verify nor a MAC:
an authorisation is judged on the card alone, against the same test cards the POS day uses:
known and active, not expired (2/35 and 14 agreeing), the amount within the card's limit and
its balance. Nothing is held or booked: the answer says whether the card could pay now, and
moves no money, so a lost answer owes no reversal.
"""

from __future__ import annotations

import secrets
import time

from specs.catalogue import MessageKind
from specs.response import ResponseCode
from switch.cards import card_data, check_card, pan_ref
from switch.context import Exchange, Result, Services
from switch.records import SessionKeys, Terminal

RC = ResponseCode


async def authorise(
    services: Services, ex: Exchange, _kind: MessageKind, _terminal: Terminal, _session: SessionKeys | None
) -> Result:
    message = ex.message
    amount = int(message.get(4) or "0")
    if amount <= 0:
        return Result(RC.INVALID_AMOUNT, reason="amount must be positive")
    data = card_data(message)
    if isinstance(data, ResponseCode):
        return Result(data, reason="card data (2/35/14) missing or inconsistent")
    if 52 in message:
        return Result(RC.INCORRECT_PIN, reason="a PIN block cannot be verified: iso87 exchanges no PIN key")
    card = await services.store.get_card(pan_ref(data.pan))
    today = time.strftime("%y%m", time.localtime(services.clock()))
    refused = check_card(card, data, today)
    if refused is not None or card is None:
        return Result(refused or RC.INVALID_CARD, reason="card refused")
    if card.limit and amount > card.limit:
        return Result(RC.EXCEEDS_AMOUNT_LIMIT, reason="over the card's limit")
    if card.balance < amount:
        return Result(RC.INSUFFICIENT_FUNDS, reason="insufficient funds")
    return Result(RC.APPROVED, {38: f"{secrets.randbelow(1_000_000):06d}"}, reason="authorised, nothing held")
