"""Typed async facade over host commands, for the switch.

``HsmTransport`` is the one thing a caller needs to reach an HSM: ``request(message)`` sends
``command code + fields`` and returns ``response code + error code + fields`` (no length prefix,
no message header: a remote transport adds and strips those). ``InProcTransport`` calls a
``Dispatcher`` directly; remote transports live with the servers.

``HsmClient`` builds the requests and parses the answers. Every method raises ``HsmError`` with
the HSM's error code when the answer is neither 00 nor (for verifications) 01, and
``HsmError(15)`` when the answer is malformed. Keys are passed and returned in host-command
notation (``U`` + 32 hex, ...), always encrypted; PAN arguments are the 12-digit account field.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Protocol, runtime_checkable

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.emv import Scheme, pan_psn_block
from hsm_sim.errors import ErrorCode, HsmError
from hsm_sim.hostcmd import FieldCursor, response_code
from hsm_sim.lmk import KeyScheme


@runtime_checkable
class HsmTransport(Protocol):
    async def request(self, message: bytes) -> bytes:
        """Send one host command, return its response (both without header or length)."""
        ...


class InProcTransport:
    """An HSM in the same process: no I/O, answers synchronously inside the coroutine."""

    __slots__ = ("_dispatcher",)

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    async def request(self, message: bytes) -> bytes:
        return self._dispatcher.handle(message)


class KeyLength(IntEnum):
    """Clear key length in bytes."""

    SINGLE = 8
    DOUBLE = 16
    TRIPLE = 24


class MacAlgorithm(StrEnum):
    """M6/M8 MAC algorithm codes."""

    ISO9797_ALG1 = "1"  # ANSI X9.9 with a single-length key
    ISO9797_ALG3 = "3"  # ANSI X9.19 retail MAC, double-length key
    CUP_POS = "9"  # this product's extension: China UnionPay POS field-64 MAC


#: Key types that can carry an exported key, and the A0/A8 ZMK/TMK flag each needs.
_EXPORT_FLAGS = {"000": "0", "002": "1"}


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    """A fresh key: under the LMK (for storage), optionally under a ZMK/TMK, and its 6H KCV."""

    under_lmk: str
    under_export: str | None
    kcv: str


@dataclass(frozen=True, slots=True)
class TranslatedPin:
    pin_length: int
    pin_block: str
    format_code: str


@dataclass(frozen=True, slots=True)
class Diagnostics:
    lmk_check_value: str
    firmware: str


@dataclass(frozen=True, slots=True)
class ImportedKey:
    """A clear test key taken in (ZK): under the LMK, its 6H KCV, and whether the HSM had to
    force its parity odd (the key is still imported then, as payShield's 01 warning says)."""

    under_lmk: str
    kcv: str
    parity_fixed: bool


@dataclass(frozen=True, slots=True, repr=False)
class CryptogramCheck:
    """What KQ said about an ARQC: whether it verified, and the ARPC when one was asked for."""

    verified: bool
    arpc: bytes | None

    def __repr__(self) -> str:
        arpc = "none" if self.arpc is None else self.arpc.hex().upper()
        return f"CryptogramCheck(verified={self.verified}, arpc={arpc})"


class HsmClient:
    """Host commands as typed coroutines over any ``HsmTransport``."""

    __slots__ = ("_transport",)

    def __init__(self, transport: HsmTransport) -> None:
        self._transport = transport

    async def _exchange(self, message: str | bytes, *, verify: bool) -> tuple[str, FieldCursor]:
        """Send, check the response code and error code; return the error code and a cursor
        over the response fields. 01 passes only when ``verify`` is set."""
        raw = message.encode("ascii") if isinstance(message, str) else message
        command = raw[:2].decode("ascii")
        answer = await self._transport.request(raw)
        expected = response_code(command).encode("ascii")
        if len(answer) < 4 or answer[:2] != expected:
            raise HsmError(ErrorCode.INPUT_DATA, f"{command}: malformed answer from the HSM")
        error = answer[2:4].decode("latin-1")
        if error != ErrorCode.NO_ERROR and not (verify and error == ErrorCode.VERIFICATION_FAILURE):
            try:
                code = ErrorCode(error)
            except ValueError:
                raise HsmError(
                    ErrorCode.INPUT_DATA, f"{command}: HSM answered unknown error code {error!r}"
                ) from None
            raise HsmError(code, f"{command}: HSM answered {error} ({code.description})")
        return error, FieldCursor(answer[4:])

    async def _call(self, message: str | bytes) -> FieldCursor:
        _, cursor = await self._exchange(message, verify=False)
        return cursor

    async def _verified(self, message: str | bytes) -> bool:
        error, cursor = await self._exchange(message, verify=True)
        cursor.finish()
        return error == ErrorCode.NO_ERROR

    # --- diagnostics ----------------------------------------------------------------------

    async def diagnostics(self) -> Diagnostics:
        """NC: the LMK check value (16H) and firmware number."""
        cur = await self._call("NC")
        lmk_check = cur.take_hex_text(16, "LMK check value")
        firmware = cur.take(cur.remaining, "Firmware number")
        return Diagnostics(lmk_check, firmware)

    # --- keys -----------------------------------------------------------------------------

    async def generate_key(
        self,
        key_type: str,
        length: int,
        export_under: tuple[str, str] | None = None,
        *,
        export_variant: bool = False,
    ) -> GeneratedKey:
        """A0: a new key of ``key_type`` (e.g. "001" PIK/TPK/ZPK, "002" TPK, "003" TAK, "00B"
        TDK) and ``length`` bytes (8, 16, 24).

        ``export_under`` = (KEK key type, KEK field): ("002", tmk) for a terminal's TMK or
        ("000", zmk) for a ZMK. The exported copy is plain TDES-ECB (scheme Z/X/Y), which is what
        a UnionPay terminal decrypts; ``export_variant`` asks for the variant schemes U/T.
        """
        lmk_scheme = KeyScheme.for_length(KeyLength(length))
        message = f"A0{'1' if export_under else '0'}{key_type}{lmk_scheme.value}"
        if export_under is not None:
            kek_type, kek = export_under
            flag = _EXPORT_FLAGS.get(kek_type)
            if flag is None:
                raise HsmError(ErrorCode.INVALID_KEY_TYPE, f"cannot export under key type {kek_type}")
            export_scheme = KeyScheme.for_length(length, variant=export_variant)
            message += f";{flag}{kek}{export_scheme.value}"
        cur = await self._call(message)
        under_lmk = cur.take_key("Key (LMK)").text
        under_export = cur.take_key("Key (ZMK/TMK)", "ZUTXY").text if export_under else None
        kcv = cur.take_hex_text(6, "Key check value")
        cur.finish()
        return GeneratedKey(under_lmk, under_export, kcv)

    async def import_clear_key(self, key_type: str, clear: bytes) -> ImportedKey:
        """ZK (switchsim extension): a clear test key (a terminal's TMK, a test card's IMK-AC as
        key type "109") under the LMK. The clear key crosses the transport: test keys only."""
        scheme = KeyScheme.for_length(KeyLength(len(clear)))
        error, cur = await self._exchange(f"ZK{key_type}{scheme.value}{clear.hex().upper()}", verify=True)
        under_lmk = cur.take_key("Key (LMK)").text
        kcv = cur.take_hex_text(6, "Key check value")
        cur.finish()
        return ImportedKey(under_lmk, kcv, error == ErrorCode.VERIFICATION_FAILURE)

    async def check_value(self, key_type: str, key: str) -> str:
        """BU: the 16-hex-digit check value of a key under the LMK (UnionPay field 62 sends the
        first 8, A0 answers the first 6)."""
        length = FieldCursor(key.encode("ascii")).take_key("key").scheme.key_length
        flag = {8: "0", 16: "1", 24: "2"}[length]
        cur = await self._call(f"BUFF{flag}{key};{key_type}")
        value = cur.take_hex_text(16, "Key check value")
        cur.finish()
        return value

    # --- PINs -----------------------------------------------------------------------------

    async def translate_pin_tpk_to_zpk(
        self,
        tpk: str,
        zpk: str,
        pin_block: str,
        pan12: str,
        *,
        source_format: str = "01",
        dest_format: str = "01",
        max_pin_length: int = 12,
    ) -> TranslatedPin:
        """CA: re-encrypt a terminal PIN block under a ZPK (and optionally another format)."""
        cur = await self._call(
            f"CA{tpk}{zpk}{max_pin_length:02d}{pin_block}{source_format}{dest_format}{pan12}"
        )
        return _translated(cur)

    async def translate_pin_zpk_to_zpk(
        self,
        source_zpk: str,
        dest_zpk: str,
        pin_block: str,
        pan12: str,
        *,
        source_format: str = "01",
        dest_format: str = "01",
        max_pin_length: int = 12,
    ) -> TranslatedPin:
        """CC: re-encrypt an interchange PIN block under another ZPK."""
        cur = await self._call(
            f"CC{source_zpk}{dest_zpk}{max_pin_length:02d}{pin_block}{source_format}{dest_format}{pan12}"
        )
        return _translated(cur)

    async def translate_pin_tpk_to_lmk(self, tpk: str, pin_block: str, fmt: str, pan12: str) -> str:
        """JC: a terminal PIN block as a PIN under the LMK (for storage or BC)."""
        cur = await self._call(f"JC{tpk}{pin_block}{fmt}{pan12}")
        return _lmk_pin(cur)

    async def verify_terminal_pin_comparison(
        self, tpk: str, pin_block: str, fmt: str, pan12: str, lmk_pin: str
    ) -> bool:
        """BC: does the PIN in the TPK-encrypted block equal the PIN stored under the LMK?"""
        return await self._verified(f"BC{tpk}{pin_block}{fmt}{pan12}{lmk_pin}")

    async def encrypt_clear_pin(self, pin: str, pan12: str) -> str:
        """BA: a clear PIN (4-12 digits) as a PIN under the LMK. Only for provisioning test
        cards: the clear PIN crosses the transport."""
        cur = await self._call(f"BA{pin}F{pan12}")
        return _lmk_pin(cur)

    # --- MACs -----------------------------------------------------------------------------

    async def generate_mac(
        self,
        key_type: str,
        key: str,
        data: bytes,
        algorithm: MacAlgorithm,
        *,
        padding: int = 1,
        long_mac: bool = False,
    ) -> str:
        """M6 over binary ``data``: 8 hex characters (16 with ``long_mac``; not for CUP_POS)."""
        cur = await self._call(_mac_request("M6", key_type, key, data, algorithm, padding, long_mac))
        mac = cur.take_hex_text(16 if long_mac else 8, "MAC")
        cur.finish()
        return mac

    async def verify_mac(
        self,
        key_type: str,
        key: str,
        data: bytes,
        mac: str,
        algorithm: MacAlgorithm,
        *,
        padding: int = 1,
    ) -> bool:
        """M8: True when ``mac`` (8 or 16 hex characters) is the MAC of ``data``."""
        long_mac = len(mac) == 16
        message = _mac_request("M8", key_type, key, data, algorithm, padding, long_mac)
        return await self._verified(message + mac.encode("ascii"))


    # --- EMV cryptograms -------------------------------------------------------------------

    async def verify_arqc(
        self,
        scheme: Scheme,
        mk_ac: str,
        pan: str,
        psn: str,
        atc: bytes,
        un: bytes,
        data: bytes,
        arqc: bytes,
        *,
        arc: bytes | None = None,
    ) -> CryptogramCheck:
        """KQ mode 0 (or 1 when ``arc`` is given: the ARPC for that response code comes back
        with a verified ARQC). ``mk_ac`` is the IMK-AC under the LMK (key type 109), ``data`` the
        unpadded ARQC input (``hsm_sim.emv.arqc_data``), 1-255 bytes."""
        if not 1 <= len(data) <= 0xFF:
            raise HsmError(ErrorCode.DATA_LENGTH, f"KQ: transaction data of {len(data)} bytes; 1-255 allowed")
        mode = b"0" if arc is None else b"1"
        message = (
            _kq_head(mode, scheme, mk_ac, pan, psn, atc, un)
            + f"{len(data):02X}".encode("ascii")
            + data
            + b";"
            + arqc
            + (arc or b"")
        )
        error, cur = await self._exchange(message, verify=True)
        if error == ErrorCode.VERIFICATION_FAILURE:
            cur.finish()
            return CryptogramCheck(False, None)
        arpc = cur.take_bytes(8, "ARPC") if arc is not None else None
        cur.finish()
        return CryptogramCheck(True, arpc)

    async def generate_arpc(
        self, scheme: Scheme, mk_ac: str, pan: str, psn: str, atc: bytes, un: bytes, arqc: bytes, arc: bytes
    ) -> bytes:
        """KQ mode 2: the ARPC (8 bytes) for ``arqc`` and response code ``arc``, no verification
        (a decline after a verified ARQC, or an answer re-sent)."""
        cur = await self._call(_kq_head(b"2", scheme, mk_ac, pan, psn, atc, un) + arqc + arc)
        arpc = cur.take_bytes(8, "ARPC")
        cur.finish()
        return arpc


def _kq_head(mode: bytes, scheme: Scheme, mk_ac: str, pan: str, psn: str, atc: bytes, un: bytes) -> bytes:
    return b"KQ" + mode + scheme.value.encode("ascii") + mk_ac.encode("ascii") + pan_psn_block(pan, psn) + atc + un


def _mac_request(
    code: str,
    key_type: str,
    key: str,
    data: bytes,
    algorithm: MacAlgorithm,
    padding: int,
    long_mac: bool,
) -> bytes:
    head = f"{code}00{'1' if long_mac else '0'}{algorithm.value}{padding}{key_type}{key}{len(data):04X}"
    return head.encode("ascii") + data


def _translated(cur: FieldCursor) -> TranslatedPin:
    length = int(cur.take_digits(2, "PIN length"))
    block = cur.take_hex_text(16, "PIN block")
    fmt = cur.take_digits(2, "PIN block format")
    cur.finish()
    return TranslatedPin(length, block, fmt)


def _lmk_pin(cur: FieldCursor) -> str:
    value = cur.take_hex_text(16, "PIN (LMK)")
    cur.finish()
    return value
