"""Every refusal explained: the faulty requests a firmware engineer's terminal sends, built with the
independent test-side crypto (tests/switch/independent.py), and the reasons the switch keeps in
its journal: the answer code, the facts the reason must name, and nothing secret in it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from specs.framing import Frame
from specs.message import Message
from switch.app import build_services, register_terminal
from switch.cards import add_card, pan_ref
from switch.config import SwitchConfig
from switch.context import Services
from switch.records import JournalEntry
from switch.sqlite_store import SqliteStore
from tests.switch import cupwire, independent
from tests.switch.pos import CODEC, HEADER, MERCHANT, TERMINAL, TMK, TPDU
from tests.switch.test_financial import EXPIRY, PAN, PIN, Till

PLACEHOLDER = "0" * 16


async def make_services(**config: object) -> Services:
    svc = build_services(
        replace(SwitchConfig(db=":memory:"), **config),  # type: ignore[arg-type]
        SqliteStore(":memory:"),
        InProcTransport(Dispatcher(reraise_bugs=True)),
    )
    await register_terminal(svc, MERCHANT, TERMINAL, TMK)
    await add_card(svc, PAN, EXPIRY, PIN, balance=100_000, limit=50_000)
    return svc


@pytest.fixture
async def services() -> Services:
    return await make_services()


async def last_answer(services: Services) -> JournalEntry:
    return next(e for e in reversed(await services.store.list_journal(TERMINAL, 10)) if e.direction == "out")


async def assert_nothing_secret(till: Till, text: str) -> None:
    """No key (clear or under the LMK), no PAN beyond 6+4, no PIN, no PIN block in a reason."""
    session = await till.engine.services.session((await till.engine.services.store.list_terminals())[0].id)
    secrets = [till.pos.pik.hex(), till.pos.mak.hex(), TMK.hex(), PAN, PAN[6:-4]]
    if session is not None:
        secrets += [session.pik_lmk, session.mak_lmk]
    for secret in secrets:
        assert secret.upper() not in text.upper(), secret


def purchase(till: Till, amount: int = 100, **extra: str) -> Message:
    return till.fin("0200", "000000", "22", amount, **{**till.card(), **extra})


def mac_body(message: Message) -> bytes:
    """The message encoded with field 64 as zeros, less those 8 bytes (docs/cup-pos.md)."""
    return CODEC.encode(message.replace(f64=PLACEHOLDER), validate=False)[:-8]


async def send_with_mac(till: Till, message: Message, mac: bytes) -> Message:
    body = CODEC.encode(message.replace(f64=mac.hex().upper()))
    answer = await till.engine.handle(Frame(body=body, tpdu=TPDU, header=HEADER, offset=13), "test")
    assert answer.wire is not None
    return till.pos.read(answer.wire)


def cv(key: bytes) -> str:
    return independent.cv4(key).hex().upper()


# -- MAC (A0) ---------------------------------------------------------------------------------


async def test_a_missing_mac_names_field_64_and_the_mak(services: Services) -> None:
    till = Till(services)
    await till.open()
    reply = await till.ask(purchase(till), mac=False)
    assert reply[39] == "A0" and till.pos.last_header is not None
    assert till.pos.last_header.processing_requirement == 3
    reason = (await last_answer(services)).reason
    assert "field 64 (MAC) missing" in reason and "purchase" in reason
    assert f"check value {cv(till.pos.mak)}" in reason and "generation 1" in reason
    await assert_nothing_secret(till, reason)


async def test_a_mac_under_the_previous_sign_ins_mak_is_recognised(services: Services) -> None:
    till = Till(services)
    await till.open()
    old_mak = till.pos.mak
    till.pos.take_keys(await till.ask(till.pos.signin(), mac=False))  # the terminal signs in again...
    assert (await till.ask(till.pos.operator_signin("01", "0000")))[39] == "00"
    message = purchase(till)
    sent = independent.cup_pos_mac(old_mak, mac_body(message))  # ...but MACs with the old MAK
    reply = await send_with_mac(till, message, sent)
    assert reply[39] == "A0"
    reason = (await last_answer(services)).reason
    expected = independent.cup_pos_mac(till.pos.mak, mac_body(message)).decode()
    assert f"received {sent.decode()}, expected {expected}" in reason
    assert f"over {len(mac_body(message))} bytes" in reason
    assert f"MAK generation 2, check value {cv(till.pos.mak)}" in reason
    assert f"previous sign-in's MAK (generation 1, check value {cv(old_mak)})" in reason
    assert "the terminal did not load the keys of its last sign-in" in reason
    await assert_nothing_secret(till, reason)


MacOf = Callable[[bytes, Message], bytes]


def _framed(mak: bytes, message: Message) -> bytes:
    return independent.cup_pos_mac(mak, TPDU.to_bytes() + HEADER.to_bytes() + mac_body(message))


def _header(mak: bytes, message: Message) -> bytes:
    return independent.cup_pos_mac(mak, HEADER.to_bytes() + mac_body(message))


def _without_mti(mak: bytes, message: Message) -> bytes:
    return independent.cup_pos_mac(mak, mac_body(message)[2:])  # the cup-pos MTI: 2 bytes of BCD


def _without_placeholder(mak: bytes, message: Message) -> bytes:
    return independent.cup_pos_mac(mak, CODEC.encode(message, validate=False))  # no field 64 at all


def _cbc(mak: bytes, message: Message) -> bytes:
    return independent.cbc_mac(mak, mac_body(message))


def _cbc_text(mak: bytes, message: Message) -> bytes:
    return independent.cbc_mac(mak, mac_body(message)).hex().upper()[:8].encode()


def _lower(mak: bytes, message: Message) -> bytes:
    return independent.cup_pos_mac(mak, mac_body(message)).lower()


@pytest.mark.parametrize(
    ("mac_of", "words"),
    [
        (_framed, "MACed the frame with its TPDU and header"),
        (_header, "MACed the frame with its header"),
        (_without_mti, "MACed the body without the MTI"),
        (_without_placeholder, "without field 64 (the zero placeholder left out)"),
        (_cbc, "X9.9 CBC-MAC (ISO 9797-1 algorithm 1) of the same bytes"),
        (_cbc_text, "computed the ANSI X9.9/X9.19 CBC-MAC, not the POS ECB MAC"),
        (_lower, "the right MAC in lower-case hexadecimal"),
    ],
)
async def test_the_usual_mac_mistakes_are_named(services: Services, mac_of: MacOf, words: str) -> None:
    till = Till(services)
    await till.open()
    message = purchase(till)
    sent = mac_of(till.pos.mak, message)
    assert (await send_with_mac(till, message, sent))[39] == "A0"
    reason = (await last_answer(services)).reason
    assert words in reason, reason
    assert f"expected {independent.cup_pos_mac(till.pos.mak, mac_body(message)).decode()}" in reason
    await assert_nothing_secret(till, reason)


async def test_a_mac_no_mistake_explains_says_so_with_the_check_value(services: Services) -> None:
    till = Till(services)
    await till.open()
    assert (await send_with_mac(till, purchase(till), b"12345678"))[39] == "A0"
    reason = (await last_answer(services)).reason
    assert "received 12345678" in reason and "no usual mistake gives it" in reason
    assert reason.endswith(f"compare the terminal's MAK with check value {cv(till.pos.mak)}")


async def test_the_mac_refusal_is_still_audited_briefly(services: Services) -> None:
    till = Till(services)
    await till.open()
    await send_with_mac(till, purchase(till), b"12345678")
    assert (await services.store.list_audit(TERMINAL))[-1].reason == "bad MAC: purchase"


# -- PIN (55 and 99) --------------------------------------------------------------------------


async def test_a_valid_block_with_a_wrong_pin_stays_55_and_counts(services: Services) -> None:
    till = Till(services)
    await till.open()
    assert (await till.purchase(100, **till.card(pin="999999")))[39] == "55"
    card = await services.store.get_card(pan_ref(PAN))
    assert card is not None and card.pin_failures == 1


async def test_a_block_under_the_previous_pik_is_a_pin_format_error_that_never_locks(services: Services) -> None:
    till = Till(services)
    await till.open()
    old_pik = till.pos.pik
    till.pos.take_keys(await till.ask(till.pos.signin(), mac=False))
    assert (await till.ask(till.pos.operator_signin("01", "0000")))[39] == "00"
    generation = 2  # of the current keys: the Till's sign-in and the one above
    for _ in range(4):  # more than the 3 wrong PINs that lock a card; two sign-ins a round
        raw = independent.card_pin_block(PIN, PAN, old_pik)
        while _readable_under(raw, till.pos.pik):  # by chance a block under the new PIK too: sign in once more
            old_pik = till.pos.pik
            till.pos.take_keys(await till.ask(till.pos.signin(), mac=False))
            assert (await till.ask(till.pos.operator_signin("01", "0000")))[39] == "00"
            generation += 1
            raw = independent.card_pin_block(PIN, PAN, old_pik)
        block = raw.hex().upper()
        reply = await till.purchase(100, **{**till.card(), "f52": block})
        assert reply[39] == "99"
        assert till.pos.last_header is not None and till.pos.last_header.processing_requirement == 3
        reason = (await last_answer(services)).reason
        assert "PIN format error" in reason and "not counted as a wrong PIN" in reason
        assert "format 0 block with the PAN (53.1 = 2)" in reason
        assert f"PIK (generation {generation}, check value {cv(till.pos.pik)})" in reason
        assert f"previous sign-in's PIK (generation {generation - 1}): valid" in reason
        assert reason.endswith("the terminal did not load the keys of its last sign-in")
        await assert_nothing_secret(till, reason)
        assert block not in reason
        till.pos.take_keys(await till.ask(till.pos.signin(), mac=False))  # as the 99 asks
        assert (await till.ask(till.pos.operator_signin("01", "0000")))[39] == "00"
        old_pik = till.pos.pik  # next round: this PIK becomes the previous one
        till.pos.take_keys(await till.ask(till.pos.signin(), mac=False))
        assert (await till.ask(till.pos.operator_signin("01", "0000")))[39] == "00"
        generation += 2
    card = await services.store.get_card(pan_ref(PAN))
    assert card is not None and card.pin_failures == 0
    assert (await till.purchase(100))[39] == "00"


def _readable_under(block: bytes, pik: bytes) -> bool:
    """Whether ``block`` deciphers under ``pik`` to a block the diagnosis accepts there (format 0
    with or without the PAN, or format 1: control nibble, a length of 4 to 12, that many digits):
    a block under another PIK does so about once in several hundred sign-ins."""
    clear = independent.ecb_decrypt(pik, block)
    if independent.iso0_pin(clear, PAN) is not None or independent.iso0_pin(clear, None) is not None:
        return True
    digits = clear.hex()
    return digits[0] == "1" and 4 <= int(digits[1], 16) <= 12 and digits[2 : 2 + int(digits[1], 16)].isdigit()


@pytest.mark.parametrize(
    ("make_block", "words"),
    [
        (lambda pik: independent.no_pan_pin_block(PIN, pik), "valid format 0 block without the PAN: 53.1 does not say"),
        (lambda pik: independent.iso1_pin_block(PIN, pik), "ISO 9564 format 1 block: the terminal does not build"),
        (lambda pik: independent.ecb_encrypt(pik, bytes.fromhex("0123456789ABCDEF")), "nothing matched"),
    ],
)
async def test_a_block_not_what_53_says_is_99_and_says_what_was_checked(
    services: Services, make_block: Callable[[bytes], bytes], words: str
) -> None:
    till = Till(services)
    await till.open()
    reply = await till.purchase(100, **{**till.card(), "f52": make_block(till.pos.pik).hex().upper()})
    assert reply[39] == "99"
    reason = (await last_answer(services)).reason
    assert words in reason, reason
    assert "checked format 0 without the PAN" in reason and "format 1: " in reason and "format 3: " in reason
    assert "no previous sign-in's PIK to try" in reason
    card = await services.store.get_card(pan_ref(PAN))
    assert card is not None and card.pin_failures == 0


# -- field checks: warnings by default, 30 when strict ----------------------------------------

Build = Callable[[Till], Message]


def _single_des_53(till: Till) -> Message:
    return purchase(till, f53="2000000000000000")


def _52_without_53(till: Till) -> Message:
    return purchase(till).replace(f53=None)


def _tracks_encrypted(till: Till) -> Message:
    return purchase(till, f53="2610000000000000")


def _other_batch(till: Till) -> Message:
    message = purchase(till)
    return message.replace(f60=message[60][:2] + "000007" + message[60][8:])


def _other_currency(till: Till) -> Message:
    return purchase(till, f49="840")


def _network_code(till: Till) -> Message:
    message = purchase(till)
    return message.replace(f60=message[60][:8] + "001")


def _keyed_with_track(till: Till) -> Message:
    return purchase(till, f22="011", f2=PAN, f14=EXPIRY)


def _swiped_without_track(till: Till) -> Message:
    return purchase(till, f2=PAN, f14=EXPIRY).replace(f35=None)


def _pin_flag_without_block(till: Till) -> Message:
    fields = till.card(pin=None)
    return till.fin("0200", "000000", "22", 100, **{**fields, "f22": "021"})


CHECKS: list[tuple[str, Build, list[str]]] = [
    ("security_control", _single_des_53, ["53.2 = 0 (single DES)", "PIK is double-length (sign-in 003)"]),
    ("security_control", _52_without_53, ["52 (PIN block) without 53"]),
    ("security_control", _tracks_encrypted, ["53.3 = 1", "session has no TDK (sign-in 003)"]),
    ("batch", _other_batch, ["60.2 = 000007 is not the host's batch 000001"]),
    ("currency", _other_currency, ["49 = 840 is not the switch's currency 156"]),
    ("network_code", _network_code, ["60.3 = 001 has no meaning in a purchase", "send 000"]),
    ("entry_mode", _keyed_with_track, ["22 = 011 says the PAN was keyed", "track 2 (35)"]),
    ("entry_mode", _swiped_without_track, ["22 = 021 says the card was swiped", "no track 2 (35)"]),
    ("entry_mode", _pin_flag_without_block, ["22 = 021 says a PIN was entered", "no PIN block (52)"]),
]


@pytest.mark.parametrize(("check", "build", "facts"), CHECKS)
async def test_a_field_check_warns_and_the_answer_stays(
    services: Services, check: str, build: Build, facts: list[str]
) -> None:
    till = Till(services)
    await till.open()
    reply = await till.ask(build(till))
    assert reply[39] == "00"
    warnings = (await last_answer(services)).warnings
    assert len(warnings) == 1 and warnings[0].startswith(f"{check}: "), warnings
    assert all(fact in warnings[0] for fact in facts), warnings
    await assert_nothing_secret(till, warnings[0])


@pytest.mark.parametrize(("check", "build", "facts"), CHECKS)
async def test_a_field_check_refuses_30_when_strict(check: str, build: Build, facts: list[str]) -> None:
    services = await make_services(strict_checks=True)
    till = Till(services)
    await till.open()
    reply = await till.ask(build(till))
    assert reply[39] == "30"
    reason = (await last_answer(services)).reason
    assert reason.startswith(f"strict check {check}: ") and all(fact in reason for fact in facts), reason
    card = await services.store.get_card(pan_ref(PAN))
    assert card is not None and card.balance == 100_000  # refused before anything moved


async def test_a_stan_that_went_backwards_is_a_warning(services: Services) -> None:
    till = Till(services)
    await till.open()
    assert (await till.purchase(100))[39] == "00"
    last = till.pos.stan
    till.pos.stan = last - 3  # the terminal lost its counter
    assert (await till.purchase(100))[39] == "00"
    (warning,) = (await last_answer(services)).warnings
    assert (
        warning
        == f"stan: STAN {last - 2:06d} went backwards: the terminal's last transaction had STAN {last:06d} (purchase)"
    )


async def test_a_void_naming_another_rrn_than_its_original_is_a_warning(services: Services) -> None:
    till = Till(services)
    await till.open("000", "123456")  # the supervisor
    sale = await till.purchase(700)
    original = till.pos.stan
    void = till.fin("0200", "200000", "23", 700, f37="999999999999", f61=f"000001{original:06d}", **till.card())
    assert (await till.ask(void))[39] == "00"
    (warning,) = (await last_answer(services)).warnings
    assert warning == (
        f"original: 37 = 999999999999 names another transaction than 61 (batch 000001, STAN {original:06d}), "
        f"whose RRN is {sale[37]}"
    )


async def test_a_correct_day_has_no_warning(services: Services) -> None:
    till = Till(services)
    await till.open("000", "123456")
    sale = await till.purchase(700)
    void = till.fin("0200", "200000", "23", 700, f37=sale[37], f61=f"000001{till.pos.stan:06d}", **till.card())
    assert (await till.ask(void))[39] == "00"
    assert (await till.purchase(100, **till.card(pin=None)))[39] == "00"
    assert await till.balance() == 100_000 - 100
    assert not [e.warnings for e in await services.store.list_journal(TERMINAL, 50) if e.warnings]


# -- format errors (30) -----------------------------------------------------------------------


async def test_a_format_error_names_terminal_stan_field_offset_and_reason_in_log_and_journal(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    till = Till(services)
    body = cupwire.network("0800", "000123", TERMINAL, MERCHANT, "0000000100")  # 60 cut inside 60.3
    answer = await till.engine.handle(Frame(body=body, tpdu=TPDU, header=HEADER, offset=13), "test")
    assert answer.wire is not None and till.pos.read(answer.wire)[39] == "30"
    reason = (await last_answer(services)).reason
    assert reason.startswith("format error in field 60 at byte ")
    assert reason.endswith(f"; terminal {MERCHANT}/{TERMINAL}, STAN 000123")
    assert "60.3" in reason
    incoming = [e for e in await services.store.list_journal(TERMINAL, 5) if e.direction == "in"][-1]
    assert incoming.stan == "000123" and incoming.wire  # the bytes are kept, masked
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "format_error" in line]
    assert logged[-1]["text"] == reason and logged[-1]["stan"] == "000123"
    assert logged[-1]["terminal"] == f"{MERCHANT}/{TERMINAL}" and logged[-1]["field"] == "60"
