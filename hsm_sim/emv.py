"""EMV and PBOC (UnionPay IC) application cryptograms: card keys, session keys, ARQC, ARPC.

Pure functions over clear keys; the host command KQ (``hsm_sim.commands.emv``) is the only
caller inside the HSM. The facts, from ../shared/vectors/emv.json ``conventions``:

* card key (ICC master key) by EMV option A: Y = the rightmost 16 digits of PAN || PSN (PSN 00
  when absent, left-padded with 0 to 16 digits), UDK = 3DES_IMK(Y) || 3DES_IMK(Y xor FF..FF).
  Returned without parity adjustment: DES ignores the parity bits.
* PBOC CVN 01 session key: SK = 3DES_UDK(000000000000 || ATC) || 3DES_UDK(000000000000 || ATC xor FFFF).
* EMV common session key (Book 2 A1.3.1): R = ATC || 000000000000, SK = 3DES_MK(R0 R1 F0 R3..R7)
  || 3DES_MK(R0 R1 0F R3..R7). The MasterCard proprietary derivation is the same function of
  R = ATC || 0000 || UN.
* ARQC: ISO 9797-1 MAC algorithm 3 over the transaction data, padding method 2 (1 for Visa).
* ARPC method 1: 3DES_K(ARQC xor (ARC || 000000000000)); method 2: the first 4 bytes of MAC
  algorithm 3 (padding 2) over ARQC || CSU || proprietary data.

A ``Scheme`` bundles the choices a card's cryptogram version makes (session key, padding, the
ARPC key, the data MACed); its values are the KQ scheme ID codes.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from types import MappingProxyType

from hsm_sim.ciphers import tdes_ecb_encrypt
from hsm_sim.cryptoerrors import InputError, KeyLengthError
from hsm_sim.mac import iso9797_alg3
from specs.tlv import Tlv, TlvError

_FF8 = bytes([0xFF]) * 8


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _check_key(key: bytes, name: str) -> None:
    if len(key) != 16:
        raise KeyLengthError(f"{name}: a double-length key is needed, got {len(key)} bytes")


def _check(value: bytes, size: int, name: str) -> None:
    if len(value) != size:
        raise InputError(f"{name}: {size} bytes needed, got {len(value)}")


# --- keys -----------------------------------------------------------------------------------


def pan_psn_block(pan: str, psn: str = "00") -> bytes:
    """Option A's Y: the rightmost 16 digits of PAN || PSN as 8 BCD bytes (KQ's PAN/PSN field)."""
    digits = pan + (psn or "00")
    if not digits.isdigit() or not pan or len(psn or "00") != 2:
        raise InputError("PAN/PSN: the PAN is digits and the PSN two digits")
    return bytes.fromhex(digits.rjust(16, "0")[-16:])


def icc_master_key(imk: bytes, y: bytes) -> bytes:
    """EMV option A card key from the issuer master key and the PAN/PSN block ``y``."""
    _check_key(imk, "IMK")
    _check(y, 8, "PAN/PSN")
    return tdes_ecb_encrypt(imk, y + _xor(y, _FF8))


def pboc_session_key(card_key: bytes, atc: bytes) -> bytes:
    """PBOC CVN 01 AC session key from the card key and the 2-byte ATC."""
    _check_key(card_key, "card key")
    _check(atc, 2, "ATC")
    return tdes_ecb_encrypt(card_key, bytes(6) + atc + bytes(6) + _xor(atc, b"\xff\xff"))


def common_session_key(card_key: bytes, r: bytes) -> bytes:
    """EMV common session key from the 8-byte diversification value R."""
    _check_key(card_key, "card key")
    _check(r, 8, "R")
    return tdes_ecb_encrypt(card_key, r[:2] + b"\xf0" + r[3:] + r[:2] + b"\x0f" + r[3:])


def generate_ac(key: bytes, data: bytes, padding: int = 2) -> bytes:
    """An application cryptogram (ARQC, TC, AAC): MAC algorithm 3 over ``data``."""
    _check_key(key, "AC key")
    return iso9797_alg3(key, data, padding)


def arpc_method1(key: bytes, arqc: bytes, arc: bytes) -> bytes:
    """ARPC method 1: 3DES_K(ARQC xor (ARC || 000000000000)); tag 91 = ARPC || ARC."""
    _check_key(key, "ARPC key")
    _check(arqc, 8, "ARQC")
    _check(arc, 2, "ARC")
    return tdes_ecb_encrypt(key, _xor(arqc, arc + bytes(6)))


def arpc_method2(key: bytes, arqc: bytes, csu: bytes, proprietary: bytes = b"") -> bytes:
    """ARPC method 2: 4 bytes; tag 91 = ARPC || CSU || proprietary authentication data."""
    _check_key(key, "ARPC key")
    _check(arqc, 8, "ARQC")
    _check(csu, 4, "CSU")
    if len(proprietary) > 8:
        raise InputError("proprietary authentication data: at most 8 bytes")
    return iso9797_alg3(key, arqc + csu + proprietary, 2)[:4]


# --- schemes --------------------------------------------------------------------------------


class SessionKey(Enum):
    NONE = "the card key itself"
    MASTERCARD = "EMV common session key with R = ATC || 0000 || UN"
    EMV_COMMON = "EMV common session key with R = ATC || 000000000000"
    PBOC = "PBOC CVN 01 session key from the ATC"


class ArpcKey(Enum):
    CARD_KEY = "the card key"
    SESSION_KEY = "the AC session key"


class Scheme(StrEnum):
    """A card's cryptogram rules, named by their KQ scheme ID."""

    VISA = "0"  # payShield: Visa CVN 10
    EUROPAY_MASTERCARD = "1"  # payShield: M/Chip with the MasterCard session key (CVN 16)
    PBOC = "P"  # switchsim extension: UnionPay PBOC / UICS CVN 01
    EMV_COMMON = "E"  # switchsim extension: EMV common session key (CVN 18-style)

    @property
    def rules(self) -> SchemeRules:
        return _RULES[self]


