"""The one HSM client: host commands as typed coroutines over any ``HsmTransport``.

Whoever talks to an HSM goes through ``HsmClient``: the switch (through its vocabulary in
``switch/keyservice.py``), ``switchsim hsm send`` and the tests. It builds the requests, checks
the response code and the error code, and parses the answer with ``FieldCursor``. What leaves it
is decided here, once:

* ``HsmTransportError`` (``hsm_sim.transports.interface``) when the HSM could not be asked, or
  what came back is not an answer to the request (too short, another command's response code,
  an error code payShield does not have, fields that do not parse). A transport's own errors
  pass through; any other ``OSError`` becomes ``HsmUnavailable``, a ``TimeoutError``
  ``HsmTimeout``.
* ``HsmAnswerError`` (an ``HsmError``: command and payShield error code) when the HSM answered
  an error code: anything but 00, and for a verification anything but 00 and 01. A caller that
  asked for a decision (does this PIN verify?) maps it to its own answer.
* ``HsmError`` when an argument cannot be sent at all (a key type with no export flag, KQ data
  too long): the caller's mistake, found before anything is sent.

Keys are passed and returned in host-command notation (``U`` + 32 hex, ...), always encrypted;
PAN arguments are the 12-digit account field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import TypeVar

from hsm_sim.cryptoerrors import CryptoError
from hsm_sim.emv import Scheme, pan_psn_block
from hsm_sim.errors import ErrorCode, HsmError, crypto_error_code
from hsm_sim.hostcmd import FieldCursor, response_code
from hsm_sim.lmk import KeyScheme, parse_key_field
from hsm_sim.transports.interface import (
    HsmProtocolError,
    HsmTimeout,
    HsmTransport,
    HsmTransportError,
    HsmUnavailable,
    os_reason,
)

_T = TypeVar("_T")


class HsmAnswerError(HsmError):
    """The HSM was asked and answered ``command`` with an error code. The reason names the
    command and the code, never a field of the request."""

    command: str

    def __init__(self, command: str, code: ErrorCode) -> None:
        super().__init__(code, f"{command}: HSM answered {code.value} ({code.description})")
        self.command = command

    def __reduce__(self) -> tuple[type[HsmAnswerError], tuple[str, ErrorCode]]:  # type: ignore[override]
        return (type(self), (self.command, self.code))


@dataclass(frozen=True, slots=True, repr=False)
class Answer:
    """A host-command answer split into its parts, not judged. ``error_code`` is the 2-character
    code as received (it may not be one this HSM knows); ``fields`` is everything after it."""

    response_code: str
    error_code: str
    fields: bytes

    @property
    def error_description(self) -> str:
        try:
            return ErrorCode(self.error_code).description
        except ValueError:
            return "unknown error code"

    def __repr__(self) -> str:
        # Fields can hold a clear PIN (NG) or a clear key (test commands): their length only.
        return f"Answer({self.response_code}, {self.error_code}, {len(self.fields)} bytes of fields)"


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

    @property
    def export_ciphertext(self) -> bytes | None:
        """The exported copy without its scheme tag: the bytes a terminal decrypts with its TMK."""
        return None if self.under_export is None else parse_key_field(self.under_export)[1]


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

    async def close(self) -> None:
        await self._transport.close()

    async def send(self, message: bytes) -> Answer:
        """One host command as given (``code + fields``) and its answer, split but not judged:
        the error code is the caller's to read (``switchsim hsm send`` prints it). Raises
        ``HsmTransportError`` when the HSM cannot be asked or the answer is not one to this
        command, ``HsmError`` when ``message`` does not start with a command code."""
        answer = await self._exchange(message)
        return Answer(answer[:2].decode("latin-1"), answer[2:4].decode("latin-1"), answer[4:])

    async def _exchange(self, message: bytes) -> bytes:
        """``send`` without the split: the answer, checked to carry this command's response
        code and an error code (not yet judged)."""
        command = message[:2].decode("latin-1")
        try:
            expected = _RESPONSE_CODES[command]
        except KeyError:
            try:
                expected = response_code(command).encode("latin-1")
            except ValueError:
                raise HsmError(ErrorCode.INPUT_DATA, f"{command!r} is not a host command code") from None
        try:
            answer = await self._transport.request(message)
        except HsmTransportError:
            raise
        except TimeoutError as exc:  # before OSError, of which it is a subclass
            raise HsmTimeout(f"{command}: no answer from the HSM ({os_reason(exc)})") from exc
        except OSError as exc:
            raise HsmUnavailable(f"{command}: cannot reach the HSM ({os_reason(exc)})") from exc
        if len(answer) < 4:
            raise HsmProtocolError(
                f"{command}: answer of {len(answer)} bytes is too short for response and error codes"
            )
        if answer[:2] != expected:
            got = answer[:2].decode("latin-1")
            raise HsmProtocolError(
                f"{command}: answer carries response code {got!r}, expected {expected.decode('latin-1')}"
            )
        return answer

    async def _ask(
        self, message: str | bytes, parse: Callable[[FieldCursor, ErrorCode], _T], *, verify: bool = False
    ) -> _T:
        """Send, judge the error code, parse the fields with ``parse(cursor, error code)``. 01
        passes only when ``verify`` is set. A field that does not parse is the HSM's mistake,
        not the caller's: it leaves as ``HsmProtocolError``."""
        raw = message.encode("ascii") if isinstance(message, str) else message
        answer = await self._exchange(raw)
        return _parsed(raw, answer[4:], parse, _judged(raw, answer, verify))

    async def _verified(self, message: str | bytes) -> bool:
        raw = message.encode("ascii") if isinstance(message, str) else message
        answer = await self._exchange(raw)
        error = _judged(raw, answer, True)
        if len(answer) == 4:  # the usual verdict: nothing after the error code, nothing to parse
            return error is _NO_ERROR
        return _parsed(raw, answer[4:], _verdict, error)

    # --- diagnostics ----------------------------------------------------------------------

    async def diagnostics(self) -> Diagnostics:
        """NC: the LMK check value (16H) and firmware number."""
        return await self._ask("NC", _diagnostics)

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
        exported = export_under is not None

        def parse(cur: FieldCursor, _error: ErrorCode) -> GeneratedKey:
            under_lmk = cur.take_key("Key (LMK)").text
            under_export = cur.take_key("Key (ZMK/TMK)", "ZUTXY").text if exported else None
            kcv = cur.take_hex_text(6, "Key check value")
            cur.finish()
            return GeneratedKey(under_lmk, under_export, kcv)

        return await self._ask(message, parse)

    async def import_clear_key(self, key_type: str, clear: bytes) -> ImportedKey:
        """ZK (switchsim extension): a clear test key (a terminal's TMK, a test card's IMK-AC as
        key type "109") under the LMK. The clear key crosses the transport: test keys only."""
        scheme = KeyScheme.for_length(KeyLength(len(clear)))
        # 01 = parity forced odd: DES ignores parity bits, so the key works the same.
        return await self._ask(f"ZK{key_type}{scheme.value}{clear.hex().upper()}", _imported, verify=True)

    async def check_value(self, key_type: str, key: str) -> str:
        """BU: the 16-hex-digit check value of a key under the LMK (UnionPay field 62 sends the
        first 8, A0 answers the first 6)."""
        length = FieldCursor(key.encode("ascii")).take_key("key").scheme.key_length
        flag = {8: "0", 16: "1", 24: "2"}[length]
        return await self._ask(f"BUFF{flag}{key};{key_type}", _check_value)

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
        return await self._ask(
            f"CA{tpk}{zpk}{max_pin_length:02d}{pin_block}{source_format}{dest_format}{pan12}", _translated
        )

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
        return await self._ask(
            f"CC{source_zpk}{dest_zpk}{max_pin_length:02d}{pin_block}{source_format}{dest_format}{pan12}",
            _translated,
        )

    async def translate_pin_tpk_to_lmk(self, tpk: str, pin_block: str, fmt: str, pan12: str) -> str:
        """JC: a terminal PIN block as a PIN under the LMK (for storage or BC)."""
        return await self._ask(f"JC{tpk}{pin_block}{fmt}{pan12}", _lmk_pin)

    async def verify_terminal_pin_comparison(
        self, tpk: str, pin_block: str, fmt: str, pan12: str, lmk_pin: str
    ) -> bool:
        """BC: does the PIN in the TPK-encrypted block equal the PIN stored under the LMK?"""
        return await self._verified(f"BC{tpk}{pin_block}{fmt}{pan12}{lmk_pin}")

    async def encrypt_clear_pin(self, pin: str, pan12: str) -> str:
        """BA: a clear PIN (4-12 digits) as a PIN under the LMK. Only for provisioning test
        cards: the clear PIN crosses the transport."""
        return await self._ask(f"BA{pin}F{pan12}", _lmk_pin)

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
        size = 16 if long_mac else 8

        def parse(cur: FieldCursor, _error: ErrorCode) -> str:
            mac = cur.take_hex_text(size, "MAC")
            cur.finish()
            return mac

        return await self._ask(_mac_request("M6", key_type, key, data, algorithm, padding, long_mac), parse)

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
        wants_arpc = arc is not None

        def parse(cur: FieldCursor, error: ErrorCode) -> CryptogramCheck:
            if error is ErrorCode.VERIFICATION_FAILURE:
                cur.finish()
                return CryptogramCheck(False, None)
            arpc = cur.take_bytes(8, "ARPC") if wants_arpc else None
            cur.finish()
            return CryptogramCheck(True, arpc)

        return await self._ask(message, parse, verify=True)

    async def generate_arpc(
        self, scheme: Scheme, mk_ac: str, pan: str, psn: str, atc: bytes, un: bytes, arqc: bytes, arc: bytes
    ) -> bytes:
        """KQ mode 2: the ARPC (8 bytes) for ``arqc`` and response code ``arc``, no verification
        (a decline after a verified ARQC, or an answer re-sent)."""
        return await self._ask(_kq_head(b"2", scheme, mk_ac, pan, psn, atc, un) + arqc + arc, _arpc)


