"""MACs: ISO 9797-1 B.4 retail MAC, RFC 4493 AES-CMAC, and hand-worked CUP POS MACs.

Values marked "openssl" were computed outside this code base with the OpenSSL command line
(``openssl enc -des-ecb`` / ``-des-ede`` / ``-des-ede-cbc``, legacy provider), as an
implementation independent of hsm_sim.
"""

import warnings

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from hsm_sim.cryptoerrors import InputError, KeyLengthError
from hsm_sim.mac import aes_cmac, cup_pos_mac, iso9797_alg1, iso9797_alg3, iso9797_pad

H = bytes.fromhex
X919_KEY = H("0123456789ABCDEFFEDCBA9876543210")
NOW = b"Now is the time for all "


def _des(key: bytes, block: bytes) -> bytes:
    """Plain DES / 2-key 3DES ECB straight from cryptography, independent of hsm_sim."""
    k24 = key * 3 if len(key) == 8 else key + key[:8]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = Cipher(TripleDES(k24), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


# --- ISO 9797-1 --------------------------------------------------------------------------------


def test_retail_mac_iso9797_annex_b4() -> None:
    mac = iso9797_alg3(X919_KEY, NOW)
    assert mac == H("A1C72E74EA3FA9B6")
    assert mac[:4] == H("A1C72E74")


def test_alg1_single_block_is_des_of_block() -> None:
    # One zero block under 0123456789ABCDEF: the published DES KCV.
    assert iso9797_alg1(H("0123456789ABCDEF"), bytes(8)) == H("D5D44FF720683D0D")


def test_alg1_padding_methods_openssl() -> None:
    assert iso9797_alg1(X919_KEY, NOW) == H("93462A6DB9B4A4D1")  # openssl
    assert iso9797_alg1(X919_KEY, NOW, 2) == H("805036D50BB76107")  # openssl
    assert iso9797_alg1(X919_KEY, NOW, 3) == H("59A3F912DBC6E7F1")  # openssl


def test_alg3_padding2_openssl() -> None:
    # h = CBC-MAC(DES 0123456789ABCDEF) = 10E1F0F108341B6D; E(KL, D(KR, h)).
    assert iso9797_alg3(X919_KEY, NOW, 2) == H("E9086230CA3BE796")  # openssl


def test_padding_methods() -> None:
    assert iso9797_pad(b"", 1) == bytes(8)
    assert iso9797_pad(b"\x01" * 8, 1) == b"\x01" * 8
    assert iso9797_pad(b"\x01" * 8, 2) == b"\x01" * 8 + H("8000000000000000")
    assert iso9797_pad(b"\x01\x02", 2) == H("0102800000000000")
    assert iso9797_pad(b"\x01\x02", 3) == H("0000000000000010") + H("0102000000000000")
    with pytest.raises(InputError):
        iso9797_pad(b"", 4)


def test_alg3_needs_double_key() -> None:
    with pytest.raises(KeyLengthError):
        iso9797_alg3(H("0123456789ABCDEF"), NOW)


def test_aes_cmac_reexported_rfc4493() -> None:
    key = H("2B7E151628AED2A6ABF7158809CF4F3C")
    assert aes_cmac(key, b"") == H("BB1D6929E95937287FA37D129B756746")
    assert aes_cmac(key, H("6BC1BEE22E409F96E93D7E117393172A")) == H("070A16B46B4D4144F79BDD9DD04A287C")


# --- CUP POS MAC -------------------------------------------------------------------------------
#
# Worked example 1. MAK 3333333333333333 (the published working-key MAK of docs/cup-pos.md, CV ADC67D84).
# Data 11 bytes: 1111111111111111 222222.
#   pad with 00 to 16 bytes:  1111111111111111 | 2222220000000000
#   XOR the blocks:           11^22 = 33 in the first three bytes, 11^00 = 11 after:
#                             3333331111111111
#   hex-expand to ASCII:      "33333311" = 3333333333333131, "11111111" = 3131313131313131
#   C1 = DES(MAK, 3333333333333131)            = A701C31C01B75368   (openssl)
#   C1 XOR 3131313131313131                    = 9630F22D30866259
#   C2 = DES(MAK, 9630F22D30866259)            = 4FCA7FB9BE023945   (openssl)
#   field 64 = first 8 hex characters of C2    = "4FCA7FB9"


def test_cup_pos_mac_worked_example_single_des() -> None:
    mak = H("3333333333333333")
    data = H("1111111111111111222222")
    c1 = _des(mak, b"33333311")
    assert c1 == H("A701C31C01B75368")
    assert _xor(c1, b"11111111") == H("9630F22D30866259")
    c2 = _des(mak, H("9630F22D30866259"))
    assert c2 == H("4FCA7FB9BE023945")
    assert cup_pos_mac(mak, data) == b"4FCA7FB9"


# Worked example 2. Double-length MAK 0123456789ABCDEF FEDCBA9876543210, data 0200 (an MTI).
#   pad: 0200000000000000 (one block, XOR of one block is itself)
#   hex-expand: "02000000" | "00000000"
#   C1 = 3DES(MAK, "02000000")                 = E440311D75A410D2   (openssl -des-ede)
#   C1 XOR "00000000" (30 x8)                  = D470012D459420E2
#   C2 = 3DES(MAK, D470012D459420E2)           = C3C443AD5F7241BF   (openssl -des-ede)
#   field 64 = "C3C443AD"


def test_cup_pos_mac_worked_example_double_length() -> None:
    c1 = _des(X919_KEY, b"02000000")
    assert c1 == H("E440311D75A410D2")
    assert _xor(c1, b"00000000") == H("D470012D459420E2")
    assert _des(X919_KEY, H("D470012D459420E2")) == H("C3C443AD5F7241BF")
    assert cup_pos_mac(X919_KEY, H("0200")) == b"C3C443AD"


def _cup_reference(mak: bytes, data: bytes) -> bytes:
    """Straight transcription of docs/cup-pos.md ("The MAC"), using cryptography directly."""
    padded = data + bytes(-len(data) % 8)
    acc = bytes(8)
    for i in range(0, len(padded), 8):
        acc = _xor(acc, padded[i : i + 8])
    text = acc.hex().upper().encode()
    out = _des(mak, _xor(_des(mak, text[:8]), text[8:]))
    return out.hex().upper().encode()[:8]


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 16, 45, 200, 255, 1000, 4097])
def test_cup_pos_mac_matches_reference_transcription(n: int) -> None:
    data = bytes((i * 37 + 11) % 256 for i in range(n))
    for mak in (H("3333333333333333"), X919_KEY):
        mac = cup_pos_mac(mak, data)
        assert mac == _cup_reference(mak, data)
        assert len(mac) == 8 and set(mac) <= set(b"0123456789ABCDEF")


def test_cup_pos_mac_bad_key_length() -> None:
    with pytest.raises(KeyLengthError):
        cup_pos_mac(bytes(24), b"x")
