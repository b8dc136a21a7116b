"""Suite-wide fixtures: every test starts with the project's JSON logging on the current stderr,
and every frame a switch in the test process sends is decoded strictly in its own dialect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from specs.errors import WireError
from specs.framing import Frame, decode_frame
from switch.engine import Answer, SwitchEngine
from switchsim import logs

# A real PostgreSQL server (pg_server) and a fresh database per test (pg_url), for any package
pytest_plugins = ["tests.pgserver"]


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    logs.configure("debug")
    yield
    logs.configure("debug")


@pytest.fixture(autouse=True)
def _switch_answers_decode_strictly(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The one place where every answer any in-process switch sends (engine tests, the server
    over sockets, the fleet and conformance runs against it) is decoded strictly: framing, every
    field, and the dialect's per-MTI rules. A violation fails the test that caused it, after the
    test, since raising inside the server's worker would only show up as a timeout."""
    violations: list[str] = []
    handle = SwitchEngine.handle

    async def strict_handle(self: SwitchEngine, frame: Frame, remote: str) -> Answer:
        answer = await handle(self, frame, remote)
        if answer.wire is not None:
            try:
                self.codec.decode(decode_frame(self.codec.dialect.framing, answer.wire).body)
            except WireError as exc:
                violations.append(f"{self.codec.dialect.name} answer {answer.wire.hex().upper()}: {exc.describe()}")
        return answer

    monkeypatch.setattr(SwitchEngine, "handle", strict_handle)
    yield
    assert not violations, "the switch sent frames its own dialect refuses:\n" + "\n".join(violations)
