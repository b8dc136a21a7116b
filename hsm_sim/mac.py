"""Message authentication codes: ISO 9797-1 algorithms 1 and 3, AES-CMAC, China UnionPay POS MAC."""

from __future__ import annotations

import sys
from functools import reduce
from operator import xor

from hsm_sim.ciphers import (
    aes_cmac,
    des_expand,
    tdes_cbc_encrypt,
    tdes_ecb_block_encryptor,
    tdes_ecb_decrypt,
    tdes_ecb_encrypt,
)
from hsm_sim.cryptoerrors import InputError, KeyLengthError

__all__ = ["aes_cmac", "cup_pos_mac", "iso9797_alg1", "iso9797_alg3", "iso9797_pad"]

_BLOCK = 8


def iso9797_pad(data: bytes, padding: int = 1, block: int = _BLOCK) -> bytes:
    """ISO 9797-1 padding: 1 zeros (empty data becomes one zero block), 2 0x80 then zeros,
    3 a big-endian bit-length block prepended to zero-padded data."""
    if padding == 1:
        if not data:
            return bytes(block)
        return data + bytes(-len(data) % block)
    if padding == 2:
        padded = data + b"\x80"
        return padded + bytes(-len(padded) % block)
    if padding == 3:
        length = (len(data) * 8).to_bytes(block, "big")
        return length + data + bytes(-len(data) % block)
    raise InputError(f"ISO 9797-1 padding method {padding} not supported")


def _cbc_last(key: bytes, padded: bytes) -> bytes:
    return tdes_cbc_encrypt(key, padded)[-_BLOCK:]


def iso9797_alg1(key: bytes, data: bytes, padding: int = 1) -> bytes:
    """ISO 9797-1 MAC algorithm 1: plain CBC-MAC with the whole (single/double/triple) key."""
    des_expand(key)  # validates the length before any work
    return _cbc_last(key, iso9797_pad(data, padding))


def iso9797_alg3(key: bytes, data: bytes, padding: int = 1) -> bytes:
    """ISO 9797-1 MAC algorithm 3 (ANSI X9.19 retail MAC) with a double-length key:
    CBC-MAC under the left half, then decrypt with the right half and encrypt with the left."""
    if len(key) != 16:
        raise KeyLengthError(f"retail MAC needs a 16-byte key, got {len(key)}")
    left, right = key[:8], key[8:]
    h = _cbc_last(left, iso9797_pad(data, padding))
    return tdes_ecb_encrypt(left, tdes_ecb_decrypt(right, h))


def cup_pos_mac(mak: bytes, data: bytes) -> bytes:
    """China UnionPay POS "ECB" MAC (field 64): 8 ASCII hex characters.

    XOR the zero-padded 8-byte blocks, hex-expand the result to 16 characters, encrypt the
    first 8 with the MAK, XOR with the last 8, encrypt again, hex-expand, keep 8 characters.
    """
    if len(mak) not in (8, 16):
        raise KeyLengthError(f"CUP MAK must be 8 or 16 bytes, got {len(mak)}")
    padded = data + bytes(-len(data) % _BLOCK)
    # XOR of the 8-byte blocks as machine words, folded in C; XOR does not care about byte
    # order as long as the words go back to bytes in the order they were read in.
    acc = reduce(xor, memoryview(padded).cast("Q"), 0).to_bytes(_BLOCK, sys.byteorder)
    expanded = acc.hex().upper().encode("ascii")
    encrypt = tdes_ecb_block_encryptor(mak)  # one cached context for both blocks
    first = encrypt(expanded[:_BLOCK])
    second = encrypt((int.from_bytes(first) ^ int.from_bytes(expanded[_BLOCK:])).to_bytes(_BLOCK))
    return second.hex().upper().encode("ascii")[:_BLOCK]
