"""A card's PIN block (52): a wrong PIN, or a block the terminal built wrong, told apart.

The HSM compares the block with the card's PIN (BC) and answers 00 (right), 01 (a valid block
with another PIN) or an error of its own when the block does not decrypt under the session PIK
to a valid block of the announced format: 20 (invalid contents), 23 (format), 24 (PIN length).
An error is a **PIN format error** (39 = 99, sign in again), not a wrong PIN: it does not count
towards the card's PIN tries. Its reason says what was checked, each by the HSM again: the
other PAN part (53.1), the other ISO 9564 formats (1, 3), and the previous sign-in's PIK, and
what matched. The switch sees no PIN and no clear block, and the reason holds neither: only
which checks gave a valid block, and the PIKs' check values and key generations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hsm_sim.client import HsmClient
from hsm_sim.errors import ErrorCode, HsmError
from switch.cards import account12
from switch.context import Services
from switch.records import Card, IssuedKeys, SessionKeys

_TPK = "002"
_ISO0, _ISO1, _ISO3 = "01", "05", "47"
#: HSM answers that mean the block itself is wrong (payShield error codes).
BLOCK_ERRORS = frozenset({ErrorCode.PIN_BLOCK_INVALID, ErrorCode.PIN_BLOCK_FORMAT, ErrorCode.PIN_LENGTH})


@dataclass(frozen=True, slots=True)
class PinFormatError:
    """The block is not what 53 announces: the reason of the 99."""

    reason: str


@dataclass(frozen=True, slots=True)
class _Try:
    """One way of reading the block: under which PIK, as which format, with which account."""

    label: str
    pik_lmk: str
    format_code: str
    account: str
    pin_lmk: str


async def _valid(hsm: HsmClient, attempt: _Try, block: str) -> bool:
    """Whether the block decrypts to a valid block this way (the PIN right or not)."""
    try:
        await hsm.verify_terminal_pin_comparison(
            attempt.pik_lmk, block, attempt.format_code, attempt.account, attempt.pin_lmk
        )
    except HsmError as exc:
        if exc.code in BLOCK_ERRORS:
            return False
        raise
    return True


async def verify(
    services: Services, session: SessionKeys, block: str, pan: str, card: Card, *, without_pan: bool
) -> bool | PinFormatError:
    """True for the right PIN, False for a valid block with a wrong one (55, counted), or the
    PIN format error and its reason (99, not counted)."""
    hsm = services.keys.hsm
    with_pan = _Try("with the PAN", session.pik_lmk, _ISO0, account12(pan), card.pin_lmk)
    no_pan = _Try("without the PAN", session.pik_lmk, _ISO0, "0" * 12, card.pin_lmk_nopan)
    announced, other = (no_pan, with_pan) if without_pan else (with_pan, no_pan)
    try:
        return await hsm.verify_terminal_pin_comparison(
            session.pik_lmk, block, announced.format_code, announced.account, announced.pin_lmk
        )
    except HsmError as exc:
        if exc.code not in BLOCK_ERRORS:
            raise
    history = await services.store.key_history(session.terminal)
    return PinFormatError(await _explain(hsm, block, session, announced, other, history))


async def _explain(
    hsm: HsmClient, block: str, session: SessionKeys, announced: _Try, other: _Try, history: Sequence[IssuedKeys]
) -> str:
    generation = next((str(k.generation) for k in history if k.pik_lmk == session.pik_lmk), "?")
    check = (await hsm.check_value(_TPK, session.pik_lmk))[:8]
    flag = "1" if announced.account == "0" * 12 else "2"
    head = (
        f"PIN format error: 52 is not a valid ISO 9564 format 0 block {announced.label} (53.1 = {flag}) "
        f"under the session's PIK (generation {generation}, check value {check}); not counted as a wrong PIN"
    )
    checked: list[str] = []
    matched: str | None = None
    if await _valid(hsm, other, block):
        matched = f"it is a valid format 0 block {other.label}: 53.1 does not say how the terminal built it"
    checked.append(f"format 0 {other.label}: {'valid' if matched else 'not valid'}")
    for code, name in ((_ISO1, "1"), (_ISO3, "3")):
        as_format = _Try(f"format {name}", session.pik_lmk, code, announced.account, announced.pin_lmk)
        valid = await _valid(hsm, as_format, block)
        checked.append(f"format {name}: {'valid' if valid else 'not valid'}")
        if valid and matched is None:
            matched = f"it is an ISO 9564 format {name} block: the terminal does not build format 0"
    previous = next((k for k in history if k.pik_lmk != session.pik_lmk), None)
    if previous is not None:
        under_old = _Try("previous", previous.pik_lmk, _ISO0, announced.account, announced.pin_lmk)
        valid = await _valid(hsm, under_old, block)
        checked.append(
            f"under the previous sign-in's PIK (generation {previous.generation}): {'valid' if valid else 'not valid'}"
        )
        if valid and matched is None:
            matched = (
                f"it is a valid block under the previous sign-in's PIK (generation {previous.generation}): "
                "the terminal did not load the keys of its last sign-in"
            )
    else:
        checked.append("no previous sign-in's PIK to try")
    conclusion = matched or f"nothing matched: compare the terminal's PIK with check value {check}"
    return f"{head}; checked {', '.join(checked)}; {conclusion}"
