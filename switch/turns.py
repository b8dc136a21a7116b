"""One at a time per key, in the order of arrival: the engine's requests of one terminal with
one STAN (switch/engine.py).

Requests are handled side by side (switch/server.py), so two with one key (a repeated STAN, a
reversal behind its original) could otherwise reach the store in either order wherever the
store's reads wait (PostgreSQL): the repeat could commit first and the original be answered 94.
Taking turns per key keeps the first come first decided; requests of other keys never wait.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Turns(Generic[K]):
    """Whoever `take`s a key holds it until `give_back`; later takers wait, first come first."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        # A key is held while it is here; its queue holds the turns of those waiting for it.
        self._waiting: dict[K, deque[asyncio.Future[None]]] = {}

    def held(self, key: K) -> bool:
        return key in self._waiting

    async def take(self, key: K) -> None:
        """Hold ``key``, once everyone who asked for it before has given it back (no wait when
        nobody holds it)."""
        queue = self._waiting.get(key)
        if queue is None:
            self._waiting[key] = deque()
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if not turn.cancelled():  # the key came just as the wait was cancelled: pass it on
                self.give_back(key)
            raise  # a cancelled turn stays queued; give_back skips it

    def give_back(self, key: K) -> None:
        """Hand ``key`` to the next who waits for it, or let it go."""
        queue = self._waiting[key]
        while queue:
            turn = queue.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        del self._waiting[key]
