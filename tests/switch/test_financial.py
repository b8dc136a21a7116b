"""Financial messages through the engine (no sockets): docs/financial.md, checked end to end
with independent PIN blocks and MACs."""

from __future__ import annotations

import asyncio

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from specs.message import Message
from switch.app import build_services, register_terminal
from switch.cards import add_card, pan_ref
from switch.config import SwitchConfig
from switch.context import Services
from switch.engine import SwitchEngine
from switch.records import CardStatus, TerminalId
from switch.sqlite_store import SqliteStore
from tests.switch import independent
from tests.switch.pos import MERCHANT, TERMINAL, TMK, Pos

PAN, PIN, EXPIRY = "6222021234567890123", "123456", "3012"
POOR = "6222020000000000018"
TID = TerminalId(MERCHANT, TERMINAL)


@pytest.fixture
async def services() -> Services:
    svc = build_services(
        SwitchConfig(db=":memory:"), SqliteStore(":memory:"), InProcTransport(Dispatcher(reraise_bugs=True))
    )
    await register_terminal(svc, MERCHANT, TERMINAL, TMK)
    await add_card(svc, PAN, EXPIRY, PIN, balance=100_000, limit=50_000)
    await add_card(svc, POOR, EXPIRY, "1234", balance=1_000)
    await add_card(svc, "6222020000000000026", "2001", "1234", balance=1_000)
    await add_card(svc, "6222020000000000034", EXPIRY, "1234", balance=1_000, status=CardStatus.BLOCKED)
    return svc


class Till:
    """A signed-in POS with its supervisor or cashier, speaking financial messages."""

    def __init__(self, services: Services) -> None:
        self.engine, self.pos = SwitchEngine(services), Pos()

    async def ask(self, message: Message, *, mac: bool = True) -> Message:
        answer = await self.engine.handle(self.pos.frame(message, mac=mac), "test")
        assert answer.wire is not None
        reply = self.pos.read(answer.wire)
        if mac and reply[39] != "A0" and 64 in reply:
            self.pos.check_mac(reply)
        return reply

    async def open(self, operator: str = "001", password: str = "0000") -> None:
        self.pos.take_keys(await self.ask(self.pos.signin(), mac=False))
        assert (await self.ask(self.pos.operator_signin(operator, password)))[39] == "00"

    def card(self, pan: str = PAN, pin: str | None = PIN, expiry: str = EXPIRY, service: str = "101") -> dict[str, str]:
        # service code 101: a magnetic stripe card (a 2xx card swiped is answered 45, docs/chip.md)
        fields = {"f35": f"{pan}D{expiry}{service}0000", "f22": "021" if pin else "022", "f25": "00", "f49": "156"}
        if pin:
            fields |= {
                "f52": independent.card_pin_block(pin, pan, self.pos.pik).hex().upper(),
                "f53": "2600000000000000",
                "f26": "12",
            }
        return fields

    def fin(self, mti: str, pcode: str, mtype: str, amount: int | None, **extra: str) -> Message:
        message = self.pos.message(mti, "000", f3=pcode, **extra)
        message = message.replace(f60=mtype + message[60][2:])
        return message.replace(f4=f"{amount:012d}") if amount is not None else message

    async def purchase(self, amount: int, **card: str) -> Message:
        return await self.ask(self.fin("0200", "000000", "22", amount, **(card or self.card())))

    async def balance(self) -> int:
        reply = await self.ask(self.fin("0200", "310000", "01", None, **self.card()))
        assert reply[39] == "00" and reply[54][:8] == "1002156C"
        return int(reply[54][8:])


async def test_purchase_with_pin_approved_and_balance_moves(services: Services) -> None:
    till = Till(services)
    await till.open()
    reply = await till.purchase(12_345)
    assert reply.mti == "0210" and reply[39] == "00"
    assert len(reply[38]) == 6 and len(reply[37]) == 12 and reply[4] == "000000012345"
    assert await till.balance() == 100_000 - 12_345


