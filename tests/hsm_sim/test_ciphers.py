"""Cipher primitives against published vectors (DES KCV, RFC 4493, FIPS 197, SP 800-38A/B)."""

import pytest

from hsm_sim import ciphers
from hsm_sim.ciphers import (
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    aes_cmac,
    aes_ecb_decrypt,
    aes_ecb_encrypt,
    des_expand,
    tdes_cbc_decrypt,
    tdes_cbc_encrypt,
    tdes_cmac,
    tdes_ecb_block_encryptor,
    tdes_ecb_decrypt,
    tdes_ecb_encrypt,
)
from hsm_sim.cryptoerrors import DataLengthError, InputError, KeyLengthError

H = bytes.fromhex
RFC4493_KEY = H("2B7E151628AED2A6ABF7158809CF4F3C")


def test_des_expand_lengths() -> None:
    k1, k2, k3 = H("0123456789ABCDEF"), H("FEDCBA9876543210"), H("89ABCDEF01234567")
    assert des_expand(k1) == k1 + k1 + k1
    assert des_expand(k1 + k2) == k1 + k2 + k1
    assert des_expand(k1 + k2 + k3) == k1 + k2 + k3


@pytest.mark.parametrize("n", [0, 7, 9, 15, 32])
def test_des_expand_rejects_bad_length(n: int) -> None:
    with pytest.raises(KeyLengthError):
        des_expand(bytes(n))


def test_tdes_ecb_single_des_vector() -> None:
    # the published DES KCV (snowch/hsm-guide): E(0123456789ABCDEF, 0^8) = D5D44FF720683D0D
    assert tdes_ecb_encrypt(H("0123456789ABCDEF"), bytes(8)) == H("D5D44FF720683D0D")
    assert tdes_ecb_decrypt(H("0123456789ABCDEF"), H("D5D44FF720683D0D")) == bytes(8)


def test_tdes_ecb_classic_des_vector() -> None:
    # The classic DES example: K=133457799BBCDFF1, P=0123456789ABCDEF -> 85E813540F0AB405
    assert tdes_ecb_encrypt(H("133457799BBCDFF1"), H("0123456789ABCDEF")) == H("85E813540F0AB405")


def test_tdes_ecb_rejects_partial_block() -> None:
    with pytest.raises(DataLengthError):
        tdes_ecb_encrypt(H("0123456789ABCDEF"), bytes(7))


def test_tdes_cbc_chains_like_ecb() -> None:
    # CBC with zero IV: C1 = E(P1), C2 = E(P2 xor C1); checked against the single-DES vector.
    key = H("0123456789ABCDEF")
    c = tdes_cbc_encrypt(key, bytes(8) + H("D5D44FF720683D0D"))
    assert c[:8] == H("D5D44FF720683D0D")
    assert c[8:] == tdes_ecb_encrypt(key, bytes(8))
    assert tdes_cbc_decrypt(key, c) == bytes(8) + H("D5D44FF720683D0D")


def test_tdes_cbc_iv_length_checked() -> None:
    with pytest.raises(InputError):
        tdes_cbc_encrypt(H("0123456789ABCDEF"), bytes(8), iv=bytes(16))


def test_aes_ecb_fips197_vector() -> None:
    # FIPS 197 appendix C.1
    key = H("000102030405060708090A0B0C0D0E0F")
    pt = H("00112233445566778899AABBCCDDEEFF")
    ct = H("69C4E0D86A7B0430D8CDB78070B4C55A")
    assert aes_ecb_encrypt(key, pt) == ct
    assert aes_ecb_decrypt(key, ct) == pt


def test_aes_cbc_sp800_38a_vector() -> None:
    # NIST SP 800-38A F.2.1 CBC-AES128, first block
    iv = H("000102030405060708090A0B0C0D0E0F")
    pt = H("6BC1BEE22E409F96E93D7E117393172A")
    ct = H("7649ABAC8119B246CEE98E9B12E9197D")
    assert aes_cbc_encrypt(RFC4493_KEY, pt, iv) == ct
    assert aes_cbc_decrypt(RFC4493_KEY, ct, iv) == pt


