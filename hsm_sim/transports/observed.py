"""A transport that tells an observer about every host command it carries (specs/observer.py):
the command code, the HSM's error code (or ``transport`` when no answer came) and the time.

It wraps any `HsmTransport`, so the HSM client, the switch's key service and the CLI stay as
they are: the switch wraps its transport once when it has a listener (`serve --metrics-port`).
"""

from __future__ import annotations

import asyncio
import time

from hsm_sim.transports.interface import HsmTransport
from specs.observer import Observer


class ObservedTransport:
    __slots__ = ("_inner", "_observer")

    def __init__(self, inner: HsmTransport, observer: Observer) -> None:
        self._inner = inner
        self._observer = observer

    async def request(self, message: bytes) -> bytes:
        command = message[:2].decode("latin-1")  # a request starts with its command code
        started = time.perf_counter()
        try:
            answer = await self._inner.request(message)
        except asyncio.CancelledError:  # the caller gave up: not a failure of the HSM
            raise
        except Exception:
            self._observer.hsm_command(command, "transport", time.perf_counter() - started)
            raise
        # An answer is its response code (2) then the error code (2) then its fields.
        self._observer.hsm_command(command, answer[2:4].decode("latin-1"), time.perf_counter() - started)
        return answer

    async def close(self) -> None:
        await self._inner.close()
