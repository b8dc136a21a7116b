"""The purchase path does the work once: the request's MAC is checked over the bytes as they
arrived and the answer is encoded once, its MAC patched into those bytes (issue: a lean hot
path). Counted at the codec, so a second encode anywhere on the path fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from specs.codec import Codec
from specs.framing import decode_frame
from terminals_sim.outcome import Kind
from tests.pair import open_pair


async def test_a_maced_purchase_costs_one_encode_and_its_answer_mac_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_pair(tmp_path / "switch.db") as pair:
        assert (await pair.step(Kind.SIGNIN)).ok
        frame = pair.terminal.start_transaction(Kind.PURCHASE, 1234, None)
        encodes: list[str] = []
        real = Codec._encode

        def counted(self: Codec, message: object, validate: bool) -> object:
            encodes.append(getattr(message, "mti", "?"))
            return real(self, message, validate)  # type: ignore[arg-type]

        monkeypatch.setattr(Codec, "_encode", counted)
        wire = await pair.answer(frame)
        monkeypatch.undo()
        assert wire is not None
        assert encodes == ["0210"]  # the answer only: no re-encoded request, no second answer
        outcome = pair.terminal.receive(wire)  # the terminal checks the answer's MAC itself
        assert outcome.ok, outcome
        body = decode_frame(pair.engine.codec.dialect.framing, wire).body
        assert pair.engine.codec.decode(body).get(39) == "00"
