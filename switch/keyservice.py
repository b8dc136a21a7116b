"""Every key and PIN operation the switch needs, as Thales-style host commands to the HSM.

The switch never sees a clear key or PIN: it sends LMK-encrypted keys and encrypted PIN
blocks, and receives LMK-encrypted results. The same code serves the in-process HSM and a
remote one, because both are an `HsmTransport`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from hsm_sim.facade import HsmTransport
from specs.observer import NULL_OBSERVER, Observer

_ACCOUNT_NONE = "000000000000"  # operator passwords: PIN blocks with the PAN field all zeros
_PIN_FORMAT_ISO0 = "01"
_MAC_ALGORITHM_CUP = "9"  # this product's M6/M8 extension: the UnionPay POS ECB MAC


class KeyKind(StrEnum):
    """Working-key types and their Thales key-type codes."""

    PIK = "002"  # TPK, LMK 14-15
    MAK = "003"  # TAK, LMK 16-17
    TDK = "00B"  # DEK/TEK, LMK 32-33


_BU_CODES = {KeyKind.PIK: "02", KeyKind.MAK: "03", KeyKind.TDK: "0B"}
_SCHEME_FOR_LENGTH = {8: "Z", 16: "U", 24: "T"}
_EXPORT_SCHEME_FOR_LENGTH = {8: "Z", 16: "X", 24: "Y"}  # X9.17: plain TDES-ECB, as terminals expect
_LENGTH_FLAG = {8: "0", 16: "1", 24: "2"}
_HEX_ASCII = frozenset(b"0123456789ABCDEF")
_KEY_FIELD_LENGTHS = {"U": 33, "T": 49, "X": 33, "Y": 49}


class HsmFailure(Exception):
    """The HSM answered with an error code (never carries key or PIN material)."""

    def __init__(self, command: str, code: str) -> None:
        self.command = command
        self.code = code
        super().__init__(f"HSM {command} answered error {code}")


@dataclass(frozen=True, slots=True)
class WorkingKey:
    kind: KeyKind
    under_lmk: str  # host-command key notation, for the session
    under_tmk: bytes  # ciphertext for field 62
    check_value: bytes  # first 4 bytes of E(key, zeros), for field 62

    def __repr__(self) -> str:
        return f"WorkingKey({self.kind.name}, {len(self.under_tmk)} bytes)"


def _key_field(text: str, pos: int) -> tuple[str, int]:
    """One key in host-command notation starting at ``pos``; returns it and the next position."""
    width = _KEY_FIELD_LENGTHS.get(text[pos : pos + 1], 16)
    return text[pos : pos + width], pos + width


def _strip_scheme(key: str) -> bytes:
    return bytes.fromhex(key[1:] if key[:1] in _KEY_FIELD_LENGTHS else key)


class KeyService:
    def __init__(self, transport: HsmTransport, observer: Observer = NULL_OBSERVER) -> None:
        self._hsm = transport
        self._observer = observer  # every host command timed, with its error code

    async def _call(self, command: str, payload: bytes, accept: tuple[str, ...] = ("00",)) -> tuple[str, str]:
        started = time.perf_counter()
        try:
            raw = await self._hsm.request(command.encode("ascii") + payload)
        except Exception:  # a transport error or timeout: no answer (a cancelled call is not counted)
            self._observer.hsm_command(command, "transport", time.perf_counter() - started)
            raise
        answer = raw.decode("latin-1")
        code = answer[2:4]
        self._observer.hsm_command(command, code, time.perf_counter() - started)
        if code not in accept:
            raise HsmFailure(command, code)
        return code, answer[4:]

    async def import_clear_key(self, kind: str, clear: bytes) -> tuple[str, str]:
        """A test key given in clear (terminal registration): returns (under LMK, 6-hex KCV)."""
        scheme = _SCHEME_FOR_LENGTH[len(clear)]
        # 01 = parity forced odd: DES ignores parity bits, so the key works the same.
        _, rest = await self._call("ZK", f"{kind}{scheme}{clear.hex().upper()}".encode(), accept=("00", "01"))
        key, pos = _key_field(rest, 0)
        return key, rest[pos : pos + 6]

    async def generate_working_key(self, kind: KeyKind, length: int, tmk_lmk: str) -> WorkingKey:
        """A fresh key under the LMK and under the terminal's TMK, with its 4-byte check value."""
        request = f"1{kind.value}{_SCHEME_FOR_LENGTH[length]};1{tmk_lmk}{_EXPORT_SCHEME_FOR_LENGTH[length]}"
        _, rest = await self._call("A0", request.encode())
        under_lmk, pos = _key_field(rest, 0)
        under_tmk, _ = _key_field(rest, pos)
        kcv = await self.check_value(kind, under_lmk, length)
        return WorkingKey(kind, under_lmk, _strip_scheme(under_tmk), kcv[:4])

    async def check_value(self, kind: KeyKind, key_lmk: str, length: int) -> bytes:
        _, rest = await self._call("BU", f"{_BU_CODES[kind]}{_LENGTH_FLAG[length]}{key_lmk}".encode())
        return bytes.fromhex(rest[:16])

    async def encrypt_password(self, password: str) -> str:
        """An operator password as an LMK-encrypted PIN (BA)."""
        return await self.encrypt_pin(password, _ACCOUNT_NONE)

    async def encrypt_pin(self, pin: str, account: str) -> str:
        """BA: a clear PIN (test-card set-up) to its LMK-encrypted form for ``account``."""
        _, rest = await self._call("BA", f"{pin}F{account}".encode())
        return rest[:16]

    async def verify_password(self, pik_lmk: str, pin_block: bytes, pin_lmk: str) -> bool:
        """BC: the PIK-encrypted block against the stored LMK-encrypted password."""
        return await self.verify_pin(pik_lmk, pin_block, _ACCOUNT_NONE, pin_lmk)

    async def verify_pin(self, pik_lmk: str, pin_block: bytes, account: str, pin_lmk: str) -> bool:
        """BC: an ISO format 0 block under the PIK against an LMK-encrypted PIN, for ``account``."""
        request = f"{pik_lmk}{pin_block.hex().upper()}{_PIN_FORMAT_ISO0}{account}{pin_lmk}"
        code, _ = await self._call("BC", request.encode(), accept=("00", "01"))
        return code == "00"

    async def translate_password(self, pik_lmk: str, pin_block: bytes) -> str:
        """JC: a new password block under the PIK to its LMK-encrypted form."""
        request = f"{pik_lmk}{pin_block.hex().upper()}{_PIN_FORMAT_ISO0}{_ACCOUNT_NONE}"
        _, rest = await self._call("JC", request.encode())
        return rest[:16]

    async def generate_mac(self, mak_lmk: str, data: bytes) -> bytes:
        """The UnionPay POS MAC (8 ASCII characters) of ``data`` under the session MAK."""
        _, rest = await self._call("M6", self._mac_request(mak_lmk, data))
        return rest[:8].encode("ascii")

    async def verify_mac(self, mak_lmk: str, data: bytes, mac: bytes) -> bool:
        if len(mac) != 8 or not set(mac) <= _HEX_ASCII:
            return False  # a UnionPay POS MAC is 8 uppercase hex characters: anything else is wrong
        code, _ = await self._call("M8", self._mac_request(mak_lmk, data) + mac, accept=("00", "01"))
        return code == "00"

    @staticmethod
    def _mac_request(mak_lmk: str, data: bytes) -> bytes:
        head = f"000{_MAC_ALGORITHM_CUP}1{KeyKind.MAK.value}{mak_lmk}{len(data):04X}"
        return head.encode("ascii") + data
