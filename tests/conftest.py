"""Suite-wide fixtures: every test starts with the project's JSON logging on the current stderr."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from switchsim import logs


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    logs.configure("debug")
    yield
    logs.configure("debug")