async def test_bad_mac_on_a_purchase_is_audited_as_a_refused_purchase(services: Services) -> None:
    till = Till(services)
    await till.open()
    message = till.fin("0200", "000000", "22", 500, **till.card())
    assert (await till.ask(message.replace(f64="0102030405060708"), mac=False))[39] == "A0"
    last = (await services.store.list_audit(TERMINAL))[-1]
    assert (last.event.value, last.result, last.reason) == ("financial", "A0", "bad MAC: purchase")


async def test_purchase_declines(services: Services) -> None:
    till = Till(services)
    await till.open()
    assert (await till.purchase(100, **till.card(pin="999999")))[39] == "55"
    assert (await till.purchase(60_000))[39] == "61"
    assert (await till.purchase(2_000, **till.card(POOR, "1234")))[39] == "51"
    assert (await till.purchase(100, **till.card("6222020000000000026", "1234", "2001")))[39] == "54"
    assert (await till.purchase(100, **till.card("6222020000000000034", "1234")))[39] == "14"
    assert (await till.purchase(100, **till.card("6222029999999999999", "1234")))[39] == "14"


async def test_three_wrong_pins_lock_the_card(services: Services) -> None:
    till = Till(services)
    await till.open()
    codes = [(await till.purchase(100, **till.card(pin="000000")))[39] for _ in range(3)]
    assert codes == ["55", "55", "75"]
    assert (await till.purchase(100))[39] == "75"


async def test_duplicate_stan_answers_94(services: Services) -> None:
    till = Till(services)
    await till.open()
    message = till.fin("0200", "000000", "22", 100, **till.card())
    assert (await till.ask(message))[39] == "00"
    assert (await till.ask(message))[39] == "94"


async def test_bad_mac_answers_a0_and_moves_nothing(services: Services) -> None:
    till = Till(services)
    await till.open()
    message = till.fin("0200", "000000", "22", 500, **till.card()).replace(f64="3030303030303030")
    assert (await till.ask(message, mac=False))[39] == "A0"
    assert await till.balance() == 100_000


async def test_financial_before_signin_answers_58(services: Services) -> None:
    till = Till(services)
    till.pos.pik, till.pos.mak = bytes(16), bytes(8)
    assert (await till.purchase(100))[39] == "58"


async def test_void_needs_supervisor_then_restores_balance(services: Services) -> None:
    till = Till(services)
    await till.open()
    sale = await till.purchase(7_000)
    original = till.pos.stan
    void = till.fin("0200", "200000", "23", 7_000, f37=sale[37], f61=f"000001{original:06d}", **till.card())
    assert (await till.ask(void))[39] == "58"
    assert (await till.ask(till.pos.operator_signin("000", "123456")))[39] == "00"
    void = till.fin("0200", "200000", "23", 7_000, f37=sale[37], f61=f"000001{original:06d}", **till.card())
    assert (await till.ask(void))[39] == "00"
    assert await till.balance() == 100_000
    again = till.fin("0200", "200000", "23", 7_000, f37=sale[37], f61=f"000001{original:06d}", **till.card())
    assert (await till.ask(again))[39] == "25"


async def test_refund_up_to_what_is_left(services: Services) -> None:
    till = Till(services)
    await till.open("000", "123456")
    sale = await till.purchase(10_000)
    ref = f"000001{till.pos.stan:06d}0101"
    refund = till.fin("0220", "200000", "25", 6_000, f37=sale[37], f61=ref, **till.card(pin=None))
    assert (await till.ask(refund)).mti == "0230"
    too_much = till.fin("0220", "200000", "25", 5_000, f37=sale[37], f61=ref, **till.card(pin=None))
    assert (await till.ask(too_much))[39] == "13"
    assert await till.balance() == 100_000 - 10_000 + 6_000


async def test_preauth_and_completion(services: Services) -> None:
    till = Till(services)
    await till.open()
    hold = await till.ask(till.fin("0100", "030000", "10", 20_000, **till.card()))
    assert hold.mti == "0110" and hold[39] == "00"
    assert await till.balance() == 80_000
    done = till.fin(
        "0200", "000000", "20", 15_000, f38=hold[38], f61=f"000001{till.pos.stan - 1:06d}", **till.card(pin=None)
    )
    assert (await till.ask(done))[39] == "00"
    assert await till.balance() == 85_000


