"""structlog set-up shared by every server: JSON lines, one event per line, masked.

Only the configuration lives here, at the edge: the packages log through ``specs.logs``, whose
masking processor is part of the chain set up below.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from specs.logs import mask_secrets


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
