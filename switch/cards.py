"""Test cards: registration (PIN straight to the HSM) and the checks a request's card must pass.

The store never holds a PAN: cards are found by a fingerprint of the PAN and shown 6+4.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from specs.masking import mask_pan
from specs.message import Message
from specs.response import ResponseCode
from specs.track2 import parse_track2
from switch.config import card_problem, chip_problem
from switch.context import Services
from switch.records import AuditEvent, AuditRecord, Card, CardStatus
from switch.store import StoreError

# Fixed, public salt: the fingerprint keeps PANs out of the store and its dumps; it is not
# meant to resist brute force over the (small) space of test PANs.
_SALT = b"switchsim-pan-ref-v1"
KEY_TYPE_IMK_AC = "109"  # the issuer master key for application cryptograms, LMK pair 28-29 variant 1


def pan_ref(pan: str) -> str:
    return hashlib.sha256(_SALT + pan.encode("ascii")).hexdigest()[:32]


def account12(pan: str) -> str:
    """The 12 right-most PAN digits excluding the check digit (the PIN block account field)."""
    return pan[-13:-1].rjust(12, "0")


@dataclass(frozen=True, slots=True, repr=False)
class ChipKey:
    """A chip card's issuer key for cryptograms (IMK-AC) in clear, and its PAN sequence number:
    what `switchsim card add --chip` is given. The key goes straight to the HSM."""

    imk_ac: bytes
    psn: str = "01"

    def __repr__(self) -> str:
        return f"ChipKey(psn={self.psn})"


async def add_card(
    services: Services,
    pan: str,
    expiry: str,
    pin: str,
    balance: int,
    limit: int = 0,
    service_code: str = "201",
    status: CardStatus = CardStatus.ACTIVE,
    *,
    chip: ChipKey | None = None,
) -> Card:
    """Register (or replace) a test card; the PIN and a chip card's IMK-AC go straight to the
    HSM, and only their LMK-encrypted forms are kept."""
    problem = card_problem(pan, expiry, pin, balance, limit, service_code, status.value)
    if problem is None and chip is not None:
        problem = chip_problem(True, chip.imk_ac, chip.psn)
    if problem is not None:
        raise ValueError(f"card {problem[0]} {problem[1]}")
    imk_ac_lmk = ""
    if chip is not None:
        imk_ac_lmk, _kcv = await services.keys.import_clear_key(KEY_TYPE_IMK_AC, chip.imk_ac)
    card = Card(
        pan_ref=pan_ref(pan),
        pan_masked=mask_pan(pan),
        expiry=expiry,
        service_code=service_code,
        pin_lmk=await services.keys.encrypt_pin(pin, account12(pan)),
        pin_lmk_nopan=await services.keys.encrypt_pin(pin, "0" * 12),
        balance=balance,
        limit=limit,
        status=status,
        imk_ac_lmk=imk_ac_lmk,
        psn=chip.psn if chip is not None else "",
    )
    await services.store.put_card(card)
    return card


@dataclass(frozen=True, slots=True)
class CardData:
    """What the request says about its card (2 and/or 35, 14)."""

    pan: str
    expiry: str | None

    def __repr__(self) -> str:
        return f"CardData({mask_pan(self.pan)})"


def card_data(message: Message) -> CardData | ResponseCode:
    """PAN and expiry from 2/35/14; 14 when they disagree, 30 when there is no card at all."""
    track = message.get(35)
    pan = message.get(2)
    expiry = message.get(14)
    if track is not None:
        parts = parse_track2(track)  # `=` or `D` as separator
        if parts is None:
            return ResponseCode.FORMAT_ERROR
        if pan is not None and pan != parts.pan:
            return ResponseCode.INVALID_CARD
        pan = parts.pan
        if expiry is not None and parts.expiry is not None and expiry != parts.expiry:
            return ResponseCode.INVALID_CARD
        expiry = expiry or parts.expiry
    if pan is None:
        return ResponseCode.FORMAT_ERROR
    return CardData(pan, expiry)


def check_card(card: Card | None, data: CardData, today_yymm: str) -> ResponseCode | None:
    if card is None or card.status is CardStatus.BLOCKED:
        return ResponseCode.INVALID_CARD
    if data.expiry is not None and data.expiry != card.expiry:
        return ResponseCode.INVALID_CARD
    if card.expiry < today_yymm:
        return ResponseCode.EXPIRED_CARD
    return None


def pin_locked(services: Services, card: Card) -> bool:
    """Whether the card's wrong PINs reached the limit (answered 75 until unlocked)."""
    return card.pin_failures >= services.config.max_operator_failures


async def unlock_card(services: Services, pan: str) -> Card:
    """Clear a test card's wrong-PIN count (`switchsim card unlock`); audited."""
    card = await services.store.get_card(pan_ref(pan))
    if card is None:
        raise StoreError(f"no card {mask_pan(pan)}")
    await services.store.set_card_pin_failures(card.pan_ref, 0)
    reason = f"card {card.pan_masked}: {card.pin_failures} wrong PINs cleared"
    await services.store.add_audit(AuditRecord(time.time(), AuditEvent.CARD_UNLOCKED, "", "", "", "cli", "ok", reason))
    return card