async def test_reversal_undoes_purchase_and_is_idempotent(services: Services) -> None:
    till = Till(services)
    await till.open()
    message = till.fin("0200", "000000", "22", 4_000, **till.card())
    assert (await till.ask(message))[39] == "00"
    reversal = message.replace(mti="0400", f39="98", f52=None, f53=None, f26=None)
    first = await till.ask(reversal)
    assert first.mti == "0410" and first[39] == "00"
    assert (await till.ask(reversal))[39] == "00"
    assert await till.balance() == 100_000


async def test_reversal_of_unknown_original_follows_policy(services: Services) -> None:
    till = Till(services)
    await till.open()
    ghost = till.fin("0400", "000000", "22", 100, f39="98", **till.card(pin=None))
    assert (await till.ask(ghost))[39] == "00"


async def test_settlement_balanced_then_unbalanced_and_batch_upload(services: Services) -> None:
    till = Till(services)
    await till.open("000", "123456")
    await till.purchase(1_000)
    first_stan = f"{till.pos.stan:06d}"
    sale2 = await till.purchase(2_500)
    ref = f"000001{till.pos.stan:06d}0101"
    await till.ask(till.fin("0220", "200000", "25", 500, f37=sale2[37], f61=ref, **till.card(pin=None)))
    wrong = till.pos.message("0500", "201", f48="000000009999002000000000500001" + "0", f49="156")
    reply = await till.ask(wrong)
    assert reply[39] == "95" and reply[48].endswith("2")
    upload = till.pos.message("0320", "201", f2=PAN, f3="000000", f4="000000001000", f48="00")
    assert (await till.ask(upload.replace(f11=first_stan))).mti == "0330"
    assert (await till.ask(upload.replace(f11=first_stan)))[39] == "00"
    assert (await till.ask(upload.replace(f11="999999")))[39] == "25"
    # 48 = debit 3500 in 2, credit 500 in 1, flag 0
    right = till.pos.message("0500", "201", f48="000000003500002000000000500001" + "0", f49="156")
    settled = await till.ask(right)
    assert settled[39] == "00" and settled[48].endswith("1")
    assert (await services.store.get_terminal(TID)).batch == "000002"  # type: ignore[union-attr]


async def test_store_holds_no_pan(services: Services) -> None:
    till = Till(services)
    await till.open()
    await till.purchase(100)
    cards = await services.store.list_cards()
    assert all(PAN not in repr(c) for c in cards)
    assert await services.store.get_card(pan_ref(PAN)) is not None


@pytest.fixture
async def ruled() -> Services:
    rules = [
        {"name": "decline 51", "match": {"mti": "0200", "amount_last_digits": "51"}, "action": {"respond": "05"}},
        {"name": "slow", "match": {"mti": "0200", "amount_eq": 777}, "action": {"delay_ms": 30}},
        {"name": "swallow", "match": {"mti": "0100"}, "action": {"drop": True}},
        {"name": "hang up", "match": {"mti": "0220"}, "action": {"close": True}},
    ]
    config = SwitchConfig(db=":memory:", rules=tuple(rules))
    svc = build_services(config, SqliteStore(":memory:"), InProcTransport(Dispatcher(reraise_bugs=True)))
    await register_terminal(svc, MERCHANT, TERMINAL, TMK)
    await add_card(svc, PAN, EXPIRY, PIN, balance=100_000)
    return svc


async def test_rules_respond_delay_drop_close(ruled: Services) -> None:
    till = Till(ruled)
    await till.open("000", "123456")
    declined = await till.purchase(151)
    assert declined[39] == "05"
    till.pos.check_mac(declined)
    assert await till.balance() == 100_000  # a rule's answer moves nothing
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await till.purchase(777))[39] == "00"
    assert loop.time() - started >= 0.03
    dropped = await till.engine.handle(till.pos.frame(till.fin("0100", "030000", "10", 100, **till.card())), "t")
    assert dropped.wire is None and not dropped.close
    closed = await till.engine.handle(till.pos.frame(till.fin("0220", "200000", "25", 100, **till.card())), "t")
    assert closed.wire is None and closed.close
