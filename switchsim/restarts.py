"""When ``serve --workers`` restarts a worker that died, and how its death is told (sans-I/O).

A worker that dies is restarted at once, unless it is dying over and over: a death within
``stable_after`` seconds of its start is a quick one, and from the second quick death in a row
the restart waits, 0.5 s, then 1, 2, 4, ... up to ``max_delay`` (a worker that cannot start,
say because its store's folder is gone, must not spin a core). A worker that ran for
``stable_after`` seconds starts the count again.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Restart:
    """What to do about one death: wait ``delay`` seconds, then start the worker again;
    ``quick_deaths`` in a row (a crash loop from 2 on)."""

    delay: float
    quick_deaths: int

    @property
    def crash_loop(self) -> bool:
        return self.quick_deaths >= 2


@dataclass(slots=True)
class RestartPolicy:
    stable_after: float = 10.0
    first_delay: float = 0.5
    max_delay: float = 30.0
    _quick: int = 0

    def died(self, ran: float) -> Restart:
        """The worker died after running ``ran`` seconds."""
        self._quick = self._quick + 1 if ran < self.stable_after else 0
        if self._quick < 2:
            return Restart(0.0, self._quick)
        return Restart(min(self.first_delay * 2 ** (self._quick - 2), self.max_delay), self._quick)


def exit_fields(returncode: int) -> dict[str, str | int]:
    """How a process ended, for a log line: ``{"signal": "SIGKILL"}`` or ``{"exit_code": 1}``
    (a negative return code is the signal that ended it, as subprocess reports it)."""
    if returncode < 0:
        try:
            return {"signal": signal.Signals(-returncode).name}
        except ValueError:
            return {"signal": str(-returncode)}
    return {"exit_code": returncode}