def _kq_head(mode: bytes, scheme: Scheme, mk_ac: str, pan: str, psn: str, atc: bytes, un: bytes) -> bytes:
    try:
        block = pan_psn_block(pan, psn)
    except CryptoError as exc:  # an argument that cannot be sent: the caller's, as HsmError
        raise HsmError(crypto_error_code(exc), f"KQ: {exc.reason}") from None
    return b"KQ" + mode + scheme.value.encode("ascii") + mk_ac.encode("ascii") + block + atc + un


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


# --- answer parsers: ``parse(cursor, error code)`` for ``HsmClient._ask`` ----------------------

# Enum members as module constants: an enum attribute lookup is a Python-level call in 3.11.
_NO_ERROR = ErrorCode.NO_ERROR
_VERIFICATION_FAILURE = ErrorCode.VERIFICATION_FAILURE
#: Error codes by their two bytes on the wire (a dict lookup, not an enum call, per answer).
_ERROR_CODES: dict[bytes, ErrorCode] = {code.value.encode("ascii"): code for code in ErrorCode}
#: Response codes of the commands the client sends most, as bytes; others are computed.
_RESPONSE_CODES: dict[str, bytes] = {c: response_code(c).encode("ascii") for c in ("BC", "M6", "M8", "CA", "JC")}


