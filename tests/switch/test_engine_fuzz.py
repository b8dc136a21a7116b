"""Any message the cup-pos codec can carry gets an answer from the switch, never an exception.

The engine runs with reraise_bugs=True, so a bug surfaces here instead of as a 96."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from specs.framing import CupHeader, Frame, Tpdu, decode_frame
from specs.message import Message
from switch.app import build_services, register_terminal
from switch.cards import add_card
from switch.config import SwitchConfig
from switch.engine import SwitchEngine
from tests.specs.strategies import messages
from tests.switch import independent
from tests.switch.pos import CODEC, MERCHANT, TERMINAL, TMK, Pos

MTIS = ["0100", "0200", "0220", "0320", "0400", "0500", "0800", "0820", "0830", "9999"]
CODES = ["000000", "310000", "200000", "030000"]
NMICS = ["001", "002", "003", "004", "011", "012", "013", "201", "301", "360", "362", "999"]


def _engine() -> tuple[SwitchEngine, Pos]:
    async def setup() -> tuple[SwitchEngine, Pos]:
        from switch.sqlite_store import SqliteStore

        services = build_services(
            SwitchConfig(db=":memory:"), SqliteStore(":memory:"), InProcTransport(Dispatcher(reraise_bugs=True))
        )
        await register_terminal(services, MERCHANT, TERMINAL, TMK)
        await add_card(services, "6222021234567890123", "3012", "123456", 10**9)
        engine = SwitchEngine(services, reraise_bugs=True)
        pos = Pos()
        answer = await engine.handle(pos.frame(pos.signin()), "fuzz")
        assert answer.wire is not None
        pos.take_keys(pos.read(answer.wire))
        return engine, pos

    return asyncio.run(setup())


ENGINE, POS = _engine()


@st.composite
def requests(draw: st.DrawFn) -> Message:
    base = draw(messages(CODEC))
    fields = dict(base.fields)
    if draw(st.booleans()):
        fields[41], fields[42] = TERMINAL, MERCHANT
    if draw(st.booleans()):
        fields[3] = draw(st.sampled_from(CODES))
    if draw(st.booleans()):
        fields[60] = (
            draw(st.sampled_from(["22", "01", "23", "25", "10", "20", "00"])) + "000001" + draw(st.sampled_from(NMICS))
        )
    return Message.build(CODEC.dialect, draw(st.sampled_from(MTIS)), fields)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=requests(), mac=st.booleans())
def test_engine_answers_any_request(message: Message, mac: bool) -> None:
    if mac:  # a right MAC under the session MAK, so the fuzzing reaches past the MAC check
        unmaced = CODEC.encode(message.replace(f64="0" * 16), validate=False)
        message = message.replace(f64=independent.cup_pos_mac(POS.mak, unmaced[:-8]).hex().upper())
    body = CODEC.encode(message, validate=False)
    frame = Frame(body=body, tpdu=Tpdu.from_hex("6000000138"), header=CupHeader.from_hex("603100000000"), offset=13)
    answer = asyncio.run(ENGINE.handle(frame, "fuzz"))
    assert answer.wire is not None
    reply = decode_frame(CODEC.dialect.framing, answer.wire)
    assert CODEC.decode(reply.body)[39]  # strictly: a refusal is valid in the dialect too
