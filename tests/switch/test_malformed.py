"""Malformed messages always get exactly one answer (39 = 30, echoing only what could be read),
that answer is valid in the dialect, and the connection keeps working.

Frames are made by hand (tests/switch/cupwire.py) and expected answers written out here."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from specs.codec import codec_for
from specs.framing import Frame, decode_frame
from switch.app import RunningSwitch, build_services, register_terminal, serve_switch
from switch.cards import add_card
from switch.config import DeclaredTerminal, SwitchConfig
from switch.engine import SwitchEngine
from switch.sqlite_store import SqliteStore
from switchsim.cli import main
from tests.switch import cupwire
from tests.switch.pos import MERCHANT, TERMINAL, TMK, TPDU, Pos

#: The field-60 values of the issue: shorter than 60.1 + 60.2 + 60.3 (2 + 6 + 3 digits).
SHORT_60 = ["22", "00000001", "0000000100", "000", "0"]
#: Third MTI digit of a request -> of its answer (ISO 8583: odd digits are answers).
ANSWER_DIGIT = {"0": "1", "1": "1", "2": "3", "3": "3", "4": "5", "5": "5", "6": "7", "7": "7", "8": "9", "9": "9"}


def answer_mti(mti: str) -> str:
    return mti[:2] + ANSWER_DIGIT[mti[2]] + mti[3]


def mti_readable(body: bytes) -> bool:
    """cup-pos writes the MTI as two BCD bytes: readable when all four nibbles are digits."""
    return len(body) >= 2 and all(b >> 4 <= 9 and b & 0x0F <= 9 for b in body[:2])


def broken(mti: str, stan: str, field60: str) -> bytes:
    if mti == "0200":
        return cupwire.purchase(stan, TERMINAL, MERCHANT, field60)
    return cupwire.network(mti, stan, TERMINAL, MERCHANT, field60)


def expected_30(mti: str, stan: str) -> dict[int, str]:
    """What the 30 answer to `broken` echoes: every field of the request but the broken 60."""
    echo = {11: stan, 39: "30", 41: TERMINAL, 42: MERCHANT}
    if mti == "0200":
        echo |= {3: "000000", 4: "000000000100", 22: "021", 25: "00", 49: "156"}
    return echo


ECHO_60 = "00000001301"  # 60.1 00, batch 000001, 60.3 301: echo test


# -- real sockets ------------------------------------------------------------------------------


@pytest.fixture
async def switch() -> AsyncIterator[RunningSwitch]:
    terminals = (DeclaredTerminal(MERCHANT, TERMINAL, TMK),)
    config = SwitchConfig(host="127.0.0.1", port=0, db=":memory:", terminals=terminals)
    running = await serve_switch(config, SqliteStore(":memory:"), InProcTransport(Dispatcher(reraise_bugs=True)))
    yield running
    await running.close()


class Client:
    """One TCP connection; reads answers by the 2-byte length as the terminal would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def read(self) -> bytes:
        head = await asyncio.wait_for(self.reader.readexactly(2), 10)
        return head + await asyncio.wait_for(self.reader.readexactly(int.from_bytes(head, "big")), 10)

    async def ask(self, wire: bytes) -> bytes:
        self.writer.write(wire)
        return await self.read()

    def close(self) -> None:
        self.writer.close()


@pytest.mark.parametrize("mti", ["0200", "0800", "0820"])
@pytest.mark.parametrize("field60", SHORT_60)
async def test_short_field_60_answers_30_and_the_connection_lives(
    switch: RunningSwitch, mti: str, field60: str
) -> None:
    pos, client = Pos(), await Client.connect(switch.port)
    try:
        reply = pos.read(await client.ask(cupwire.frame(broken(mti, "000123", field60))))
        assert reply.mti == answer_mti(mti)
        assert dict(reply.fields) == expected_30(mti, "000123")
        # the next valid request on the same connection is answered normally
        echo = pos.read(await client.ask(cupwire.frame(cupwire.network("0820", "000124", TERMINAL, MERCHANT, ECHO_60))))
        assert (echo.mti, echo[39], echo[11], echo[60]) == ("0830", "00", "000124", ECHO_60)
    finally:
        client.close()


