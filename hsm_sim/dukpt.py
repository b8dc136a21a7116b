"""DUKPT key derivation: TDES (ANSI X9.24-1:2009) and AES (ANSI X9.24-3:2017).

Host side only: every key is derived from the BDK and the KSN on demand, no future-key
registers are kept.
"""

from __future__ import annotations

from enum import Enum, IntEnum

from hsm_sim.ciphers import aes_ecb_encrypt, tdes_ecb_encrypt
from hsm_sim.cryptoerrors import IncompatibleKeyLengthError, InputError, KeyLengthError

# --- TDES DUKPT ---------------------------------------------------------------------------------

_KSN_BYTES = 10
_COUNTER_BITS = 21
_COUNTER_MASK = (1 << _COUNTER_BITS) - 1
_KEY_MASK = bytes.fromhex("C0C0C0C000000000C0C0C0C000000000")


class DukptUsage(Enum):
    """What a DUKPT working key is for."""

    PIN = "pin"
    MAC_REQUEST = "mac_request"
    MAC_RESPONSE = "mac_response"
    DATA_REQUEST = "data_request"
    DATA_RESPONSE = "data_response"


# X9.24-1:2009 variant constants, XORed into each half of the transaction key.
_TDES_VARIANTS: dict[DukptUsage, bytes] = {
    DukptUsage.PIN: bytes.fromhex("00000000000000FF"),
    DukptUsage.MAC_REQUEST: bytes.fromhex("000000000000FF00"),
    DukptUsage.MAC_RESPONSE: bytes.fromhex("00000000FF000000"),
    DukptUsage.DATA_REQUEST: bytes.fromhex("0000000000FF0000"),
    DukptUsage.DATA_RESPONSE: bytes.fromhex("000000FF00000000"),
}


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _check_bdk(bdk: bytes) -> None:
    if len(bdk) != 16:
        raise KeyLengthError(f"TDES DUKPT BDK must be 16 bytes, got {len(bdk)}")


def _check_ksn(ksn: bytes) -> None:
    if len(ksn) != _KSN_BYTES:
        raise InputError(f"TDES KSN must be 10 bytes, got {len(ksn)}")


def ksn_counter(ksn: bytes) -> int:
    """The 21-bit transaction counter of a TDES KSN."""
    _check_ksn(ksn)
    return int.from_bytes(ksn[-3:], "big") & _COUNTER_MASK


def ipek_tdes(bdk: bytes, ksn: bytes) -> bytes:
    """Initial PIN Encryption Key (IPEK) for the device whose KSN is ``ksn``."""
    _check_bdk(bdk)
    _check_ksn(ksn)
    base = int.from_bytes(ksn, "big") & ~_COUNTER_MASK & ((1 << 80) - 1)
    left8 = base.to_bytes(_KSN_BYTES, "big")[:8]
    return tdes_ecb_encrypt(bdk, left8) + tdes_ecb_encrypt(_xor(bdk, _KEY_MASK), left8)


def _non_reversible(key: bytes, reg: bytes) -> bytes:
    left, right = key[:8], key[8:]
    new_right = _xor(tdes_ecb_encrypt(left, _xor(reg, right)), right)
    mk = _xor(key, _KEY_MASK)
    new_left = _xor(tdes_ecb_encrypt(mk[:8], _xor(reg, mk[8:])), mk[8:])
    return new_left + new_right


def derive_tdes_key(ipek: bytes, ksn: bytes) -> bytes:
    """The current (transaction) key for ``ksn``, derived from the device's IPEK.

    Walks the set counter bits from the most significant down, one non-reversible key
    generation per bit. Counters with more than 10 bits set are invalid (X9.24-1).
    """
    _check_bdk(ipek)
    counter = ksn_counter(ksn)
    if counter.bit_count() > 10:
        raise InputError("KSN counter has more than 10 bits set")
    reg = int.from_bytes(ksn[-8:], "big") & ~_COUNTER_MASK & ((1 << 64) - 1)
    key = ipek
    for bit in range(_COUNTER_BITS - 1, -1, -1):
        if counter & (1 << bit):
            reg |= 1 << bit
            key = _non_reversible(key, reg.to_bytes(8, "big"))
    return key


def tdes_transaction_key(bdk: bytes, ksn: bytes) -> bytes:
    """The current (transaction) key for ``ksn``, before any usage variant."""
    return derive_tdes_key(ipek_tdes(bdk, ksn), ksn)


def tdes_working_key(bdk: bytes, ksn: bytes, usage: DukptUsage) -> bytes:
    """The key a TDES DUKPT device used for ``usage`` at ``ksn``.

    PIN and MAC keys are the transaction key XOR the usage variant; data keys are then
    additionally encrypted with themselves, as X9.24-1:2009 prescribes.
    """
    variant = _TDES_VARIANTS[usage] * 2
    key = _xor(tdes_transaction_key(bdk, ksn), variant)
    if usage in (DukptUsage.DATA_REQUEST, DukptUsage.DATA_RESPONSE):
        key = tdes_ecb_encrypt(key, key[:8]) + tdes_ecb_encrypt(key, key[8:])
    return key


