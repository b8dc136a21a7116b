"""The terminals signed in, for the observer (`serve --metrics-port`): counted in the store, not
by the process that served them.

Several processes may share a store (`serve --workers`, two hosts on one PostgreSQL), and a
terminal that signs in on one may buy on another and sign off on a third: no process can count
it alone, and adding up what each one had seen counted that terminal twice, and still after its
sign-off. The store holds every session with its end (switch/store.py, `count_sessions`), so each
process reads the same figure from it, once a `PERIOD`, and a session that expired drops out
without a request to end it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from specs.logs import get_logger
from specs.observer import Observer
from switch.store import Store

_log = get_logger("switch")

PERIOD = 1.0  # seconds between two counts: the metrics processes sync once a second too


class SignedInCount:
    """Reads the store's count every ``period`` seconds and tells the observer, until `close`.
    A count that fails (a database gone away) is logged once, and once more when counting
    works again; the last figure stands meanwhile."""

    def __init__(self, store: Store, observer: Observer, clock: Callable[[], float], period: float = PERIOD) -> None:
        self._store, self._observer, self._clock, self._period = store, observer, clock, period
        self._task = asyncio.get_running_loop().create_task(self._run(), name="signed-in-count")

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                count = await self._store.count_sessions(self._clock())
            except Exception as exc:  # the database's own errors too: a count must not stop counting
                if not failing:
                    _log.warning("signed_in_count_failed", error=type(exc).__name__, reason=str(exc))
                failing = True
            else:
                if failing:
                    _log.info("signed_in_count_resumed")
                failing = False
                self._observer.terminals_signed_in(count)
            await asyncio.sleep(self._period)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