async def test_mutated_frames_each_get_one_answer_on_one_connection(switch: RunningSwitch) -> None:
    """200 seeded mutations, each followed by an echo test, on a single connection: every
    mutation gets one answer and the echo after it is answered 00 with its own STAN."""
    rng = random.Random(10)
    pos, client = Pos(), await Client.connect(switch.port)
    bases = _bases(pos)
    sent = 0
    try:
        while sent < 200:
            body = mutate(rng, rng.choice(bases))
            if not mti_readable(body):
                continue  # an unreadable MTI is answered by closing: not this test's case
            sent += 1
            stan = f"{500000 + sent:06d}"
            echo = cupwire.frame(cupwire.network("0820", stan, TERMINAL, MERCHANT, ECHO_60))
            client.writer.write(cupwire.frame(body) + echo)
            first, second = pos.read(await client.read()), pos.read(await client.read())
            assert first.mti == answer_mti(body[:2].hex()) and 39 in first
            assert (second.mti, second[39], second[11]) == ("0830", "00", stan)
    finally:
        client.close()


# -- without sockets ---------------------------------------------------------------------------


@pytest.fixture
async def engine() -> SwitchEngine:
    services = build_services(
        SwitchConfig(db=":memory:"), SqliteStore(":memory:"), InProcTransport(Dispatcher(reraise_bugs=True))
    )
    await register_terminal(services, MERCHANT, TERMINAL, TMK)
    return SwitchEngine(services)


async def answer(engine: SwitchEngine, body: bytes) -> bytes:
    result = await engine.handle(Frame(body=body, tpdu=TPDU, offset=13), "test")
    assert result.wire is not None and not result.close
    return result.wire


@pytest.mark.parametrize(
    ("request_hex", "answer_mti_", "fields"),
    [
        ("0800" + "00" * 8, "0810", {39: "30"}),  # an empty 0800: nothing to echo, not even 11
        ("0200" + "00" * 8, "0210", {39: "30"}),  # an empty 0200: no 3, no 4, no 11
        ("0200" + "0020000000000000" + "000042", "0210", {11: "000042", 39: "30"}),  # 11 alone
    ],
)
async def test_a_format_error_answer_carries_39_and_what_it_read(
    engine: SwitchEngine, request_hex: str, answer_mti_: str, fields: dict[int, str]
) -> None:
    wire = await answer(engine, bytes.fromhex(request_hex))
    reply = Pos().read(wire)  # strictly: valid in cup-pos
    assert (reply.mti, dict(reply.fields)) == (answer_mti_, fields)


async def test_an_iso87_format_error_answer_is_valid_iso87() -> None:
    config = SwitchConfig(db=":memory:", dialect="iso87-binary")
    engine = SwitchEngine(build_services(config, SqliteStore(":memory:"), InProcTransport(Dispatcher())))
    result = await engine.handle(Frame(body=b"0800" + bytes(8)), "test")  # ASCII MTI, empty bitmap
    assert result.wire is not None
    codec = codec_for("iso87-binary")
    reply = codec.decode(decode_frame(codec.dialect.framing, result.wire).body)  # strictly
    assert (reply.mti, dict(reply.fields)) == ("0810", {39: "30"})