@dataclass(frozen=True, slots=True)
class SchemeRules:
    session_key: SessionKey
    padding: int  # ISO 9797-1 padding method of the ARQC MAC
    arpc_key: ArpcKey
    # Which bytes of the IAD (9F10) end the ARQC input after the EMV minimum set.
    iad_part: slice
    description: str


_RULES: Mapping[Scheme, SchemeRules] = MappingProxyType(
    {
        Scheme.VISA: SchemeRules(
            SessionKey.NONE,
            1,
            ArpcKey.CARD_KEY,
            slice(3, 7),
            "Visa CVN 10: ARQC and ARPC under the card key, zero padding; data ends with the CVR",
        ),
        Scheme.EUROPAY_MASTERCARD: SchemeRules(
            SessionKey.MASTERCARD,
            2,
            ArpcKey.CARD_KEY,
            slice(2, 8),
            "M/Chip (CVN 16): MasterCard session key from ATC and UN, ARPC under the card key",
        ),
        Scheme.PBOC: SchemeRules(
            SessionKey.PBOC,
            2,
            ArpcKey.SESSION_KEY,
            slice(3, 7),
            "UnionPay PBOC CVN 01: PBOC session key from the ATC, ARPC under the session key",
        ),
        Scheme.EMV_COMMON: SchemeRules(
            SessionKey.EMV_COMMON,
            2,
            ArpcKey.CARD_KEY,
            slice(0, None),
            "EMV common session key (R = ATC || 000000000000), ARPC method 1 under the card key; "
            "data ends with the whole IAD",
        ),
    }
)


def ac_key(scheme: Scheme, card_key: bytes, atc: bytes, un: bytes) -> bytes:
    """The key the card MACs its cryptogram with, for this scheme."""
    _check(atc, 2, "ATC")
    _check(un, 4, "UN")
    match scheme.rules.session_key:
        case SessionKey.NONE:
            _check_key(card_key, "card key")
            return card_key
        case SessionKey.MASTERCARD:
            return common_session_key(card_key, atc + b"\x00\x00" + un)
        case SessionKey.EMV_COMMON:
            return common_session_key(card_key, atc + bytes(6))
        case SessionKey.PBOC:
            return pboc_session_key(card_key, atc)


@dataclass(frozen=True, slots=True, repr=False)
class Cryptograms:
    """One transaction of one card: its AC key derived once, then ARQC and ARPC from it."""

    scheme: Scheme
    card_key: bytes
    key: bytes  # the AC key: a session key, or the card key when the scheme has none

    @classmethod
    def of(cls, scheme: Scheme, card_key: bytes, atc: bytes, un: bytes) -> Cryptograms:
        return cls(scheme, card_key, ac_key(scheme, card_key, atc, un))

    def arqc(self, data: bytes) -> bytes:
        """The cryptogram over ``data`` (unpadded: the scheme's padding is applied here)."""
        return generate_ac(self.key, data, self.scheme.rules.padding)

    def verifies(self, data: bytes, given: bytes) -> bool:
        _check(given, 8, "ARQC")
        return hmac.compare_digest(self.arqc(data), given)

    def arpc(self, cryptogram: bytes, arc: bytes) -> bytes:
        """ARPC method 1 for ``cryptogram`` and response code ``arc``, under the scheme's key."""
        session = self.scheme.rules.arpc_key is ArpcKey.SESSION_KEY
        return arpc_method1(self.key if session else self.card_key, cryptogram, arc)

    def __repr__(self) -> str:
        return f"Cryptograms({self.scheme.name})"


