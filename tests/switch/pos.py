"""A test POS terminal: builds cup-pos frames with the shared codec and checks answers with the
independent test-side crypto. Used by the engine tests (no sockets) and the end-to-end tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from specs.codec import codec_for
from specs.framing import CupHeader, Frame, Tpdu, decode_frame, encode_frame
from specs.message import Message
from tests.switch import independent

MERCHANT = "848100058126002"
TERMINAL = "00000764"
TMK = bytes.fromhex("11" * 16)  # the published test TMK (docs/cup-pos.md, "Field 62")
TPDU = Tpdu.from_hex("6000000138")
HEADER = CupHeader.from_hex("603100000000")
CODEC = codec_for("cup-pos")


@dataclass
class Pos:
    merchant: str = MERCHANT
    terminal: str = TERMINAL
    tmk: bytes = TMK
    stan: int = 0
    pik: bytes = b""
    mak: bytes = b""
    tdk: bytes = b""
    batch: str = "000001"
    last_header: CupHeader | None = field(default=None)

    def _next_stan(self) -> str:
        self.stan = self.stan % 999999 + 1
        return f"{self.stan:06d}"

    def message(self, mti: str, nmic: str, **extra: str) -> Message:
        fields = {11: self._next_stan(), 41: self.terminal, 42: self.merchant, 60: "00" + self.batch + nmic}
        fields.update({int(k[1:]): v for k, v in extra.items()})
        return CODEC.message(mti, fields)

    def frame(self, message: Message, *, mac: bool = False) -> Frame:
        if mac:
            body = CODEC.encode(message.replace(f64="0" * 16), validate=False)
            message = message.replace(f64=independent.cup_pos_mac(self.mak, body[:-8]).hex().upper())
        return Frame(body=CODEC.encode(message), tpdu=TPDU, header=HEADER, offset=13)

    def wire(self, message: Message, *, mac: bool = False) -> bytes:
        frame = self.frame(message, mac=mac)
        return encode_frame(CODEC.dialect.framing, frame.body, tpdu=TPDU, header=HEADER)

    def read(self, wire: bytes) -> Message:
        """An answer of the switch, decoded strictly: whatever it answers (a format error too)
        must be valid in its own dialect."""
        frame = decode_frame(CODEC.dialect.framing, wire)
        assert frame.tpdu == TPDU.reply()
        self.last_header = frame.header
        return CODEC.decode(frame.body)

    def signin(self, nmic: str = "003") -> Message:
        return self.message("0800", nmic, f63="001")

    def take_keys(self, answer: Message) -> None:
        """Decrypt field 62 with the TMK and check every CV, as a real PIN pad does."""
        data = bytes.fromhex(answer[62])
        mode = answer.sub("60.3")
        if mode == "001":
            assert len(data) == 24
            pik, pik_cv, mak, mak_cv = data[:8], data[8:12], data[12:20], data[20:24]
        else:
            assert len(data) == (40 if mode == "003" else 60)
            pik, pik_cv, mak, zeros, mak_cv = data[:16], data[16:20], data[20:28], data[28:36], data[36:40]
            assert zeros == bytes(8)
        self.pik = independent.ecb_decrypt(self.tmk, pik)
        self.mak = independent.ecb_decrypt(self.tmk, mak)
        assert independent.cv4(self.pik) == pik_cv
        assert independent.cv4(self.mak) == mak_cv
        if mode == "004":
            tdk, tdk_cv = data[40:56], data[56:60]
            self.tdk = independent.ecb_decrypt(self.tmk, tdk)
            assert independent.cv4(self.tdk) == tdk_cv
        self.batch = answer.sub("60.2") or self.batch

    def operator_signin(self, operator: str, password: str, nmic: str = "011") -> Message:
        block = independent.operator_pin_block(password, self.pik).hex().upper()
        return self.message("0800", nmic, f63=operator, f52=block, f53="1600000000000000")

    def check_mac(self, answer: Message) -> None:
        body = CODEC.encode(answer.replace(f64="0" * 16), validate=False)
        assert bytes.fromhex(answer[64]) == independent.cup_pos_mac(self.mak, body[:-8])

    def swiped_purchase(self, pan: str, pin: str, amount: int) -> bytes:
        """The frame of a swiped purchase with PIN (22 = 021, track 2, a PIN block under the PIK)
        and its MAC, under the next STAN."""
        block = independent.card_pin_block(pin, pan, self.pik).hex().upper()
        message = self.message(
            "0200",
            "000",
            f3="000000",
            f4=f"{amount:012d}",
            f22="021",
            f25="00",
            f26="12",
            f49="156",
            f35=f"{pan}D30121010000",
            f52=block,
            f53="2600000000000000",
        )
        return self.wire(message.replace(f60="22" + message[60][2:]), mac=True)