async def test_switchsim_decode_accepts_what_the_switch_sends(
    engine: SwitchEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    for request_hex in ("0800" + "00" * 8, "0200" + "00" * 8):
        wire = await answer(engine, bytes.fromhex(request_hex))
        assert main(["decode", "--dialect", "cup-pos", wire.hex()]) == 0
    # an approval must still carry what an approval carries: an 0810 00 without 11 is refused
    approval = cupwire.frame(cupwire.body("0810", {39: b"00"}))
    assert main(["decode", "--dialect", "cup-pos", approval.hex()]) == 2
    assert "field 11" in capsys.readouterr().err


async def test_a_message_cut_short_echoes_the_fields_before_the_cut(engine: SwitchEngine) -> None:
    body = cupwire.network("0800", "000077", TERMINAL, MERCHANT, "00000001003")[:-3]  # ends inside 60
    reply = Pos().read(await answer(engine, body))
    assert (reply.mti, dict(reply.fields)) == ("0810", {11: "000077", 39: "30", 41: TERMINAL, 42: MERCHANT})


async def test_a_stray_answer_is_answered_with_its_own_mti(engine: SwitchEngine) -> None:
    # a 0210 sent to the switch: no MTI answers an answer; 0220 (an advice) would be a request
    body = cupwire.body("0210", {11: cupwire.bcd("000009"), 39: b"05"})
    reply = Pos().read(await answer(engine, body))
    assert (reply.mti, reply[39], reply[11]) == ("0210", "40", "000009")


async def test_when_the_30_cannot_be_built_the_last_resort_is_mti_and_39(
    engine: SwitchEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_echo(*_args: object) -> dict[int, str]:
        raise ValueError("a bug in the echo")

    monkeypatch.setattr(SwitchEngine, "_echo", broken_echo)
    reply = Pos().read(await answer(engine, broken("0800", "000123", "22")))
    assert (reply.mti, dict(reply.fields)) == ("0810", {39: "30"})


async def test_when_a_96_cannot_be_built_either_the_last_resort_still_answers(
    engine: SwitchEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The answer fails (a bug), and the 96 that replaces it would fail the same way (the echo
    # is broken for both): the last resort has no echo, so it cannot.
    def broken_echo(*_args: object) -> dict[int, str]:
        raise ValueError("a bug in the echo")

    monkeypatch.setattr(SwitchEngine, "_echo", broken_echo)
    body = cupwire.network("0820", "000123", TERMINAL, MERCHANT, ECHO_60)
    reply = Pos().read(await answer(engine, body))
    assert (reply.mti, dict(reply.fields)) == ("0830", {39: "96"})


# -- property: any mutation of a valid frame ---------------------------------------------------


def _bases(pos: Pos, *, maced: bool = False) -> list[bytes]:
    """Valid request bodies of every kind the switch serves, and the field-60 cases."""
    bodies = [
        pos.frame(pos.signin("003")).body,
        pos.frame(pos.message("0820", "301")).body,
        pos.frame(pos.message("0820", "362")).body,
        pos.frame(pos.message("0800", "360")).body,
        cupwire.purchase("000201", TERMINAL, MERCHANT, "22000001000"),
    ]
    if maced:
        bodies.append(pos.frame(pos.operator_signin("001", "0000"), mac=True).body)
        purchase = pos.message(
            "0200", "000", f3="000000", f4="000000000100", f22="021", f25="00", f49="156",
            f35="6222021234567890123D30121010000",
        )
        bodies.append(pos.frame(purchase.replace(f60="22" + purchase[60][2:]), mac=True).body)
    bodies += [broken(mti, "000301", v) for mti in ("0200", "0800", "0820") for v in SHORT_60]
    return bodies


def mutate(rng: random.Random, body: bytes) -> bytes:
    """One to three byte flips, truncations or insertions."""
    data = bytearray(body)
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(("flip", "truncate", "insert"))
        if kind == "flip" and data:
            data[rng.randrange(len(data))] ^= rng.randint(1, 255)
        elif kind == "truncate" and len(data) > 1:
            del data[rng.randint(1, len(data) - 1) :]
        else:
            at = rng.randint(0, len(data))
            data[at:at] = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 8)))
    return bytes(data)


@functools.cache
def _fuzz_setup() -> tuple[SwitchEngine, tuple[bytes, ...]]:
    async def setup() -> tuple[SwitchEngine, tuple[bytes, ...]]:
        services = build_services(
            SwitchConfig(db=":memory:"), SqliteStore(":memory:"), InProcTransport(Dispatcher(reraise_bugs=True))
        )
        await register_terminal(services, MERCHANT, TERMINAL, TMK)
        await add_card(services, "6222021234567890123", "3012", "123456", 10**9)
        engine = SwitchEngine(services, reraise_bugs=True)  # a bug raises here instead of hiding in a 96
        pos = Pos()
        signed = await engine.handle(pos.frame(pos.signin()), "fuzz")
        assert signed.wire is not None
        pos.take_keys(pos.read(signed.wire))
        return engine, tuple(_bases(pos, maced=True))

    return asyncio.run(setup())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rng=st.randoms(use_true_random=False),
    pick=st.integers(0, 1000),
    field60=st.one_of(st.none(), st.sampled_from(SHORT_60), st.text("0123456789", max_size=20)),
    mutated=st.booleans(),
)
def test_any_mutation_with_a_readable_mti_gets_one_answer_that_decodes(
    rng: random.Random, pick: int, field60: str | None, mutated: bool
) -> None:
    engine, bases = _fuzz_setup()
    if field60 is None:
        base = bases[pick % len(bases)]
    else:  # a field 60 of any digits (well formed or not) on one of the MTIs of the issue
        base = broken(("0200", "0800", "0820")[pick % 3], "000001", field60)
    body = mutate(rng, base) if mutated else base
    assume(mti_readable(body))
    result = asyncio.run(engine.handle(Frame(body=body, tpdu=TPDU, offset=13), "fuzz"))
    assert result.wire is not None and not result.close  # exactly one answer, and no close
    reply = Pos().read(result.wire)  # strictly
    assert reply.mti == answer_mti(body[:2].hex()) and 39 in reply