# --- AES DUKPT ----------------------------------------------------------------------------------

_AES_KSN_BYTES = 12
_AES_COUNTER_BITS = 32


class AesKeyType(IntEnum):
    """X9.24-3 algorithm indicator for a derived key; the value is the derivation-data code."""

    TDES2 = 0x0000
    TDES3 = 0x0001
    AES128 = 0x0002
    AES192 = 0x0003
    AES256 = 0x0004

    @property
    def bits(self) -> int:
        return {0: 128, 1: 192, 2: 128, 3: 192, 4: 256}[self.value]


class _AesUsage(IntEnum):
    """X9.24-3 key usage indicators (derivation data bytes 2-3)."""

    KEY_ENCRYPTION = 0x0002
    PIN_ENCRYPTION = 0x1000
    MAC_GENERATION = 0x2000
    MAC_VERIFICATION = 0x2001
    MAC_BOTH = 0x2002
    DATA_ENCRYPT = 0x3000
    DATA_DECRYPT = 0x3001
    DATA_BOTH = 0x3002
    KEY_DERIVATION = 0x8000
    KEY_DERIVATION_INITIAL = 0x8001


# The device encrypts requests and the host responses, so request keys are the device's
# "generate/encrypt" keys and response keys the "verify/decrypt" ones.
_AES_USAGE: dict[DukptUsage, _AesUsage] = {
    DukptUsage.PIN: _AesUsage.PIN_ENCRYPTION,
    DukptUsage.MAC_REQUEST: _AesUsage.MAC_GENERATION,
    DukptUsage.MAC_RESPONSE: _AesUsage.MAC_VERIFICATION,
    DukptUsage.DATA_REQUEST: _AesUsage.DATA_ENCRYPT,
    DukptUsage.DATA_RESPONSE: _AesUsage.DATA_DECRYPT,
}


def _aes_bdk_type(bdk: bytes) -> AesKeyType:
    try:
        return {16: AesKeyType.AES128, 24: AesKeyType.AES192, 32: AesKeyType.AES256}[len(bdk)]
    except KeyError:
        raise KeyLengthError(f"AES BDK must be 16/24/32 bytes, got {len(bdk)}") from None


def _aes_derive(key: bytes, usage: int, key_type: AesKeyType, data8: bytes) -> bytes:
    """X9.24-3 key derivation: AES-ECB of one 16-byte derivation block per 128 output bits."""
    bits = key_type.bits
    out = b""
    for counter in range(1, (bits + 127) // 128 + 1):
        block = (
            bytes([0x01, counter])
            + usage.to_bytes(2, "big")
            + int(key_type).to_bytes(2, "big")
            + bits.to_bytes(2, "big")
            + data8
        )
        out += aes_ecb_encrypt(key, block)
    return out[: bits // 8]


def aes_initial_key(bdk: bytes, initial_key_id: bytes) -> bytes:
    """Initial DUKPT key for an 8-byte initial key ID (BDK ID + derivation ID)."""
    if len(initial_key_id) != 8:
        raise InputError(f"initial key ID must be 8 bytes, got {len(initial_key_id)}")
    key_type = _aes_bdk_type(bdk)
    return _aes_derive(bdk, _AesUsage.KEY_DERIVATION_INITIAL, key_type, initial_key_id)


def aes_transaction_key(bdk: bytes, ksn: bytes) -> bytes:
    """The intermediate derivation key for the transaction counter in a 12-byte KSN."""
    if len(ksn) != _AES_KSN_BYTES:
        raise InputError(f"AES KSN must be 12 bytes, got {len(ksn)}")
    key_type = _aes_bdk_type(bdk)
    key = aes_initial_key(bdk, ksn[:8])
    derivation_id = ksn[4:8]
    counter = int.from_bytes(ksn[8:], "big")
    if counter == 0:
        raise InputError("AES KSN counter is zero")
    if counter.bit_count() > 16:
        raise InputError("AES KSN counter has more than 16 bits set")
    working = 0
    for bit in range(_AES_COUNTER_BITS - 1, -1, -1):
        if counter & (1 << bit):
            working |= 1 << bit
            data8 = derivation_id + working.to_bytes(4, "big")
            key = _aes_derive(key, _AesUsage.KEY_DERIVATION, key_type, data8)
    return key


def aes_working_key(
    bdk: bytes, ksn: bytes, usage: DukptUsage, key_type: AesKeyType = AesKeyType.AES128
) -> bytes:
    """The working key of ``key_type`` for ``usage`` at a 12-byte AES DUKPT KSN."""
    key = aes_transaction_key(bdk, ksn)
    if key_type.bits > _aes_bdk_type(bdk).bits:
        raise IncompatibleKeyLengthError("working key longer than the BDK")
    return _aes_derive(key, _AES_USAGE[usage], key_type, ksn[4:])
