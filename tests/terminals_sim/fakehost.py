"""A small cup-pos host written from the message contract, for testing the terminal side.

Working keys and check values are the published ones (docs/cup-pos.md; PIK 2222..., CV 00962B60;
MAK 3333..., CV ADC67D84; TDK 4444..., CV E2F24340). A second key set, used when the host
rotates keys, has check values computed by hand with
``openssl enc -des-ede3 -nopad -K 5555...`` (0CD7DC49) and ``-K 6666...`` (B0B563C2).
Operator passwords are held as hand-worked clear ISO 9564 format 0 blocks with an all-zero PAN
field: "0000" is 04 0000 FFFFFFFFFF, the supervisor's "123456" is 06 123456 FFFFFFFF.
Financial requests (0100/0200/0220/0320/0400/0500) go to the `FakeBank` (fakebank.py).

The host uses the shared wire layer (codec, framing) but none of hsm_sim's crypto: its TDES,
POS MAC and PIN block reading are the independent helpers of tests/switch/independent.py,
written from the published definitions, so a mistake the terminal shares with hsm_sim shows.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from specs.codec import codec_for
from specs.errors import WireError
from specs.framing import CupHeader, Frame, FrameDecoder, KeepAlive, Tpdu, encode_frame
from specs.message import Message
from tests.switch.independent import cup_pos_mac, ecb_decrypt, ecb_encrypt
from tests.terminals_sim.fakebank import SUPERVISOR, FakeBank

MERCHANT = "848100058126002"
TERMINAL = "00000764"
TMK = bytes.fromhex("11111111111111111111111111111111")
OPERATOR_0000 = bytes.fromhex("040000FFFFFFFFFF")
SUPERVISOR_123456 = bytes.fromhex("06123456FFFFFFFF")
# The answer to each request MTI, written out (ISO 8583: the function digit one higher).
ANSWER_MTI = {"0100": "0110", "0200": "0210", "0220": "0230", "0320": "0330", "0400": "0410",
              "0500": "0510", "0620": "0630", "0800": "0810", "0820": "0830"}
_FINANCIAL = frozenset({"0100", "0200", "0220", "0320", "0400", "0500"})


@dataclass(frozen=True)
class KeySet:
    pik: bytes
    pik_cv: bytes
    mak: bytes
    mak_cv: bytes
    tdk: bytes
    tdk_cv: bytes


PUBLISHED = KeySet(
    pik=bytes.fromhex("22222222222222222222222222222222"),
    pik_cv=bytes.fromhex("00962B60"),
    mak=bytes.fromhex("3333333333333333"),
    mak_cv=bytes.fromhex("ADC67D84"),
    tdk=bytes.fromhex("44444444444444444444444444444444"),
    tdk_cv=bytes.fromhex("E2F24340"),
)
ROTATED = KeySet(
    pik=bytes.fromhex("55555555555555555555555555555555"),
    pik_cv=bytes.fromhex("0CD7DC49"),
    mak=bytes.fromhex("6666666666666666"),
    mak_cv=bytes.fromhex("B0B563C2"),
    tdk=bytes.fromhex("44444444444444444444444444444444"),
    tdk_cv=bytes.fromhex("E2F24340"),
)


@dataclass
class _Session:
    tmk: bytes
    keys: KeySet | None = None
    signins: int = 0
    operators: dict[str, bytes] = field(
        default_factory=lambda: {"001": OPERATOR_0000, SUPERVISOR: SUPERVISOR_123456}
    )
    failures: dict[str, int] = field(default_factory=dict)
    operator: str | None = None  # signed in


@dataclass
class FakeHost:
    """Answers cup-pos frames: ``handle(frame) -> answer frame`` (None: close the connection)."""

    terminals: dict[tuple[str, str], bytes] = field(default_factory=lambda: {(MERCHANT, TERMINAL): TMK})
    rotate: bool = False  # alternate PUBLISHED / ROTATED on each sign-in
    wrong_cv: bool = False  # answer sign-ins with a PIK check value that does not match
    wrong_response_mac: bool = False
    check_request_mac: bool = True  # False: a host that ignores field 64 of financial requests
    batch: str = "000123"
    requirement: int = 0  # processing requirement nibble put in every answer header
    force_code: dict[str, str] = field(default_factory=dict)  # 60.3 -> 39 to answer once
    close_on_malformed: bool = False
    lock_after: int = 3
    silent: bool = False  # read everything, answer nothing (for timeouts)
    swallow: dict[str, int] = field(default_factory=dict)  # MTI -> how many answers to lose
    bank: FakeBank = field(default_factory=FakeBank)
    connections: int = 0
    seen: list[Message] = field(default_factory=list)
    _sessions: dict[tuple[str, str], _Session] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.codec = codec_for("cup-pos")
        self.fmt = self.codec.dialect.framing

    def handle_frame(self, frame: Frame) -> bytes | None:
        tpdu = (frame.tpdu or Tpdu(b"\x00\x00", b"\x00\x00")).reply()
        header = (frame.header or CupHeader()).with_requirement(self.requirement)
        try:
            request = self.codec.decode(frame.body)
        except WireError:
            if self.close_on_malformed:
                return None
            body = self.codec.encode(self.codec.message("0810", {39: "30"}), validate=False)
            return encode_frame(self.fmt, body, tpdu=tpdu, header=header)
        self.seen.append(request)
        fields, maced = self._answer(request)
        if self.swallow.get(request.mti, 0) > 0:  # processed, but the answer is lost
            self.swallow[request.mti] -= 1
            return b""
        mti = ANSWER_MTI[request.mti]
        body = self.codec.encode(self.codec.message(mti, fields))
        if maced:
            session = self._sessions[(request[42], request[41])]
            assert session.keys is not None
            fields[64] = "0" * 16
            body = self.codec.encode(self.codec.message(mti, fields))
            mac = cup_pos_mac(session.keys.mak, body[:-8])
            if self.wrong_response_mac:
                mac = bytes(8)
            fields[64] = mac.hex().upper()
            body = self.codec.encode(self.codec.message(mti, fields))
        return encode_frame(self.fmt, body, tpdu=tpdu, header=header)

    def _answer(self, req: Message) -> tuple[dict[int, str], bool]:
        code = req.sub("60.3") or ""
        merchant, terminal = req[42], req[41]
        out: dict[int, str] = {11: req[11], 41: terminal, 42: merchant, 60: req[60],
                               12: "101500", 13: "0612", 32: "00010000", 37: "000000000001"}

        def answer(rc: str, maced: bool = False) -> tuple[dict[int, str], bool]:
            out[39] = self.force_code.pop(code, rc)
            return out, maced and out[39] not in ("A0",)

        if not any(m == merchant for m, _ in self.terminals):
            return answer("03")
        tmk = self.terminals.get((merchant, terminal))
        if tmk is None:
            return answer("97")
        session = self._sessions.setdefault((merchant, terminal), _Session(tmk))
        if code in ("001", "003", "004"):
            keys = ROTATED if self.rotate and session.signins % 2 else PUBLISHED
            session.signins += 1
            session.keys = keys
            out[60] = "00" + self.batch + code
            out[62] = self._field62(code, tmk, keys).hex().upper()
            return answer("00")
        if code in ("301", "002", "362", "360"):
            if code == "360":
                out[62] = "0102030405"
            return answer("00")
        if req.mti in _FINANCIAL:
            return self._financial(req, session, out)
        if code in ("011", "012", "013"):
            if session.keys is None:
                return answer("12")
            mac = cup_pos_mac(session.keys.mak, self._unsigned(req))
            if req.get(64) != mac.hex().upper():
                return answer("A0")
            operator = req[63]
            if code == "012":
                session.operator = None
                return answer("00", maced=True)
            if session.failures.get(operator, 0) >= self.lock_after:
                return answer("75", maced=True)
            block = ecb_decrypt(session.keys.pik, bytes.fromhex(req[52]))
            if session.operators.get(operator) != block:
                session.failures[operator] = session.failures.get(operator, 0) + 1
                return answer("55", maced=True)
            session.failures[operator] = 0
            session.operator = operator
            if code == "013":
                session.operators[operator] = ecb_decrypt(session.keys.pik, bytes.fromhex(req[62]))
            return answer("00", maced=True)
        return answer("12")

    def _financial(self, req: Message, session: _Session, out: dict[int, str]) -> tuple[dict[int, str], bool]:
        fields = dict(out)
        if session.keys is None:
            fields[39] = "58"
            return fields, False
        mac = cup_pos_mac(session.keys.mak, self._unsigned(req))
        if self.check_request_mac and req.get(64) != mac.hex().upper():
            fields.update({n: req[n] for n in (3, 4) if n in req})
            fields[39] = "A0"
            return fields, True
        fields = self.bank.answer(req, session.keys.pik, session.operator)
        fields.update({12: out[12], 13: out[13], 32: out[32]})
        return fields, True

    def _unsigned(self, req: Message) -> bytes:
        return self.codec.encode(req.replace(f64="0" * 16))[:-8]

    def _field62(self, code: str, tmk: bytes, keys: KeySet) -> bytes:
        cv_pik = bytes(4) if self.wrong_cv else keys.pik_cv
        if code == "001":
            return (ecb_encrypt(tmk, keys.pik[:8]) + cv_pik
                    + ecb_encrypt(tmk, keys.mak) + keys.mak_cv)
        out = (ecb_encrypt(tmk, keys.pik) + cv_pik
               + ecb_encrypt(tmk, keys.mak) + bytes(8) + keys.mak_cv)
        if code == "004":
            out += ecb_encrypt(tmk, keys.tdk) + keys.tdk_cv
        return out


class _FakeHostProtocol(asyncio.Protocol):
    def __init__(self, host: FakeHost) -> None:
        self.host = host
        self.decoder = FrameDecoder(host.fmt)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.host.connections += 1

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.host.silent:
            return
        try:
            self.decoder.feed(data)
            for event in self.decoder.events():
                if isinstance(event, KeepAlive):
                    continue
                answer = self.host.handle_frame(event)
                if answer is None:
                    self.transport.close()
                    return
                self.transport.write(answer)
        except WireError:
            self.transport.close()


async def serve_fake_host(host: FakeHost) -> tuple[asyncio.Server, int]:
    """The fake host on 127.0.0.1, port chosen by the OS."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _FakeHostProtocol(host), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port


@contextmanager
def threaded_host(host: FakeHost) -> Iterator[int]:
    """The fake host on its own event loop in a thread, for code that calls asyncio.run itself
    (the CLI). Yields the port."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, object] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        server, port = loop.run_until_complete(serve_fake_host(host))
        box["port"] = port
        ready.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(5), "fake host did not start"
    try:
        port = box["port"]
        assert isinstance(port, int)
        yield port
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def provisioned_host(n: int, **options: object) -> FakeHost:
    """A fake host that knows the first ``n`` terminals of the default provisioning plan."""
    from terminals_sim.provision import provision_plan

    terminals = {(p.merchant, p.terminal): p.tmk for p in provision_plan(n)}
    return FakeHost(terminals=terminals, **options)  # type: ignore[arg-type]
