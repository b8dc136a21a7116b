"""Bulk registration for load runs: N terminals with TMKs both sides derive from a shared seed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from switch.app import build_services, register_terminal
from switch.config import SwitchConfig
from switch.context import Services


async def provision_into(services: Services, plan: Sequence[tuple[str, str, bytes]]) -> int:
    """Register every (merchant, terminal, clear TMK) of ``plan``; returns how many."""
    for merchant, terminal, tmk in plan:
        await register_terminal(services, merchant, terminal, tmk)
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
