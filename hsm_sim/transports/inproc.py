"""An HSM in the same process: the dispatcher called directly, no I/O."""

from __future__ import annotations

from hsm_sim.dispatcher import Dispatcher


class InProcTransport:
    """Answers synchronously inside the coroutine."""

    __slots__ = ("_dispatcher",)

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    async def request(self, message: bytes) -> bytes:
        return self._dispatcher.handle(message)

    async def close(self) -> None:
        """Nothing to release: the dispatcher holds no connection, and one transport may serve
        several switches in turn (a test restarting its switch)."""
