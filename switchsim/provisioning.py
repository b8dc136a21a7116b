"""Provisioning a switch store from the command line: what `switchsim fleet --provision` and
`switchsim demo` run before any traffic."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from hsm_sim.testkeys import DEFAULT_SEED
from switch.app import build_services
from switch.config import SwitchConfig
from switch.provisioning import provision_into
from switch.storeurl import open_store


def provision(
    db_path: str, plan: Sequence[tuple[str, str, bytes]], hsm: str = "inproc", seed: str = DEFAULT_SEED
) -> int:
    """Register every (merchant, terminal, clear TMK) of ``plan`` and the shared test cards in
    the store at ``db_path``, through the HSM ``hsm`` names (a chip card's IMK-AC derived from
    ``seed``, as the fleet derives it); returns how many terminals."""

    async def go() -> int:
        store = await open_store(db_path)
        services = build_services(replace(SwitchConfig(), db=db_path, hsm=hsm), store)
        try:
            return await provision_into(services, plan, seed)
        finally:
            await services.store.close()
            await services.keys.hsm.close()

    return asyncio.run(go())