def _judged(raw: bytes, answer: bytes, verify: bool) -> ErrorCode:
    """The error code of ``answer`` (to ``raw``) if it passes: 00, and 01 only when ``verify``."""
    error = _ERROR_CODES.get(answer[2:4])
    if error is None:
        raise HsmProtocolError(
            f"{_command_of(raw)}: HSM answered unknown error code {answer[2:4].decode('latin-1')!r}"
        )
    if error is not _NO_ERROR and not (verify and error is _VERIFICATION_FAILURE):
        raise HsmAnswerError(_command_of(raw), error)
    return error


def _command_of(raw: bytes) -> str:
    return raw[:2].decode("ascii").upper()


def _parsed(raw: bytes, fields: bytes, parse: Callable[[FieldCursor, ErrorCode], _T], error: ErrorCode) -> _T:
    try:
        return parse(FieldCursor(fields), error)
    except HsmError as exc:
        raise HsmProtocolError(f"{_command_of(raw)}: malformed answer from the HSM: {exc.reason}") from None



def _verdict(cur: FieldCursor, error: ErrorCode) -> bool:
    cur.finish()
    return error is ErrorCode.NO_ERROR


def _diagnostics(cur: FieldCursor, _error: ErrorCode) -> Diagnostics:
    lmk_check = cur.take_hex_text(16, "LMK check value")
    firmware = cur.take(cur.remaining, "Firmware number")
    return Diagnostics(lmk_check, firmware)


def _imported(cur: FieldCursor, error: ErrorCode) -> ImportedKey:
    under_lmk = cur.take_key("Key (LMK)").text
    kcv = cur.take_hex_text(6, "Key check value")
    cur.finish()
    return ImportedKey(under_lmk, kcv, error is ErrorCode.VERIFICATION_FAILURE)


def _check_value(cur: FieldCursor, _error: ErrorCode) -> str:
    value = cur.take_hex_text(16, "Key check value")
    cur.finish()
    return value


def _arpc(cur: FieldCursor, _error: ErrorCode) -> bytes:
    arpc = cur.take_bytes(8, "ARPC")
    cur.finish()
    return arpc


def _translated(cur: FieldCursor, _error: ErrorCode) -> TranslatedPin:
    length = int(cur.take_digits(2, "PIN length"))
    block = cur.take_hex_text(16, "PIN block")
    fmt = cur.take_digits(2, "PIN block format")
    cur.finish()
    return TranslatedPin(length, block, fmt)


def _lmk_pin(cur: FieldCursor, _error: ErrorCode) -> str:
    value = cur.take_hex_text(16, "PIN (LMK)")
    cur.finish()
    return value
