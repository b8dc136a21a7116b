"""structlog set-up shared by every server: JSON lines, one event per line, masked.

The masking processor is the last line of defence: callers are expected to log masked values
already, but a key named like a secret is replaced whatever its value.
"""

from __future__ import annotations

import logging
import sys
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


class _StreamFactory:
    """Resolves the stream at each logger creation, so a swapped sys.stderr (pytest capture,
    a closed pipe replaced by the caller) is honoured instead of a stale file object."""

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream

    def __call__(self, *_args: Any) -> structlog.PrintLogger:
        stream = self._stream
        if stream is None or getattr(stream, "closed", False):
            stream = sys.stderr
        return structlog.PrintLogger(file=stream)


def configure(level: str = "info", stream: Any = None) -> None:
    """Configure structlog for JSON output on ``stream`` (stderr by default)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            mask_secrets,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=_StreamFactory(stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