def test_aes_rejects_bad_key_length() -> None:
    with pytest.raises(KeyLengthError):
        aes_ecb_encrypt(bytes(8), bytes(16))


def test_aes_cmac_rfc4493_example_1() -> None:
    assert aes_cmac(RFC4493_KEY, b"") == H("BB1D6929E95937287FA37D129B756746")


def test_aes_cmac_rfc4493_example_2() -> None:
    data = H("6BC1BEE22E409F96E93D7E117393172A")
    assert aes_cmac(RFC4493_KEY, data) == H("070A16B46B4D4144F79BDD9DD04A287C")


def test_aes_cmac_rfc4493_example_3() -> None:
    data = H("6BC1BEE22E409F96E93D7E117393172AAE2D8A571E03AC9C9EB76FAC45AF8E5130C81C46A35CE411")
    assert aes_cmac(RFC4493_KEY, data) == H("DFA66747DE9AE63030CA32611497C827")


def test_tdes_cmac_sp800_38b_vector() -> None:
    # NIST SP 800-38B appendix D.4, three-key TDEA examples (Mlen = 0 and Mlen = 64).
    key = H("8AA83BF8CBDA10620BC1BF19FBB6CD58BC313D4A371CA8B5")
    assert tdes_cmac(key, b"") == H("B7A688E122FFAF95")
    msg = H("6BC1BEE22E409F96")
    assert tdes_cmac(key, msg) == H("8E8F293136283797")


def test_tdes_ecb_contexts_cached_per_key_give_each_key_its_own_result() -> None:
    # Two published vectors in turn, twice: a context cached for one key never serves another.
    for _ in range(2):
        assert tdes_ecb_encrypt(H("0123456789ABCDEF"), bytes(8)) == H("D5D44FF720683D0D")
        assert tdes_ecb_encrypt(H("133457799BBCDFF1"), H("0123456789ABCDEF")) == H("85E813540F0AB405")
        assert tdes_ecb_decrypt(H("133457799BBCDFF1"), H("85E813540F0AB405")) == H("0123456789ABCDEF")


def test_tdes_ecb_takes_a_bytearray_key_and_still_refuses_a_bad_length() -> None:
    # bytes-typed, but callers have passed bytearrays (an unhashable cache key): still served.
    key: bytes = bytearray(H("0123456789ABCDEF"))  # type: ignore[assignment]
    assert tdes_ecb_encrypt(key, bytes(8)) == H("D5D44FF720683D0D")
    for _ in range(2):  # an error is not cached as a result
        with pytest.raises(KeyLengthError):
            tdes_ecb_encrypt(bytes(7), bytes(8))


def test_tdes_ecb_block_encryptor_is_the_ecb_of_its_key() -> None:
    encrypt = tdes_ecb_block_encryptor(H("133457799BBCDFF1"))
    assert encrypt(H("0123456789ABCDEF")) == H("85E813540F0AB405")
    assert encrypt(H("0123456789ABCDEF") * 2) == H("85E813540F0AB405") * 2
    with pytest.raises(KeyLengthError):
        tdes_ecb_block_encryptor(bytes(12))


def test_tdes_ecb_context_caches_stay_within_their_bound() -> None:
    bound = ciphers._tdes_ecb_encryptor_of.cache_info().maxsize
    assert bound is not None
    for i in range(bound + 100):
        key = i.to_bytes(8, "big")
        tdes_ecb_encrypt(key, bytes(8))
        tdes_ecb_decrypt(key, bytes(8))
    for cache in (ciphers._tdes_ecb_encryptor_of, ciphers._tdes_ecb_decryptor_of, ciphers._tdes_ecb_encryptor):
        assert cache.cache_info().currsize <= bound
    # ... and a key pushed out long ago still gives its published result.
    assert tdes_ecb_encrypt(H("0123456789ABCDEF"), bytes(8)) == H("D5D44FF720683D0D")
