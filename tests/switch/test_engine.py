"""The switch's message handling without sockets: sign-in, operators, sessions, errors."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from specs.framing import Frame
from specs.message import Message
from switch import admin
from switch.app import build_services, register_terminal
from switch.config import SwitchConfig
from switch.context import Result, Services
from switch.engine import SwitchEngine
from switch.records import AuditEvent, TerminalId
from switch.routes import ROUTES, Route
from switch.session import Request
from switch.sqlite_store import SqliteStore
from tests.switch import independent
from tests.switch.pos import CODEC, MERCHANT, TERMINAL, TMK, Pos

TID = TerminalId(MERCHANT, TERMINAL)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def services(clock: Clock) -> Services:
    config = SwitchConfig(db=":memory:", key_lifetime=600, parameters={"11": "TEST MERCHANT"})
    svc = build_services(config, SqliteStore(":memory:"), InProcTransport(Dispatcher(reraise_bugs=True)))
    svc.clock = clock
    await register_terminal(svc, MERCHANT, TERMINAL, TMK)
    return svc


async def ask(engine: SwitchEngine, pos: Pos, message: Message, *, mac: bool = False) -> Message:
    answer = await engine.handle(pos.frame(message, mac=mac), "test")
    assert answer.wire is not None
    return pos.read(answer.wire)


@pytest.mark.parametrize("mode", ["001", "003", "004"])
async def test_signin_gives_keys_under_tmk_with_check_values(services: Services, mode: str) -> None:
    engine, pos = SwitchEngine(services), Pos()
    request = pos.signin(mode)
    answer = await ask(engine, pos, request)
    assert answer.mti == "0810" and answer[39] == "00"
    assert (answer[11], answer[41], answer[42]) == (request[11], TERMINAL, MERCHANT)
    assert answer.sub("60.2") == "000001" and answer.sub("60.3") == mode
    assert 12 in answer and 13 in answer and 37 in answer and 32 in answer
    pos.take_keys(answer)  # decrypts with the TMK and checks each CV independently
    assert len(pos.pik) == (8 if mode == "001" else 16) and len(pos.mak) == 8
    assert bool(pos.tdk) == (mode == "004")
    assert pos.last_header is not None and pos.last_header.processing_requirement == 0


async def test_second_signin_rotates_keys_and_old_keys_stop_working(services: Services) -> None:
    engine, pos = SwitchEngine(services), Pos()
    pos.take_keys(await ask(engine, pos, pos.signin()))
    old = Pos(pik=pos.pik, mak=pos.mak, stan=pos.stan)
    pos.take_keys(await ask(engine, pos, pos.signin()))
    assert (pos.pik, pos.mak) != (old.pik, old.mak)
    answer = await ask(engine, old, old.operator_signin("001", "0000"), mac=True)
    assert answer[39] == "A0"


async def test_unknown_merchant_03_and_unknown_terminal_97(services: Services) -> None:
    engine = SwitchEngine(services)
    stranger = Pos(merchant="999999999999999")
    answer = await ask(engine, stranger, stranger.signin())
    assert answer[39] == "03" and answer[41] == TERMINAL and answer[11] == "000001"
    other = Pos(terminal="00000999")
    assert (await ask(engine, other, other.signin()))[39] == "97"
    await services.store.set_terminal_enabled(TID, False)
    pos = Pos()
    assert (await ask(engine, pos, pos.signin()))[39] == "97"


async def test_operator_signin_right_wrong_locked_unlocked(services: Services) -> None:
    engine, pos = SwitchEngine(services), Pos()
    pos.take_keys(await ask(engine, pos, pos.signin()))
    ok = await ask(engine, pos, pos.operator_signin("001", "0000"), mac=True)
    assert ok[39] == "00"
    pos.check_mac(ok)
    assert await services.session(TID) is not None and (await services.session(TID)).operator_id == "01"  # type: ignore[union-attr]
    wrong = [await ask(engine, pos, pos.operator_signin("01 ", "9999"), mac=True) for _ in range(3)]
    assert [m[39] for m in wrong] == ["55", "55", "75"]
    assert (await ask(engine, pos, pos.operator_signin("001", "0000"), mac=True))[39] == "75"
    await admin.unlock_operator(services, TID, "01")
    assert (await ask(engine, pos, pos.operator_signin("001", "0000"), mac=True))[39] == "00"
    events = [r.event for r in await services.store.list_audit(TERMINAL)]
    assert AuditEvent.OPERATOR_LOCKED in events and AuditEvent.OPERATOR_UNLOCKED in events


async def test_unknown_operator_answers_like_wrong_password(services: Services) -> None:
    engine, pos = SwitchEngine(services), Pos()
    pos.take_keys(await ask(engine, pos, pos.signin()))
    assert (await ask(engine, pos, pos.operator_signin("042", "0000"), mac=True))[39] == "55"


async def test_supervisor_and_administrator_defaults(services: Services) -> None:
    engine, pos = SwitchEngine(services), Pos()
    pos.take_keys(await ask(engine, pos, pos.signin()))
    assert (await ask(engine, pos, pos.operator_signin("000", "123456"), mac=True))[39] == "00"
    assert (await ask(engine, pos, pos.operator_signin("099", "12345678"), mac=True))[39] == "00"


async def test_bad_mac_answers_a0_and_asks_for_signin(services: Services) -> None:
    engine, pos = SwitchEngine(services), Pos()
    pos.take_keys(await ask(engine, pos, pos.signin()))
    request = pos.operator_signin("001", "0000").replace(f64="0102030405060708")
    answer = await ask(engine, pos, request)
    assert answer[39] == "A0"


async def test_operator_before_terminal_signin_answers_58_and_sign_in_again(services: Services) -> None:
    engine, pos = SwitchEngine(services), Pos(pik=bytes(16), mak=bytes(8))
    answer = await ask(engine, pos, pos.operator_signin("001", "0000"), mac=True)
    assert answer[39] == "58"
    assert pos.last_header is not None and pos.last_header.processing_requirement == 3


async def test_password_change_then_new_password_works(services: Services) -> None:
    engine, pos = SwitchEngine(services), Pos()
    pos.take_keys(await ask(engine, pos, pos.signin()))
    new_block = independent.operator_pin_block("4321", pos.pik).hex().upper()
    change = pos.operator_signin("001", "0000", nmic="013").replace(f62=new_block)
    assert (await ask(engine, pos, change, mac=True))[39] == "00"
    assert (await ask(engine, pos, pos.operator_signin("001", "0000"), mac=True))[39] == "55"
    assert (await ask(engine, pos, pos.operator_signin("001", "4321"), mac=True))[39] == "00"


async def test_key_lifetime_expiry_asks_for_new_signin(services: Services, clock: Clock) -> None:
    engine, pos = SwitchEngine(services), Pos()
    pos.take_keys(await ask(engine, pos, pos.signin()))
    clock.now += 601
    answer = await ask(engine, pos, pos.message("0820", "301"))
    assert answer[39] == "00"
    assert pos.last_header is not None and pos.last_header.processing_requirement == 3
    assert (await ask(engine, pos, pos.operator_signin("001", "0000"), mac=True))[39] == "58"


async def test_echo_parameters_status_and_signoff(services: Services) -> None:
    engine, pos = SwitchEngine(services), Pos()
    assert (await ask(engine, pos, pos.message("0820", "301"))).mti == "0830"
    assert (await ask(engine, pos, pos.message("0800", "360")))[39] == "58"
    pos.take_keys(await ask(engine, pos, pos.signin()))
    params = await ask(engine, pos, pos.message("0800", "360"))
    assert bytes.fromhex(params[62]) == b"11TEST MERCHANT"
    assert (await ask(engine, pos, pos.message("0820", "362")))[39] == "00"
    assert (await ask(engine, pos, pos.message("0820", "002")))[39] == "00"
    assert await services.session(TID) is None
    assert (await ask(engine, pos, pos.message("0800", "360")))[39] == "58"


async def test_unsupported_network_code_answers_40(services: Services) -> None:
    engine, pos = SwitchEngine(services), Pos()
    assert (await ask(engine, pos, pos.message("0800", "399")))[39] == "40"


async def test_malformed_field_answers_30_with_echo(services: Services) -> None:
    engine, pos = SwitchEngine(services), Pos()
    good = CODEC.encode(pos.signin())
    bad = good[:10] + b"\x00\x01\x0a" + good[13:]  # field 11 (at byte 10) with a non-BCD nibble
    answer = await engine.handle(Frame(body=bad, tpdu=pos.frame(pos.signin()).tpdu, offset=13), "test")
    assert answer.wire is not None
    reply = pos.read(answer.wire)
    assert reply.mti == "0810" and reply[39] == "30" and reply[41] == TERMINAL
    entries = await services.store.list_journal(TERMINAL, 5)
    assert any("field 11 at byte 23" in e.error for e in entries)


async def test_unreadable_mti_closes(services: Services) -> None:
    engine = SwitchEngine(services)
    answer = await engine.handle(Frame(body=b"\xff\xff", offset=13), "test")
    assert answer.wire is None and answer.close


async def test_journal_is_masked(services: Services) -> None:
    engine, pos = SwitchEngine(services), Pos()
    pos.take_keys(await ask(engine, pos, pos.signin()))
    await ask(engine, pos, pos.operator_signin("001", "0000"), mac=True)
    text = " ".join(e.masked_json for e in await services.store.list_journal(TERMINAL, 20))
    assert '"62": "***' in text and '"52": "****' in text


async def test_a_bug_answers_96_and_is_logged_without_values(
    services: Services, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "".join(["622202", "1234567890123"])  # built at run time: the stack shows source lines

    async def broken(*_args: object) -> Result:
        raise KeyError(secret)

    monkeypatch.setattr("switch.routes.ROUTES", {**ROUTES, ("cup-pos", "echo"): Route(Request.ECHO, broken)})
    engine, pos = SwitchEngine(services), Pos()
    answer = await ask(engine, pos, pos.message("0820", "301"))
    assert answer.mti == "0830" and answer[39] == "96"
    err = capsys.readouterr().err
    assert "internal_error" in err and "KeyError" in err and secret not in err


async def test_a_reregistration_by_another_process_voids_the_cached_session(services: Services) -> None:
    """A terminal re-registered behind this switch's back (a new key generation in the store, the
    old session still cached here) has no session: the next request is refused 58, and the
    void session is gone from the store as well."""
    engine, pos = SwitchEngine(services), Pos()
    pos.take_keys(await ask(engine, pos, pos.signin()))
    assert (await ask(engine, pos, pos.operator_signin("001", "0000"), mac=True))[39] == "00"
    terminal = await services.store.get_terminal(TID)
    assert terminal is not None
    await services.store.put_terminal(replace(terminal, key_generation=terminal.key_generation + 1))
    answer = await ask(engine, pos, pos.message("0800", "360"))
    assert answer[39] == "58" and pos.last_header is not None and pos.last_header.processing_requirement == 3
    assert await services.store.get_session(TID) is None and await services.session(TID) is None
    pos.take_keys(await ask(engine, pos, pos.signin()))
    assert (await ask(engine, pos, pos.message("0800", "360")))[39] == "00"


async def test_a_handler_approval_the_session_table_cannot_keep_answers_96_and_is_logged(
    services: Services, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def keyless(*_args: object) -> Result:
        return Result("00")  # a sign-in approved without the working keys it must install

    route = Route(Request.TERMINAL_SIGNIN, keyless)
    monkeypatch.setattr("switch.routes.ROUTES", {**ROUTES, ("cup-pos", "signin"): route})
    engine, pos = SwitchEngine(services), Pos()
    answer = await ask(engine, pos, pos.signin())
    assert answer.mti == "0810" and answer[39] == "96"
    err = capsys.readouterr().err
    assert "internal_error" in err and "SessionTableError" in err
    assert await services.session(TID) is None and await services.store.get_session(TID) is None
