"""The core's structured logger, and the processor that keeps secrets out of every log line.

Every package logs through ``get_logger`` without knowing who configured logging: the CLI
(``switchsim/logs.py``) sets up the JSON output and puts ``mask_secrets`` in its chain. The
masking processor is the last line of defence: callers are expected to log masked values
already, but a key named like a secret is replaced whatever its value.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import structlog

# Event keys whose values must never reach a log line, whatever a caller passes.
_SECRET_KEYS = frozenset(
    {
        "pin",
        "pin_block",
        "pinblock",
        "key",
        "clear_key",
        "tmk",
        "pik",
        "mak",
        "tdk",
        "track2",
        "track3",
        "password",
        "lmk",
        "pan",
    }
)


def mask_secrets(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name in list(event):
        if name.lower() in _SECRET_KEYS:
            event[name] = "***"
    return event


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
