"""Observation: the one small interface the switch, the HSM and the fleet report what they do to.

The engine, the servers and the fleet call an ``Observer`` at the few moments worth counting (an
exchange done, a connection opened or closed, an HSM command timed, a store commit timed, journal
entries dropped, a rule fired, a framing or format error); whoever listens (Prometheus metrics in
specs/metrics.py, a Locust adapter, a test) implements the methods it cares about by subclassing
``NullObserver``.
The hot path holds one observer and never asks who is behind it; ``Observers`` fans out to
several.

Every argument is a bounded vocabulary (a message kind, a response or error code, a command
code, a failure kind, a close reason) or a duration in seconds, so an observer can use them as
metric labels. ``reason`` and ``detail`` texts are for people (the latest refusals) and never
carry a key, a PIN or a full PAN: they are the texts the components already log.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol


class Observer(Protocol):
    """What the switch, the HSM and the fleet tell whoever listens."""

    def exchange_done(self, kind: str, code: str, seconds: float, failure: str = "", reason: str = "") -> None:
        """One request answered (switch, fleet) or given up on (fleet: ``failure`` says why).
        ``code`` is field 39, "" when there is none."""

    def connection_opened(self) -> None:
        """A connection accepted (servers) or opened (fleet)."""

    def connection_closed(self, reason: str) -> None:
        """A connection gone, and why (``closed``, ``reset``, ``idle``, ``framing``, ...)."""

    def connection_refused(self, reason: str) -> None:
        """A connection turned away at once (``max_connections``)."""

    def hsm_command(self, command: str, error: str, seconds: float) -> None:
        """One host command answered: by the HSM (its server) or to the switch (its client).
        ``error`` is the 2-digit error code, or ``transport`` when no answer came."""

    def store_commit(self, seconds: float) -> None:
        """One transaction committed to the store."""

    def journal_dropped(self, count: int) -> None:
        """Journal entries the store dropped because its queue was full (the answers were sent)."""

    def rule_fired(self, rule: str, action: str) -> None:
        """A response rule decided a request (``rule`` is its name from the rules file)."""

    def wire_error(self, layer: str) -> None:
        """A frame that could not be read (``framing``) or a message that could not be decoded
        (``format``)."""

    def terminals_signed_in(self, count: int) -> None:
        """The terminals signed in now: live sessions in the store, counted there (every process
        sharing the store reads the same figure; switch/signedin.py)."""


class NullObserver:
    """Listens to nothing; subclass it and override what you count."""

    __slots__ = ()

    def exchange_done(self, kind: str, code: str, seconds: float, failure: str = "", reason: str = "") -> None:
        pass

    def connection_opened(self) -> None:
        pass

    def connection_closed(self, reason: str) -> None:
        pass

    def connection_refused(self, reason: str) -> None:
        pass

    def hsm_command(self, command: str, error: str, seconds: float) -> None:
        pass

    def store_commit(self, seconds: float) -> None:
        pass

    def journal_dropped(self, count: int) -> None:
        pass

    def rule_fired(self, rule: str, action: str) -> None:
        pass

    def wire_error(self, layer: str) -> None:
        pass

    def terminals_signed_in(self, count: int) -> None:
        pass


#: The observer of a component nobody listens to.
NULL_OBSERVER: Observer = NullObserver()


class Observers(NullObserver):
    """Several observers behind one: each event goes to all of them, in order."""

    __slots__ = ("_all",)

    def __init__(self, observers: Iterable[Observer]) -> None:
        self._all = tuple(observers)

    def exchange_done(self, kind: str, code: str, seconds: float, failure: str = "", reason: str = "") -> None:
        for o in self._all:
            o.exchange_done(kind, code, seconds, failure, reason)

    def connection_opened(self) -> None:
        for o in self._all:
            o.connection_opened()

    def connection_closed(self, reason: str) -> None:
        for o in self._all:
            o.connection_closed(reason)

    def connection_refused(self, reason: str) -> None:
        for o in self._all:
            o.connection_refused(reason)

    def hsm_command(self, command: str, error: str, seconds: float) -> None:
        for o in self._all:
            o.hsm_command(command, error, seconds)

    def store_commit(self, seconds: float) -> None:
        for o in self._all:
            o.store_commit(seconds)

    def journal_dropped(self, count: int) -> None:
        for o in self._all:
            o.journal_dropped(count)

    def rule_fired(self, rule: str, action: str) -> None:
        for o in self._all:
            o.rule_fired(rule, action)

    def wire_error(self, layer: str) -> None:
        for o in self._all:
            o.wire_error(layer)

    def terminals_signed_in(self, count: int) -> None:
        for o in self._all:
            o.terminals_signed_in(count)


def combine(*observers: Observer | None) -> Observer:
    """One observer for the given ones (None skipped): NULL_OBSERVER, the one, or a fan-out."""
    present = [o for o in observers if o is not None and o is not NULL_OBSERVER]
    if not present:
        return NULL_OBSERVER
    return present[0] if len(present) == 1 else Observers(present)


@dataclass(frozen=True, slots=True)
class Refusal:
    """One request that was not approved, as the live view lists it."""

    time: float  # Unix time
    kind: str
    code: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class RefusalLog:
    """The latest refusals, at most ``size`` of them, safe to read from another thread (the
    metrics server's)."""

    def __init__(self, size: int = 50) -> None:
        self._items: deque[Refusal] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, kind: str, code: str, reason: str) -> None:
        item = Refusal(time.time(), kind, code, reason)
        with self._lock:
            self._items.append(item)

    def latest(self) -> list[Refusal]:
        """Oldest first."""
        with self._lock:
            return list(self._items)