def arqc(scheme: Scheme, card_key: bytes, atc: bytes, un: bytes, data: bytes) -> bytes:
    """The ARQC a card of ``scheme`` computes over ``data`` (unpadded)."""
    return Cryptograms.of(scheme, card_key, atc, un).arqc(data)


def verify_arqc(scheme: Scheme, card_key: bytes, atc: bytes, un: bytes, data: bytes, given: bytes) -> bool:
    return Cryptograms.of(scheme, card_key, atc, un).verifies(data, given)


def arpc(scheme: Scheme, card_key: bytes, atc: bytes, un: bytes, cryptogram: bytes, arc: bytes) -> bytes:
    """The ARPC (method 1) the issuer answers ``cryptogram`` with, for response code ``arc``."""
    return Cryptograms.of(scheme, card_key, atc, un).arpc(cryptogram, arc)


# --- what the card MACs, and which scheme a card is -----------------------------------------

#: EMV Book 2's minimum set of data for an application cryptogram, in order: the first 29 bytes
#: of a UnionPay CDOL1 (9F02 .. 9F37), then AIP and ATC.
MINIMUM_AC_TAGS: tuple[tuple[str, int], ...] = (
    ("9F02", 6),
    ("9F03", 6),
    ("9F1A", 2),
    ("95", 5),
    ("5F2A", 2),
    ("9A", 3),
    ("9C", 1),
    ("9F37", 4),
    ("82", 2),
    ("9F36", 2),
)
IAD_TAG = "9F10"


def arqc_data(scheme: Scheme, objects: Mapping[str, Tlv], *, field: str = "55") -> bytes:
    """The ARQC input a card of ``scheme`` MACs, rebuilt from its field 55 data objects.

    The minimum set (each of its exact length), then the part of the IAD the scheme uses: for
    PBOC and Visa CVN 10 the 4-byte CVR (IAD bytes 4-7), for M/Chip the 6-byte CVR (bytes
    3-8), for the EMV common scheme the whole IAD. A missing or wrongly sized tag is a
    ``TlvError`` naming it (answered 30).
    """
    parts: list[bytes] = []
    for tag, size in (*MINIMUM_AC_TAGS, (IAD_TAG, 0)):
        obj = objects.get(tag)
        if obj is None:
            raise TlvError(tag, 0, "needed for the ARQC but absent", field)
        if size and len(obj.value) != size:
            raise TlvError(tag, obj.offset, f"length {len(obj.value)}; the ARQC needs {size}", field)
        parts.append(obj.value)
    iad = parts.pop()
    part = iad[scheme.rules.iad_part]
    wanted = scheme.rules.iad_part
    if wanted.stop is not None and len(part) != wanted.stop - wanted.start:
        raise TlvError(IAD_TAG, objects[IAD_TAG].offset, f"too short for the {scheme.name} CVR", field)
    return b"".join(parts) + part


# IAD format of UnionPay (PBOC / UICS, first byte 07) and Visa (first byte 06) cards: length of
# the standard part, key derivation index, cryptogram version number, CVR. For PBOC byte 8 is
# the algorithm: 01 3DES, 04 SM4.
_CVN_SCHEMES: Mapping[tuple[int, int], Scheme] = MappingProxyType(
    {
        (0x07, 0x01): Scheme.PBOC,
        (0x06, 0x0A): Scheme.VISA,
        (0x06, 0x12): Scheme.EMV_COMMON,
    }
)
_SM4 = 0x04


def scheme_for_iad(iad: bytes) -> Scheme:
    """The scheme a card's IAD (9F10) names by its cryptogram version number.

    PBOC CVN 01 (07 xx 01 ...) -> PBOC; Visa-format CVN 10 (06 xx 0A) -> VISA; CVN 18 (06 xx 12)
    -> EMV_COMMON, the switchsim CVN 18-style card (option A card key, ARPC method 1; a
    real VIS CVN 18 card uses option B and ARPC method 2). Anything else, and a PBOC card
    whose algorithm byte says SM4, raises InputError saying what was found.
    """
    if len(iad) < 3:
        raise InputError(f"IAD: {len(iad)} bytes, too short to name a CVN")
    scheme = _CVN_SCHEMES.get((iad[0], iad[2]))
    if scheme is None:
        raise InputError(f"IAD: format {iad[0]:02X} with CVN {iad[2]:02X} is not supported")
    if scheme is Scheme.PBOC and len(iad) > 7 and iad[7] == _SM4:
        raise InputError("IAD: an SM4 card (algorithm 04); only 3DES is supported")
    return scheme
