"""Bulk registration for load runs: N terminals with TMKs both sides derive from a shared seed,
and the shared test cards. `switchsim fleet --provision` and `switchsim demo` call it
(switchsim/provisioning.py)."""

from __future__ import annotations

from collections.abc import Sequence

from hsm_sim.testkeys import DEFAULT_SEED, derive_imk_ac
from specs.testcards import DEFAULT_TEST_CARDS
from switch.app import register_terminal
from switch.cards import ChipKey, add_card, pan_ref
from switch.context import Services
from switch.records import CardStatus


async def provision_into(
    services: Services, plan: Sequence[tuple[str, str, bytes]], seed: str = DEFAULT_SEED
) -> int:
    """Register every (merchant, terminal, clear TMK) of ``plan`` and the shared test cards the
    fleet presents (specs/testcards.py; a chip one's IMK-AC derived from ``seed``); returns how
    many terminals."""
    for merchant, terminal, tmk in plan:
        await register_terminal(services, merchant, terminal, tmk)
    for card in DEFAULT_TEST_CARDS:
        if await services.store.get_card(pan_ref(card.pan)) is None:
            await add_card(
                services,
                card.pan,
                card.expiry,
                card.pin,
                card.balance_cents,
                card.limit_cents,
                card.service_code,
                CardStatus(card.status.value),
                chip=ChipKey(derive_imk_ac(seed, card.pan), card.psn) if card.chip else None,
            )
    return len(plan)
