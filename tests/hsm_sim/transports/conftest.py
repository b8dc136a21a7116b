"""The real HSM server on 127.0.0.1, TCP and UDP on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hsm_sim.server import HsmServerConfig, RunningHsm, serve_hsm


@pytest.fixture
async def hsm() -> AsyncIterator[RunningHsm]:
    running = await serve_hsm(HsmServerConfig(port=0, udp_port=0, shutdown_timeout=1.0))
    try:
        yield running
    finally:
        await running.close()
