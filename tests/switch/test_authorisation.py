"""The iso87 authorisation (0100) through the engine, no sockets: judged on the card alone, as
docs/iso87.md says, and nothing held. Frames are built by hand with the iso87-binary codec."""

from __future__ import annotations

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from specs.codec import codec_for
from specs.framing import Frame
from specs.message import Message
from switch.app import build_services, register_terminal
from switch.cards import add_card, pan_ref
from switch.config import SwitchConfig
from switch.context import Services
from switch.engine import SwitchEngine
from switch.records import CardStatus
from switch.sqlite_store import SqliteStore

CODEC = codec_for("iso87-binary")
MERCHANT, TERMINAL = "848100058126002", "00000764"
TMK = bytes.fromhex("11" * 16)
PAN, EXPIRY = "6222021234567890123", "3012"
POOR, OLD, BLOCKED = "6222020000000000018", "6222020000000000026", "6222020000000000034"


@pytest.fixture
async def engine() -> SwitchEngine:
    services = build_services(
        SwitchConfig(db=":memory:", dialect="iso87-binary"),
        SqliteStore(":memory:"),
        InProcTransport(Dispatcher(reraise_bugs=True)),
    )
    await register_terminal(services, MERCHANT, TERMINAL, TMK)
    await add_card(services, PAN, EXPIRY, "123456", balance=100_000, limit=50_000)
    await add_card(services, POOR, EXPIRY, "1234", balance=1_000)
    await add_card(services, OLD, "2001", "1234", balance=1_000)
    await add_card(services, BLOCKED, EXPIRY, "1234", balance=1_000, status=CardStatus.BLOCKED)
    return SwitchEngine(services, reraise_bugs=True)


def auth(amount: int, pan: str = PAN, expiry: str = EXPIRY, **extra: str) -> Message:
    fields = {
        3: "000000", 4: f"{amount:012d}", 11: "000042", 14: expiry, 22: "022", 25: "00",
        35: f"{pan}={expiry}10100000", 41: TERMINAL, 42: MERCHANT, 49: "156",
    }
    fields.update({int(k.removeprefix("f")): v for k, v in extra.items()})
    return CODEC.message("0100", fields)


async def ask(engine: SwitchEngine, message: Message) -> Message:
    answer = await engine.handle(Frame(body=CODEC.encode(message), offset=2), "test")
    assert answer.wire is not None
    return CODEC.decode(answer.wire[2:])


async def balance(engine: SwitchEngine, pan: str = PAN) -> int:
    services: Services = engine.services
    card = await services.store.get_card(pan_ref(pan))
    assert card is not None
    return card.balance


async def test_an_authorisation_on_a_good_card_is_approved_and_holds_nothing(engine: SwitchEngine) -> None:
    reply = await ask(engine, auth(12_345))
    assert reply.mti == "0110" and reply[39] == "00"
    assert (reply[3], reply[4], reply[11], reply[41], reply[42]) == ("000000", "000000012345", "000042",
                                                                     TERMINAL, MERCHANT)
    assert len(reply[38]) == 6 and len(reply[37]) == 12 and 64 not in reply
    assert await balance(engine) == 100_000


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (auth(2_000, POOR), "51"),  # balance 10.00
        (auth(60_000), "61"),  # limit 500.00
        (auth(100, OLD, "2001"), "54"),  # expired in 2020
        (auth(100, BLOCKED), "14"),
        (auth(100, "6222029999999999999"), "14"),  # no such card
        (auth(100, f14="2912"), "14"),  # 14 and the track disagree
        (auth(0), "13"),
        (auth(100, f52="0123456789ABCDEF"), "55"),  # no PIN key to verify it under
    ],
)
async def test_an_authorisation_is_declined_on_the_card(engine: SwitchEngine, message: Message, code: str) -> None:
    assert (await ask(engine, message))[39] == code


async def test_an_authorisation_needs_a_registered_terminal_and_merchant(engine: SwitchEngine) -> None:
    assert (await ask(engine, auth(100, f41="00000999")))[39] == "97"
    assert (await ask(engine, auth(100, f42="999999999999999")))[39] == "03"


async def test_network_management_needs_no_terminal_and_unserved_mtis_answer_40(engine: SwitchEngine) -> None:
    reply = await ask(engine, CODEC.message("0800", {11: "000001", 70: "001"}))
    assert (reply.mti, reply[39], reply[70]) == ("0810", "00", "001")
    purchase = CODEC.message("0200", {3: "000000", 4: "000000000100", 11: "000002"})
    assert (await ask(engine, purchase))[39] == "40"
