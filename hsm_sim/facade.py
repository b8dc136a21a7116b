"""Typed async facade over host commands, for the switch.

``HsmTransport`` is the one thing a caller needs to reach an HSM: ``request(message)`` sends
``command code + fields`` and returns ``response code + error code + fields`` (no length prefix,
no message header: a remote transport adds and strips those). ``InProcTransport`` calls a
``Dispatcher`` directly; remote transports live with the servers.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from hsm_sim.dispatcher import Dispatcher


@runtime_checkable
class HsmTransport(Protocol):
    async def request(self, message: bytes) -> bytes:
        """Send one host command, return its response (both without header or length)."""
        ...


class InProcTransport:
    """An HSM in the same process: no I/O, answers synchronously inside the coroutine."""

    __slots__ = ("_dispatcher",)

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    async def request(self, message: bytes) -> bytes:
        return self._dispatcher.handle(message)
