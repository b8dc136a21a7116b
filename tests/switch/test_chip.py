"""Chip requests through the engine (no sockets), judged by the independent EMV helpers of
tests/switch/independent.py and the published PBOC vector B of ../shared/vectors/emv.json:
the ARQC verified, 91 = ARPC || ARC for the answer's 39, a failed ARQC declined with 59 and its
own 91, missing tags 30, a swiped chip card 45, the ATC watched, scripts, advices, downloads."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from specs.message import Message
from switch.app import build_services, register_terminal
from switch.cards import ChipKey, add_card, pan_ref
from switch.config import SwitchConfig
from switch.context import Services
from switch.rulefile import parse_rules
from switch.sqlite_store import SqliteStore
from tests.switch import independent as ind
from tests.switch.pos import MERCHANT, TERMINAL, TMK
from tests.switch.test_financial import Till
from tests.vectorfiles import vector_path

VECTORS = json.loads(vector_path("emv.json").read_text())
B = VECTORS["pboc_cvn01_examples"][1]  # issuer-side worked example: IMK, PAN, PSN, tags, ARQC, ARPC
IMK = bytes.fromhex(B["imk_ac"])
PAN, PSN, EXPIRY, PIN = B["pan"], B["psn"], "3012", "123456"
SALE_ORDER = VECTORS["field55"]["sale_0200_order"]


@pytest.fixture
async def services() -> Services:
    return await _services(SwitchConfig(db=":memory:"))


async def _services(config: SwitchConfig) -> Services:
    svc = build_services(config, SqliteStore(":memory:"), InProcTransport(Dispatcher(reraise_bugs=True)))
    await register_terminal(svc, MERCHANT, TERMINAL, TMK)
    await add_card(svc, PAN, EXPIRY, PIN, balance=100_000, limit=50_000, chip=ChipKey(IMK, PSN))
    await add_card(svc, "6222021234567890123", EXPIRY, PIN, balance=100_000)  # a magnetic card
    return svc


class ChipTill(Till):
    """The till with a PBOC CVN 01 card in its reader, the card played by the test."""

    atc = 0x0100

    def tags(
        self, amount: int, *, type_code: str = "00", atc: int | None = None, override: dict[str, bytes] | None = None
    ) -> dict[str, bytes]:
        if atc is None:
            ChipTill.atc += 1
            atc = ChipTill.atc
        values = {k: bytes.fromhex(v) for k, v in B["pboc_input_from_tags"].items()}
        values |= {"9F02": bytes.fromhex(f"{amount:012d}"), "9F36": atc.to_bytes(2, "big"),
                   "9C": bytes.fromhex(type_code), "9F27": b"\x80", "9F33": bytes.fromhex("60E1C8"),
                   "9F34": bytes.fromhex("020300"), "9F35": b"\x22", "84": bytes.fromhex("A000000333010101")}
        values |= override or {}
        return values

    def field55(self, values: dict[str, bytes], *, arqc: bytes | None = None, skip: tuple[str, ...] = ()) -> str:
        key = ind.pboc_session_key(ind.card_key_option_a(IMK, PAN, PSN), values["9F36"])
        values = {**values, "9F26": arqc or ind.mac_algorithm3(key, ind.pboc_arqc_input(values))}
        return b"".join(ind.tlv(t, values[t]) for t in SALE_ORDER if t in values and t not in skip).hex().upper()

    def chip_card(self, field55: str, *, entry: str = "051", pin: str | None = PIN) -> dict[str, str]:
        fields = {"f2": PAN, "f14": EXPIRY, "f22": entry, "f23": "0" + PSN, "f25": "00", "f49": "156", "f55": field55}
        if pin:
            fields |= {"f52": ind.card_pin_block(pin, PAN, self.pos.pik).hex().upper(), "f53": "2600000000000000",
                       "f26": "12"}
        return fields

    def chip(self, mti: str, pcode: str, mtype: str, amount: int | None, **extra: str) -> Message:
        message = self.fin(mti, pcode, mtype, amount, **extra)
        return message.replace(f60=message[60] + "60")  # 60.4 = 6 (contact and contactless), 60.5 = 0

    async def chip_purchase(self, amount: int, field55: str | None = None, **card: Any) -> Message:
        data = field55 or self.field55(self.tags(amount))
        return await self.ask(self.chip("0200", "000000", "22", amount, **self.chip_card(data, **card)))


def tag91(answer: Message) -> bytes:
    objects = dict(ind.tlv_objects(bytes.fromhex(answer[55])))
    return objects["91"]


def expected_91(values: dict[str, bytes], arc: bytes) -> bytes:
    key = ind.pboc_session_key(ind.card_key_option_a(IMK, PAN, PSN), values["9F36"])
    arqc = ind.mac_algorithm3(key, ind.pboc_arqc_input(values))
    return ind.arpc_method1(key, arqc, arc) + arc


async def test_the_published_field_55_is_answered_with_the_published_tag_91(services: Services) -> None:
    till = ChipTill(services)
    await till.open()
    # vector B's whole 55 (a purchase of 0.01) as the card sent it: the ARPC for 00 is published
    reply = await till.chip_purchase(1, B["field55_tlv"], pin=None, entry="052")
    assert reply.mti == "0210" and reply[39] == "00"
    assert reply[55] == B["tag91_for_arc_00"]


async def test_chip_purchase_approved_with_arpc_and_the_balance_moves(services: Services) -> None:
    till = ChipTill(services)
    await till.open()
    values = till.tags(12_345)
    reply = await till.chip_purchase(12_345, till.field55(values))
    assert reply[39] == "00" and tag91(reply) == expected_91(values, b"00")
    card = await services.store.get_card(pan_ref(PAN))
    assert card is not None and card.balance == 100_000 - 12_345 and card.atc == int.from_bytes(values["9F36"], "big")


async def test_a_decline_carries_the_arpc_of_its_own_code(services: Services) -> None:
    till = ChipTill(services)
    await till.open()
    values = till.tags(60_000)  # over the card's limit
    reply = await till.chip_purchase(60_000, till.field55(values))
    assert reply[39] == "61" and tag91(reply) == expected_91(values, b"61")


async def test_a_tampered_arqc_is_declined_59_with_91_and_a_reason(services: Services) -> None:
    till = ChipTill(services)
    await till.open()
    values = till.tags(500)
    good = bytes.fromhex(dict(ind.tlv_objects(bytes.fromhex(till.field55(values))))["9F26"].hex())
    bad = bytes([good[0] ^ 1]) + good[1:]
    reply = await till.chip_purchase(500, till.field55(values, arqc=bad))
    assert reply[39] == "59"
    key = ind.pboc_session_key(ind.card_key_option_a(IMK, PAN, PSN), values["9F36"])
    assert tag91(reply) == ind.arpc_method1(key, bad, b"59") + b"59"
    card = await services.store.get_card(pan_ref(PAN))
    assert card is not None and card.balance == 100_000  # nothing taken
    journal = await services.store.list_journal(TERMINAL, 1)
    assert journal[-1].response_code == "59"


async def test_the_arqc_failure_code_is_configurable(services: Services) -> None:
    svc = await _services(SwitchConfig(db=":memory:", arqc_failure_code="A7"))
    till = ChipTill(svc)
    await till.open()
    values = till.tags(500)
    reply = await till.chip_purchase(500, till.field55(values, arqc=bytes(8)))
    assert reply[39] == "A7" and tag91(reply)[8:] == b"A7"


async def test_a_missing_mandatory_tag_is_30_naming_it(services: Services) -> None:
    till = ChipTill(services)
    await till.open()
    reply = await till.chip_purchase(500, till.field55(till.tags(500), skip=("9F37",)))
    assert reply[39] == "30"
    assert 55 not in reply


async def test_repeated_atc_warns_by_default_and_is_refused_when_strict() -> None:
    for strict, second in ((False, "00"), (True, "59")):
        svc = await _services(SwitchConfig(db=":memory:", strict_checks=strict))
        till = ChipTill(svc)
        await till.open()
        values = till.tags(100, atc=0x0200)
        assert (await till.chip_purchase(100, till.field55(values)))[39] == "00"
        again = till.tags(100, atc=0x0200, override={"9F37": b"\x01\x02\x03\x04"})
        reply = await till.chip_purchase(100, till.field55(again))
        assert reply[39] == second and tag91(reply) == expected_91(again, second.encode())


async def test_a_chip_card_swiped_is_45_unless_it_is_a_fallback(services: Services) -> None:
    till = ChipTill(services)
    await till.open()
    swiped = till.fin("0200", "000000", "22", 100, **till.card(PAN, PIN, service="201"))
    assert (await till.ask(swiped))[39] == "45"
    again = till.fin("0200", "000000", "22", 100, **till.card(PAN, PIN, service="201"))
    fallback = again.replace(f60=again[60] + "52")  # 60.4 = 5, 60.5 = 2: the chip could not be read
    assert (await till.ask(fallback))[39] == "00"
    magnetic = till.fin("0200", "000000", "22", 100, **till.card("6222021234567890123", PIN))
    assert (await till.ask(magnetic))[39] == "00"  # service code 101 in the track: a stripe card


async def test_chip_balance_void_refund_preauth_and_reversal(services: Services) -> None:
    till = ChipTill(services)
    await till.open(operator="000", password="123456")
    values = till.tags(0, type_code="31")
    reply = await till.ask(till.chip("0200", "310000", "01", None, **till.chip_card(till.field55(values))))
    assert reply[39] == "00" and reply[54] == "1002156C000000100000" and tag91(reply) == expected_91(values, b"00")
    sale = await till.chip_purchase(2_000)
    assert sale[39] == "00"
    batch, stan = till.pos.batch, sale[11]
    void_values = till.tags(2_000, type_code="20")
    void = till.chip("0200", "200000", "23", 2_000, **till.chip_card(till.field55(void_values)), f37=sale[37],
                     f61=batch + stan)
    reply = await till.ask(void)
    assert reply[39] == "00" and tag91(reply) == expected_91(void_values, b"00")
    again = await till.chip_purchase(3_000)
    refund = till.chip("0220", "200000", "25", 1_000, **till.chip_card(till.field55(till.tags(1_000, type_code="20"))),
                       f37=again[37], f61=batch + again[11] + again[13])
    assert (await till.ask(refund))[39] == "00"
    held = till.chip_card(till.field55(till.tags(5_000, type_code="03")))
    pre = await till.ask(till.chip("0100", "030000", "10", 5_000, **held))
    assert pre[39] == "00" and 91 not in pre and "91" in dict(ind.tlv_objects(bytes.fromhex(pre[55])))
    # the reversal of the pre-auth carries the reversal subset (95 9F1E 9F10 9F36) and 39 = 06
    values = till.tags(5_000, type_code="03", override={"9F1E": b"83201ICC"})
    subset = b"".join(ind.tlv(t, values[t]) for t in ("95", "9F1E", "9F10", "9F36")).hex().upper()
    fields = till.chip_card(subset)
    fields.pop("f52"), fields.pop("f53"), fields.pop("f26")
    reversal = till.pos.message("0400", "000", f3="030000", f4=f"{5_000:012d}", f39="06", **fields)
    reversal = reversal.replace(f11=pre[11], f60="10" + batch + "00060")
    assert (await till.ask(reversal))[39] == "00"
    card = await services.store.get_card(pan_ref(PAN))
    assert card is not None and card.balance == 100_000 - 3_000 + 1_000
    short = b"".join(ind.tlv(t, values[t]) for t in ("95", "9F10", "9F36")).hex().upper()
    missing = reversal.replace(f55=short, f11="000777")
    assert (await till.ask(missing))[39] == "30"


async def test_a_rule_adds_an_issuer_script_and_the_advice_is_matched_and_audited(services: Services) -> None:
    rules = parse_rules([{"name": "script", "match": {"mti": "0200", "amount_eq": 777},
                          "action": {"issuer_script": "72", "script_id": "00000001",
                                     "script_commands": ["8424000008AABBCCDDEEFF0011"]}}])
    services.rules = rules
    till = ChipTill(services)
    await till.open()
    sale = await till.chip_purchase(777)
    objects = ind.tlv_objects(bytes.fromhex(sale[55]))
    assert [tag for tag, _ in objects] == ["91", "72"]
    command = bytes.fromhex("8424000008AABBCCDDEEFF0011")
    assert objects[1][1] == ind.tlv("9F18", bytes.fromhex("00000001")) + ind.tlv("86", command)
    values = till.tags(777)
    advice_tags = ("9F33", "95", "9F37", "9F10", "9F26", "9F36", "82", "DF31", "9F1A", "9A")
    values |= {"DF31": bytes.fromhex("2000000001"), "9F26": bytes(8)}
    data = b"".join(ind.tlv(t, values[t]) for t in advice_tags).hex().upper()
    advice = till.pos.message("0620", "951", f2=PAN, f3="000000", f4=f"{777:012d}", f22="051", f23="001",
                              f25="00", f49="156", f55=data, f37=sale[37], f61=till.pos.batch + sale[11] + sale[13])
    reply = await till.ask(advice)
    assert reply.mti == "0630" and reply[39] == "00"
    last = (await services.store.list_audit(TERMINAL))[-1]
    assert last.event.value == "script_result" and "script 00000001: successful" in last.reason
    assert sale[11] in last.reason


async def test_ic_batch_upload_records_match_their_originals(services: Services) -> None:
    till = ChipTill(services)
    await till.open()
    sale = await till.chip_purchase(4_200)
    values = till.tags(4_200) | {"9F27": b"\x40"}
    data = till.field55(values)
    upload = till.pos.message("0320", "203", f2=PAN, f4=f"{4_200:012d}", f22="051", f23="001", f55=data,
                              f62=b"610000".hex().upper())
    upload = upload.replace(f11=sale[11], f60=upload[60] + "60")
    reply = await till.ask(upload)
    assert reply.mti == "0330" and reply[39] == "00"
    assert "a TC (approved)" in (await services.store.list_audit(TERMINAL))[-1].reason
    assert (await till.ask(upload.replace(f4=f"{1:012d}")))[39] == "25"
    end = till.pos.message("0320", "202")
    assert (await till.ask(end))[39] == "00"


async def test_capk_and_aid_downloads_in_parts_and_records_with_checksums() -> None:
    svc = await _services(replace(SwitchConfig(db=":memory:"), download_part_entries=3, announce_downloads=True))
    till = ChipTill(svc)
    signin = await till.ask(till.pos.signin(), mac=False)
    till.pos.take_keys(signin)
    assert till.pos.last_header is not None and till.pos.last_header.processing_requirement == 4
    first = await till.ask(till.pos.message("0820", "372", f62=b"100".hex().upper()), mac=False)
    part = bytes.fromhex(first[62])
    assert part[:1] == b"2" and len(part) == 1 + 3 * 23
    second = await till.ask(till.pos.message("0820", "372", f62=b"103".hex().upper()), mac=False)
    rest = bytes.fromhex(second[62])
    assert rest[:1] == b"3" and len(rest) == 1 + 23
    for published in VECTORS["capk"]:
        query = ind.tlv("9F06", bytes.fromhex(published["rid"])) + ind.tlv("9F22", bytes.fromhex(published["index"]))
        answer = await till.ask(till.pos.message("0800", "370", f62=query.hex().upper()), mac=False)
        record = dict(ind.tlv_objects(bytes.fromhex(answer[62])[1:]))
        assert bytes.fromhex(answer[62])[:1] == b"1"
        assert record["DF02"].hex().upper() == published["modulus"]
        assert record["DF03"].hex().upper() == published["checksum"]
    done = await till.ask(till.pos.message("0800", "371"), mac=False)
    assert done[39] == "00" and till.pos.last_header is not None and till.pos.last_header.processing_requirement == 5
    aids = await till.ask(till.pos.message("0820", "382", f62=b"100".hex().upper()), mac=False)
    listed = bytes.fromhex(aids[62])
    assert listed[:1] == b"1" and listed[1:] == b"".join(
        ind.tlv("9F06", bytes.fromhex(f"A0000003330101{n:02d}")) for n in (1, 2, 3))
    one = await till.ask(till.pos.message("0800", "380", f62=ind.tlv("9F06", bytes.fromhex("A000000333010101")).hex()
                                          .upper()), mac=False)
    record = dict(ind.tlv_objects(bytes.fromhex(one[62])[1:]))
    assert record["DF11"].hex().upper() == "D84000A800" and record["9F1B"] == (50_000).to_bytes(4, "big")
    missing = await till.ask(till.pos.message("0800", "380", f62=ind.tlv("9F06", bytes(7)).hex().upper()), mac=False)
    assert bytes.fromhex(missing[62]) == b"0"
    done = await till.ask(till.pos.message("0800", "381"), mac=False)
    assert done[39] == "00" and till.pos.last_header is not None and till.pos.last_header.processing_requirement == 0
    again = await till.ask(till.pos.signin(), mac=False)
    assert till.pos.last_header is not None and till.pos.last_header.processing_requirement == 0 and again[39] == "00"


async def test_a_version_3_store_gains_the_chip_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "v3.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE cards (pan_ref TEXT PRIMARY KEY, pan_masked TEXT NOT NULL, expiry TEXT NOT NULL, "
        "service_code TEXT NOT NULL, pin_lmk TEXT NOT NULL, pin_lmk_nopan TEXT NOT NULL, balance INTEGER NOT NULL, "
        "card_limit INTEGER NOT NULL, status TEXT NOT NULL, pin_failures INTEGER NOT NULL)")
    db.execute("INSERT INTO cards VALUES ('ref', '622202*********0123', '3012', '101', 'A', 'B', 5, 0, 'active', 0)")
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    store = SqliteStore(path)
    card = await store.get_card("ref")
    assert card is not None and not card.chip and card.atc == -1 and card.balance == 5
    await store.close()


def test_config_capk_and_aid_entries_replace_or_join_the_shipped_ones() -> None:
    from switch.config import parse_config

    published = VECTORS["capk"][0]
    text = {
        "capk": [{"rid": published["rid"], "index": "99", "expiry": "20991231", "exponent": published["exponent"],
                  "modulus": published["modulus"], "checksum": "00" * 20}],
    }
    with pytest.raises(Exception, match=r"capk\[0\]\.checksum"):
        parse_config(text, "t.toml")
    key = dict(text["capk"][0])
    import hashlib

    key["checksum"] = hashlib.sha1(bytes.fromhex(published["rid"] + "99" + published["modulus"]
                                                 + published["exponent"])).hexdigest().upper()
    aid = {"aid": "A000000333010101", "contactless_cvm_limit": 10000}
    config = parse_config({"capk": [key], "aid": [aid], "blacklist": [{"pan": "622202"}]}, "t.toml")
    svc = build_services(replace(config, db=":memory:"), SqliteStore(":memory:"),
                         InProcTransport(Dispatcher(reraise_bugs=True)))
    assert [k.name for k in svc.ic.capks][-1] == "A000000333/99" and len(svc.ic.capks) == 5
    debit = svc.ic.aid(bytes.fromhex("A000000333010101"))
    assert debit is not None and debit.amount("DF21") == 10000 and debit.value("DF11") is None  # replaced whole
    assert len(svc.ic.aids) == 3 and svc.ic.blacklist == ("622202",)
