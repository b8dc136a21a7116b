"""DES key parity, random key generation and key check values."""

from __future__ import annotations

import os

from hsm_sim.ciphers import aes_cmac, tdes_ecb_encrypt
from hsm_sim.cryptoerrors import KeyLengthError


def _odd(byte: int) -> bool:
    return byte.bit_count() % 2 == 1


# Byte tables so parity work is one C-level translate per key, not a Python loop per byte.
_ODD_BYTES = bytes(b for b in range(256) if _odd(b))
_FIX_TABLE = bytes(b if _odd(b) else b ^ 0x01 for b in range(256))


def has_odd_parity(key: bytes) -> bool:
    """True when every byte has an odd number of set bits (DES key parity)."""
    return not bytes(key).translate(None, _ODD_BYTES)


def fix_parity(key: bytes) -> bytes:
    """Adjust the low bit of each byte so every byte has odd parity."""
    return bytes(key).translate(_FIX_TABLE)


def random_key(length: int) -> bytes:
    """A fresh DES/TDES key of 8, 16 or 24 bytes with odd parity.

    Rejects the all-zero-after-parity key and, for multi-length keys, equal components, since a
    TDES key with K1 == K2 degenerates to single DES.
    """
    if length not in (8, 16, 24):
        raise KeyLengthError(f"DES key must be 8, 16 or 24 bytes, got {length}")
    while True:
        key = fix_parity(os.urandom(length))
        if key == bytes([0x01]) * length:
            continue
        halves = [key[i : i + 8] for i in range(0, length, 8)]
        if len(set(halves)) != len(halves):
            continue
        return key


def kcv_tdes(key: bytes) -> bytes:
    """DES/TDES check value: E(K, 8 zero bytes), all 8 bytes (callers truncate)."""
    return tdes_ecb_encrypt(key, bytes(8))


def kcv_aes(key: bytes) -> bytes:
    """AES check value per ANSI X9.24-1:2017 A.3: first 5 bytes of AES-CMAC(K, 16 zero bytes)."""
    return aes_cmac(key, bytes(16))[:5]
