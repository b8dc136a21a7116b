"""Bulk registration for load runs: N terminals with TMKs both sides derive from a shared seed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from switch.app import build_services, register_terminal
from switch.cards import add_card, pan_ref
from switch.config import SwitchConfig
from switch.context import Services
from switch.records import CardStatus
from terminals_sim.testcards import DEFAULT_TEST_CARDS


async def provision_into(services: Services, plan: Sequence[tuple[str, str, bytes]]) -> int:
    """Register every (merchant, terminal, clear TMK) of ``plan`` and the shared test cards the
    fleet presents (terminals_sim.testcards); returns how many terminals."""
    for merchant, terminal, tmk in plan:
        await register_terminal(services, merchant, terminal, tmk)
    for card in DEFAULT_TEST_CARDS:
        if services.store.get_card(pan_ref(card.pan)) is None:
            await add_card(
                services,
                card.pan,
                card.expiry,
                card.pin,
                card.balance_cents,
                card.limit_cents,
                card.service_code,
                CardStatus(card.status.value),
            )
    return len(plan)


def provision(db_path: str, plan: Sequence[tuple[str, str, bytes]], hsm: str = "inproc") -> int:
    """The hook `switchsim fleet --provision --db PATH` calls."""

    async def go() -> int:
        services = build_services(replace(SwitchConfig(), db=db_path, hsm=hsm))
        try:
            return await provision_into(services, plan)
        finally:
            services.store.close()

    return asyncio.run(go())
