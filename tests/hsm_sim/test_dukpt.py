"""DUKPT against ANSI X9.24-1:2009 annex A and the X9.24-3:2017 AES-128 supplement vectors."""

import warnings

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from hsm_sim.ciphers import tdes_ecb_encrypt
from hsm_sim.cryptoerrors import IncompatibleKeyLengthError, InputError, KeyLengthError
from hsm_sim.dukpt import (
    AesKeyType,
    DukptUsage,
    aes_initial_key,
    aes_transaction_key,
    aes_working_key,
    derive_tdes_key,
    ipek_tdes,
    ksn_counter,
    tdes_transaction_key,
    tdes_working_key,
)
from hsm_sim.pinblock import build_pinblock

H = bytes.fromhex
BDK = H("0123456789ABCDEFFEDCBA9876543210")
KSN0 = H("FFFF9876543210E00000")
KSN1 = H("FFFF9876543210E00001")
AES_BDK = H("FEDCBA9876543210F1F1F1F1F1F1F1F1")
IKID = H("1234567890123456")


def _aes_ksn(counter: int) -> bytes:
    return IKID + counter.to_bytes(4, "big")


# --- TDES --------------------------------------------------------------------------------------


def test_ipek_x9_24_1_a4() -> None:
    assert ipek_tdes(BDK, KSN0) == H("6AC292FAA1315B4D858AB3A3D7D5933A")
    # The counter bits do not take part in the IPEK.
    assert ipek_tdes(BDK, KSN1) == H("6AC292FAA1315B4D858AB3A3D7D5933A")


@pytest.mark.parametrize(
    ("counter", "key"),
    [
        ("E00001", "042666B49184CFA368DE9628D0397BC9"),
        ("E00002", "C46551CEF9FD24B0AA9AD834130D3BC7"),
        ("E00003", "0DF3D9422ACA56E547676D07AD6BADFA"),
        ("E00004", "279C0F6AEED0BE652B2C733E1383AE91"),
        ("E00005", "5F8DC6D2C845C125508DDC048093B83F"),
        ("EFF800", "F9CDFEBF4F5B1D9EB3EC12454527E176"),
    ],
)
def test_transaction_keys_x9_24_1_annex_a(counter: str, key: str) -> None:
    ksn = H("FFFF9876543210" + counter)
    assert tdes_transaction_key(BDK, ksn) == H(key)
    assert derive_tdes_key(H("6AC292FAA1315B4D858AB3A3D7D5933A"), ksn) == H(key)


@pytest.mark.parametrize(
    ("usage", "key"),
    [
        # Transaction key XOR 00000000000000FF / 000000000000FF00 / 00000000FF000000 per half:
        # ...CFA3...7BC9 -> ...CF5C...7B36 (A3^FF=5C, C9^FF=36), and so on.
        (DukptUsage.PIN, "042666B49184CF5C68DE9628D0397B36"),
        (DukptUsage.MAC_REQUEST, "042666B4918430A368DE9628D03984C9"),
        (DukptUsage.MAC_RESPONSE, "042666B46E84CFA368DE96282F397BC9"),
        (DukptUsage.DATA_REQUEST, "448D3F076D8304036A55A3D7E0055A78"),
    ],
)
def test_working_keys_counter_1(usage: DukptUsage, key: str) -> None:
    assert tdes_working_key(BDK, KSN1, usage) == H(key)


def test_data_response_key_is_variant_encrypted_with_itself() -> None:
    # Transaction key 042666B49184CFA3 68DE9628D0397BC9 XOR 000000FF00000000 on both halves.
    variant = H("0426664B9184CFA368DE96D7D0397BC9")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = Cipher(TripleDES(variant + variant[:8]), modes.ECB()).encryptor()
    expected = enc.update(variant) + enc.finalize()
    assert tdes_working_key(BDK, KSN1, DukptUsage.DATA_RESPONSE) == expected


def test_pin_block_x9_24_1_annex_a() -> None:
    # PIN 1234, PAN 4012345678909, ISO format 0 under the counter-1 PIN key.
    pin_key = tdes_working_key(BDK, KSN1, DukptUsage.PIN)
    block = build_pinblock(0, "1234", "4012345678909")
    assert tdes_ecb_encrypt(pin_key, block) == H("1B9C1845EB993A7A")


def test_ksn_counter() -> None:
    assert ksn_counter(H("FFFF9876543210EFF800")) == 0x0FF800  # 21 bits: E = 1110, low bit 0
    assert ksn_counter(H("FFFF9876543210F1F800")) == 0x11F800  # F = 1111, low bit 1
    assert ksn_counter(KSN1) == 1


def test_tdes_errors() -> None:
    with pytest.raises(KeyLengthError):
        ipek_tdes(BDK[:8], KSN0)
    with pytest.raises(InputError):
        tdes_transaction_key(BDK, KSN0[:8])
    with pytest.raises(InputError):
        tdes_transaction_key(BDK, H("FFFF9876543210EFFE00"))  # 11 counter bits set


# --- AES ---------------------------------------------------------------------------------------


def test_aes_initial_key_x9_24_3() -> None:
    assert aes_initial_key(AES_BDK, IKID) == H("1273671EA26AC29AFA4D1084127652A1")


@pytest.mark.parametrize(
    ("counter", "key"),
    [
        (1, "4F21B565BAD9835E112B6465635EAE44"),
        (2, "2F34D68DE10F68D38091A73B9E7C437C"),
        (8, "718EE6CF0B27E53D5F7AF99C4D8146A2"),
    ],
)
def test_aes_derivation_keys_x9_24_3(counter: int, key: str) -> None:
    assert aes_transaction_key(AES_BDK, _aes_ksn(counter)) == H(key)


@pytest.mark.parametrize(
    ("usage", "key"),
    [
        (DukptUsage.PIN, "AF8CB133A78F8DC2D1359F18527593FB"),
        (DukptUsage.MAC_REQUEST, "A2DC23DE6FDE0824A2BC321E08E4B8B7"),
        (DukptUsage.MAC_RESPONSE, "DBB463945B286C07CD3AD82EE96FD9C9"),
        (DukptUsage.DATA_REQUEST, "A35C412EFD41FDB98B69797C02DCD08F"),
        (DukptUsage.DATA_RESPONSE, "16292C6EA8F64C5420A0584BFBC577BE"),
    ],
)
def test_aes_working_keys_counter_1_x9_24_3(usage: DukptUsage, key: str) -> None:
    assert aes_working_key(AES_BDK, _aes_ksn(1), usage) == H(key)


def test_aes_pin_key_counter_2_x9_24_3() -> None:
    assert aes_working_key(AES_BDK, _aes_ksn(2), DukptUsage.PIN) == H("D30BDC73EC9714B000BEC66BDB7B6D09")


def test_aes_working_key_other_lengths() -> None:
    key = aes_working_key(AES_BDK, _aes_ksn(1), DukptUsage.DATA_REQUEST, AesKeyType.TDES2)
    assert len(key) == 16
    with pytest.raises(IncompatibleKeyLengthError):
        aes_working_key(AES_BDK, _aes_ksn(1), DukptUsage.PIN, AesKeyType.AES256)


def test_aes_errors() -> None:
    with pytest.raises(InputError):
        aes_working_key(AES_BDK, _aes_ksn(0), DukptUsage.PIN)
    with pytest.raises(InputError):
        aes_working_key(AES_BDK, IKID, DukptUsage.PIN)
    with pytest.raises(KeyLengthError):
        aes_initial_key(AES_BDK[:10], IKID)
