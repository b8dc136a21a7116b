"""Block-cipher primitives (TDES, AES) over ``cryptography``, with per-key Cipher caching.

Keys are expanded to 24 bytes here so ``cryptography`` never sees a short 3DES key (which it
deprecates); single DES is K|K|K, double-length is K1|K2|K1.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from hsm_sim.cryptoerrors import DataLengthError, InputError, KeyLengthError

_CACHE_SIZE = 4096


def des_expand(key: bytes) -> bytes:
    """Expand an 8-, 16- or 24-byte DES key to the 24-byte K1|K2|K3 form."""
    n = len(key)
    if n == 8:
        return key * 3
    if n == 16:
        return key + key[:8]
    if n == 24:
        return bytes(key)
    raise KeyLengthError(f"DES key must be 8, 16 or 24 bytes, got {n}")


def _check_aes_key(key: bytes) -> None:
    if len(key) not in (16, 24, 32):
        raise KeyLengthError(f"AES key must be 16, 24 or 32 bytes, got {len(key)}")


def _check_blocks(data: bytes, block: int) -> None:
    if len(data) % block:
        raise DataLengthError(
            f"data length {len(data)} is not a multiple of the {block}-byte block",
        )


def _check_iv(iv: bytes, block: int) -> None:
    if len(iv) != block:
        raise InputError(f"IV must be {block} bytes, got {len(iv)}")


@lru_cache(maxsize=_CACHE_SIZE)
def _tdes_ecb(key24: bytes) -> Cipher[modes.ECB]:
    return Cipher(TripleDES(key24), modes.ECB())


# ECB has no chaining state, so one encryptor/decryptor context per key serves every call as
# long as only whole blocks go through update(): that saves creating a context per operation,
# the largest single cost of a PIN translation.
@lru_cache(maxsize=_CACHE_SIZE)
def _tdes_ecb_encryptor(key24: bytes) -> CipherContext:
    return _tdes_ecb(key24).encryptor()


@lru_cache(maxsize=_CACHE_SIZE)
def _tdes_ecb_decryptor(key24: bytes) -> CipherContext:
    return _tdes_ecb(key24).decryptor()


@lru_cache(maxsize=_CACHE_SIZE)
def _aes_ecb_encryptor(key: bytes) -> CipherContext:
    return _aes_ecb(key).encryptor()


@lru_cache(maxsize=_CACHE_SIZE)
def _aes_ecb_decryptor(key: bytes) -> CipherContext:
    return _aes_ecb(key).decryptor()


@lru_cache(maxsize=_CACHE_SIZE)
def _tdes_cbc(key24: bytes, iv: bytes) -> Cipher[modes.CBC]:
    return Cipher(TripleDES(key24), modes.CBC(iv))


@lru_cache(maxsize=_CACHE_SIZE)
def _aes_ecb(key: bytes) -> Cipher[modes.ECB]:
    return Cipher(algorithms.AES(key), modes.ECB())


@lru_cache(maxsize=_CACHE_SIZE)
def _aes_cbc(key: bytes, iv: bytes) -> Cipher[modes.CBC]:
    return Cipher(algorithms.AES(key), modes.CBC(iv))


# The same contexts again, keyed by the key as callers hold it (8, 16 or 24 bytes): a hit skips
# the expansion to 24 bytes, which every PIN and MAC command would otherwise pay per operation.
# Safe for the same reason as every cache here: the clear keys they are keyed by exist only in
# this (the HSM's) process, as they do while a command runs; nothing here logs or returns them,
# and the bound (_CACHE_SIZE entries each) caps what they hold.
@lru_cache(maxsize=_CACHE_SIZE)
def _tdes_ecb_encryptor_of(key: bytes) -> CipherContext:
    return _tdes_ecb_encryptor(des_expand(key))


@lru_cache(maxsize=_CACHE_SIZE)
def _tdes_ecb_decryptor_of(key: bytes) -> CipherContext:
    return _tdes_ecb_decryptor(des_expand(key))


def tdes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    if len(data) % 8:
        _check_blocks(data, 8)
    return _tdes_ecb_encryptor_of(key if type(key) is bytes else bytes(key)).update(data)


def tdes_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    if len(data) % 8:
        _check_blocks(data, 8)
    return _tdes_ecb_decryptor_of(key if type(key) is bytes else bytes(key)).update(data)


def tdes_ecb_block_encryptor(key: bytes) -> Callable[[bytes], bytes]:
    """TDES-ECB encryption under ``key`` as one function, for a caller that encrypts several
    blocks under the same key (the UnionPay POS MAC): the key is expanded and its cached context
    looked up once, not per block. The function must only be given whole 8-byte blocks (a part
    block would stay buffered in the shared context); ``tdes_ecb_encrypt`` checks that for you."""
    return _tdes_ecb_encryptor_of(key if type(key) is bytes else bytes(key)).update


def tdes_cbc_encrypt(key: bytes, data: bytes, iv: bytes = bytes(8)) -> bytes:
    _check_blocks(data, 8)
    _check_iv(iv, 8)
    enc = _tdes_cbc(des_expand(bytes(key)), bytes(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def tdes_cbc_decrypt(key: bytes, data: bytes, iv: bytes = bytes(8)) -> bytes:
    _check_blocks(data, 8)
    _check_iv(iv, 8)
    dec = _tdes_cbc(des_expand(bytes(key)), bytes(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def aes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    _check_aes_key(key)
    _check_blocks(data, 16)
    return _aes_ecb_encryptor(bytes(key)).update(data)


def aes_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    _check_aes_key(key)
    _check_blocks(data, 16)
    return _aes_ecb_decryptor(bytes(key)).update(data)


def aes_cbc_encrypt(key: bytes, data: bytes, iv: bytes = bytes(16)) -> bytes:
    _check_aes_key(key)
    _check_blocks(data, 16)
    _check_iv(iv, 16)
    enc = _aes_cbc(bytes(key), bytes(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def aes_cbc_decrypt(key: bytes, data: bytes, iv: bytes = bytes(16)) -> bytes:
    _check_aes_key(key)
    _check_blocks(data, 16)
    _check_iv(iv, 16)
    dec = _aes_cbc(bytes(key), bytes(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (NIST SP 800-38B / RFC 4493), full 16-byte tag."""
    _check_aes_key(key)
    c = cmac.CMAC(algorithms.AES(bytes(key)))
    c.update(data)
    return c.finalize()


def tdes_cmac(key: bytes, data: bytes) -> bytes:
    """TDES-CMAC (NIST SP 800-38B, 64-bit block), full 8-byte tag."""
    c = cmac.CMAC(TripleDES(des_expand(bytes(key))))
    c.update(data)
    return c.finalize()
