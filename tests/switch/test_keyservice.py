"""The switch over the one HSM client: an HSM answer a handler asked to decide on becomes that
handler's ISO answer, every other HSM failure is 96, and the terminal always gets its answer.

The HSM is the real in-process one; a scripted transport replaces the answer to one command
code, so each case shows what the switch does with that answer alone. Expected codes are the
handlers' documented answers (docs/financial.md, switch/operators.py), not computed here.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from hsm_sim.transports.interface import HsmUnavailable
from specs.message import Message
from switch.app import build_services, register_terminal
from switch.cards import add_card
from switch.config import SwitchConfig
from switch.context import Services
from switch.engine import SwitchEngine
from switch.keyservice import KeyKind
from switch.sqlite_store import SqliteStore
from tests.switch import independent
from tests.switch.pos import MERCHANT, TERMINAL, TMK, Pos

PAN, PIN, EXPIRY = "6222021234567890123", "123456", "3012"
Reply = Callable[[bytes], bytes]


def fails(exc: Exception) -> Reply:
    def reply(_message: bytes) -> bytes:
        raise exc

    return reply


class ScriptedHsm:
    """The in-process HSM, except for the command codes given a scripted reply."""

    def __init__(self) -> None:
        self.inner = InProcTransport(Dispatcher(reraise_bugs=True))
        self.script: dict[bytes, Reply] = {}

    async def request(self, message: bytes) -> bytes:
        reply = self.script.get(message[:2])
        return reply(message) if reply is not None else await self.inner.request(message)

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture
def hsm() -> ScriptedHsm:
    return ScriptedHsm()


@pytest.fixture
async def services(hsm: ScriptedHsm) -> Services:
    svc = build_services(SwitchConfig(db=":memory:"), SqliteStore(":memory:"), hsm)
    await register_terminal(svc, MERCHANT, TERMINAL, TMK)
    await add_card(svc, PAN, EXPIRY, PIN, balance=100_000, limit=50_000)
    return svc


async def ask(engine: SwitchEngine, pos: Pos, message: Message, *, mac: bool = True) -> Message:
    answer = await engine.handle(pos.frame(message, mac=mac), "test")
    assert answer.wire is not None  # every request whose MTI is readable gets its answer
    return pos.read(answer.wire)


async def signed_in(services: Services) -> tuple[SwitchEngine, Pos]:
    engine, pos = SwitchEngine(services), Pos()
    pos.take_keys(await ask(engine, pos, pos.signin(), mac=False))
    return engine, pos


def purchase(pos: Pos) -> Message:
    message = pos.message(
        "0200",
        "000",
        f3="000000",
        f4=f"{500:012d}",
        f35=f"{PAN}D{EXPIRY}1010000",  # 101: a stripe card (a 2xx swiped is 45, docs/chip.md)
        f22="021",
        f25="00",
        f49="156",
        f52=independent.card_pin_block(PIN, PAN, pos.pik).hex().upper(),
        f53="2600000000000000",
        f26="12",
    )
    return message.replace(f60="22" + message[60][2:])


# --- answers the switch asked to decide on ---------------------------------------------------


@pytest.mark.parametrize("answer", [b"BD01", b"BD20", b"BD24"])
async def test_operator_pin_bc_refusal_answers_55(services: Services, hsm: ScriptedHsm, answer: bytes) -> None:
    engine, pos = await signed_in(services)
    hsm.script[b"BC"] = lambda _m: answer
    assert (await ask(engine, pos, pos.operator_signin("001", "0000")))[39] == "55"


@pytest.mark.parametrize(("answer", "code"), [(b"BD01", "55"), (b"BD20", "99"), (b"BD24", "99")])
async def test_card_pin_bc_wrong_pin_is_55_and_a_bad_block_99(
    services: Services, hsm: ScriptedHsm, answer: bytes, code: str
) -> None:
    # 01: a valid block with another PIN (55, counted); 20/24: the block is not a valid block
    # of the announced format, a PIN format error (99, not counted: switch/pindiag.py).
    engine, pos = await signed_in(services)
    assert (await ask(engine, pos, pos.operator_signin("001", "0000")))[39] == "00"
    hsm.script[b"BC"] = lambda _m: answer
    assert (await ask(engine, pos, purchase(pos)))[39] == code


async def test_new_password_jc_refusal_answers_99(services: Services, hsm: ScriptedHsm) -> None:
    engine, pos = await signed_in(services)
    hsm.script[b"JC"] = lambda _m: b"JD24"
    new_block = independent.operator_pin_block("4321", pos.pik).hex().upper()
    change = pos.operator_signin("001", "0000", nmic="013").replace(f62=new_block)
    assert (await ask(engine, pos, change))[39] == "99"


# --- HSM failures: 96 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reply"),
    [
        (b"M8", lambda _m: b"M910"),  # an error code where only a verdict was asked for
        (b"M8", lambda _m: b"M9"),  # an answer too short to be one
        (b"M8", fails(HsmUnavailable("connection to tcp://127.0.0.1:9 lost"))),
        (b"M8", fails(ConnectionResetError(104, "Connection reset by peer"))),  # a foreign transport
        (b"M8", fails(TimeoutError())),
        (b"BC", lambda _m: b"BD00XYZ"),  # a verdict with fields that are not its
        (b"BC", lambda _m: b"ND00"),  # an answer to another command
        (b"BC", lambda _m: b"BD14"),  # an error code payShield does not have
    ],
    ids=["M8-error-10", "M8-short", "M8-unavailable", "M8-reset", "M8-timeout", "BC-extra", "BC-other", "BC-14"],
)
async def test_hsm_failure_where_a_decision_was_asked_answers_96(
    services: Services, hsm: ScriptedHsm, code: bytes, reply: Reply
) -> None:
    engine, pos = await signed_in(services)
    hsm.script[code] = reply
    assert (await ask(engine, pos, pos.operator_signin("001", "0000")))[39] == "96"


async def test_signin_when_a0_answers_an_error_answers_96(services: Services, hsm: ScriptedHsm) -> None:
    engine, pos = SwitchEngine(services), Pos()
    hsm.script[b"A0"] = lambda _m: b"A110"
    answer = await ask(engine, pos, pos.signin(), mac=False)
    assert answer[39] == "96" and 62 not in answer


async def test_answer_mac_m6_failure_answers_96_and_the_switch_serves_on(
    services: Services, hsm: ScriptedHsm
) -> None:
    engine, pos = await signed_in(services)
    hsm.script[b"M6"] = lambda _m: b"M726"
    assert (await ask(engine, pos, pos.operator_signin("001", "0000")))[39] == "96"
    del hsm.script[b"M6"]
    assert (await ask(engine, pos, pos.operator_signin("001", "0000")))[39] == "00"


# --- the adapter's vocabulary, against the real HSM ------------------------------------------


@pytest.mark.parametrize(("length", "kind"), [(8, KeyKind.MAK), (16, KeyKind.PIK), (16, KeyKind.TDK)])
async def test_working_key_is_field_62_ready(services: Services, length: int, kind: KeyKind) -> None:
    terminal = await services.store.get_terminal((await services.store.list_terminals())[0].id)
    assert terminal is not None
    key = await services.keys.generate_working_key(kind, length, terminal.tmk_lmk)
    clear = independent.ecb_decrypt(TMK, key.under_tmk)
    assert len(clear) == length
    assert key.check_value == independent.cv4(clear)
    assert repr(key) == f"WorkingKey({kind.name}, {length} bytes)"


@pytest.mark.parametrize("mac", [b"0123abcd", b"0123ABC", b"0123ABCDE", b"0123ABC\xff"])
async def test_a_mac_that_is_not_8_uppercase_hex_fails_without_asking(
    services: Services, hsm: ScriptedHsm, mac: bytes
) -> None:
    hsm.script[b"M8"] = fails(AssertionError("M8 must not be sent"))
    assert await services.keys.verify_mac("U" + "0" * 32, b"data", mac) is False
