"""Done means (issue 15): an independent terminal buys with a chip card over a real socket and
verifies the switch's ARPC. Everything cryptographic on this side is the independent helpers
(tests/switch/independent.py, written from ../shared/vectors/emv.json "conventions") cross-
checked with pyemv; the card is the published PBOC vector B card (IMK-AC, PAN, PSN)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pyemv import ac, kd

from specs.message import Message
from switch.app import serve_switch
from switch.config import DeclaredCard, DeclaredTerminal, SwitchConfig
from tests.switch import independent as ind
from tests.switch.pos import MERCHANT, TERMINAL, TMK, Pos
from tests.vectorfiles import vector_path

VECTORS = json.loads(vector_path("emv.json").read_text())
B = VECTORS["pboc_cvn01_examples"][1]
IMK, PAN, PSN, PIN, EXPIRY = bytes.fromhex(B["imk_ac"]), B["pan"], B["psn"], "123456", "3012"
pytestmark = pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")


class Line:
    """One TCP connection to the switch: 2-byte length + frame, as docs/cup-pos.md says."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pos: Pos) -> None:
        self.reader, self.writer, self.pos = reader, writer, pos

    async def ask(self, message: Message, *, mac: bool = True) -> Message:
        self.writer.write(self.pos.wire(message, mac=mac))
        await self.writer.drain()
        size = int.from_bytes(await asyncio.wait_for(self.reader.readexactly(2), 10), "big")
        answer = self.pos.read(size.to_bytes(2, "big") + await self.reader.readexactly(size))
        if mac and 64 in answer:
            self.pos.check_mac(answer)
        return answer


def session_key(atc: bytes) -> bytes:
    card_key = ind.card_key_option_a(IMK, PAN, PSN)
    # pyemv derives the same card key (it adjusts parity; DES ignores it)
    assert bytes(x & 0xFE for x in kd.derive_icc_mk_a(IMK, PAN, PSN)) == bytes(x & 0xFE for x in card_key)
    return ind.pboc_session_key(card_key, atc)


def chip_sale(pos: Pos, amount: int, atc: int, *, tamper: bool = False) -> tuple[Message, bytes, bytes]:
    """A chip purchase the card would send: 55 in emv.json's sale order, the ARQC by the book."""
    values = {k: bytes.fromhex(v) for k, v in B["pboc_input_from_tags"].items()}
    values |= {"9F02": bytes.fromhex(f"{amount:012d}"), "9F36": atc.to_bytes(2, "big"), "9F27": b"\x80",
               "9F37": bytes.fromhex("0A1B2C3D"), "9F33": bytes.fromhex("E0E1C8"), "9F34": bytes.fromhex("420300"),
               "9F35": b"\x22", "9F1E": b"INDEPOS1", "84": bytes.fromhex("A000000333010101"),
               "9F09": bytes.fromhex("0020"), "9F41": bytes.fromhex("00000001")}
    key = session_key(values["9F36"])
    arqc = ind.mac_algorithm3(key, ind.pboc_arqc_input(values))
    assert ac.generate_ac(key, ind.pboc_arqc_input(values), ac.PaddingType.EMV) == arqc  # pyemv agrees
    values["9F26"] = bytes([arqc[0] ^ 0x01]) + arqc[1:] if tamper else arqc
    field55 = b"".join(ind.tlv(t, values[t]) for t in VECTORS["field55"]["sale_0200_order"] if t in values)
    message = pos.message(
        "0200", "000", f2=PAN, f3="000000", f4=f"{amount:012d}", f14=EXPIRY, f22="051", f23="0" + PSN, f25="00",
        f26="12", f49="156", f52=ind.card_pin_block(PIN, PAN, pos.pik).hex().upper(), f53="2600000000000000",
        f55=field55.hex().upper())
    message = message.replace(f60="22" + message[60][2:] + "60")  # 60.1 = 22, 60.4 = 6, 60.5 = 0
    return message, key, values["9F26"]


async def test_an_independent_terminal_buys_with_a_chip_card_and_verifies_the_arpc(tmp_path: Path) -> None:
    card = DeclaredCard(PAN, EXPIRY, PIN, 100_000, service_code="220", chip=True, imk_ac=IMK, psn=PSN)
    config = SwitchConfig(port=0, db=str(tmp_path / "s.db"), terminals=(DeclaredTerminal(MERCHANT, TERMINAL, TMK),),
                          cards=(card,))
    running = await serve_switch(config)
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    try:
        line = Line(reader, writer, Pos())
        line.pos.take_keys(await line.ask(line.pos.signin(), mac=False))
        sale, key, arqc = chip_sale(line.pos, 2_500, 0x0007)
        answer = await line.ask(sale)
        assert answer.mti == "0210" and answer[39] == "00"
        objects = dict(ind.tlv_objects(bytes.fromhex(answer[55])))
        arpc = ind.arpc_method1(key, arqc, b"00")
        assert arpc == ac.generate_arpc_1(key, arqc, b"00")  # pyemv agrees
        assert objects["91"] == arpc + b"00"  # the card's issuer authentication passes
        # the same card, its ARQC altered by one bit: declined 59, with the ARPC for that ARC
        tampered, key, bad = chip_sale(line.pos, 2_500, 0x0008, tamper=True)
        answer = await line.ask(tampered)
        assert answer[39] == "59"
        assert dict(ind.tlv_objects(bytes.fromhex(answer[55])))["91"] == ind.arpc_method1(key, bad, b"59") + b"59"
    finally:
        writer.close()
        await running.close()
