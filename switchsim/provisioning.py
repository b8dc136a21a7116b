"""Provisioning a switch store from the command line: what `switchsim fleet --provision` and
`switchsim demo` run before any traffic."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from switch.app import build_services
from switch.config import SwitchConfig
from switch.provisioning import provision_into


def provision(db_path: str, plan: Sequence[tuple[str, str, bytes]], hsm: str = "inproc") -> int:
    """Register every (merchant, terminal, clear TMK) of ``plan`` and the shared test cards in
    the store at ``db_path``, through the HSM ``hsm`` names; returns how many terminals."""

    async def go() -> int:
        services = build_services(replace(SwitchConfig(), db=db_path, hsm=hsm))
        try:
            return await provision_into(services, plan)
        finally:
            services.store.close()
            await services.keys.hsm.close()

    return asyncio.run(go())
