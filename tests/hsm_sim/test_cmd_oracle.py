"""An independent model of the HSM's cryptography, for the host-command tests.

Written from the published descriptions only (``cryptography`` directly, nothing from
``hsm_sim``), and itself checked here against published transcripts, so command tests can
compute expected answers without asking the code under test. Sources:

* test LMK pairs and variant rules: the standard Thales test LMK set, as the published vectors
  beside the checkout hold it
* ZMK/ZPK transcripts: snowch/hsm-guide (CC0), produced on the standard test LMK set
* key check values: the Thales BU of 0123...3210 (pythales README); ISO 9564 block: psec's
  published example
"""

from __future__ import annotations

import json
import warnings

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from tests.vectorfiles import vector_path

H = bytes.fromhex
VECTORS = vector_path("crypto.json")

# The Thales test LMK pairs this module needs (the standard test LMK set).
LMK_PAIRS = {
    "02-03": H("20202020202020203131313131313131"),
    "04-05": H("40404040404040405151515151515151"),
    "06-07": H("61616161616161617070707070707070"),
    "14-15": H("E0E0010101010101F1F1010101010101"),
    "16-17": H("1C587F1C13924FEF0101010101010101"),
    "18-19": H("01010101010101010101010101010101"),
    "26-27": H("16161616161616161919191919191919"),
    "28-29": H("1A1A1A1A1A1A1A1A1C1C1C1C1C1C1C1C"),
    "32-33": H("26262626262626262929292929292929"),
}
# payShield key type codes (last two characters -> pair)
LMK_CODE_PAIR = {
    "00": "04-05",
    "01": "06-07",
    "02": "14-15",
    "03": "16-17",
    "08": "26-27",
    "09": "28-29",
    "0B": "32-33",
}
TYPE_VARIANTS = [0x00, 0xA6, 0x5A, 0x6A, 0xDE, 0x2B, 0x50, 0x74, 0x9C, 0xFA]
SCHEME_VARIANTS = {8: [0], 16: [0xA6, 0x5A], 24: [0x6A, 0xDE, 0x2B]}

# Published clear keys.
TDES_KEY = H("0123456789ABCDEFFEDCBA9876543210")  # KCV 08D7B4 (Thales BU, pythales README)
DES_KEY = H("0123456789ABCDEF")  # KCV D5D44FF720683D0D (E(K, zeros), snowch/hsm-guide)
# snowch/hsm-guide: ZMK (KCV BA0FC3) and a ZPK (KCV 6543F4) under it and under the test LMK.
SNOWCH_ZMK_LMK = "U104C4216A751FEEEFF55698B26C57789"
SNOWCH_ZPK_LMK = "U858651EC83AFCA668175804F5B7DCD6B"
SNOWCH_ZPK_ZMK = "XBAA518AAD10D28A2D32A5688317F44EB"


def des3(key: bytes, data: bytes, *, decrypt: bool = False) -> bytes:
    """TDES-ECB with an 8/16/24-byte key (expanded K1|K2|K1 / K|K|K)."""
    full = {8: key * 3, 16: key + key[:8], 24: key}[len(key)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cipher = Cipher(TripleDES(full), modes.ECB())
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(data) + ctx.finalize()


def des3_cbc_mac(key: bytes, data: bytes) -> bytes:
    """Last block of TDES-CBC (zero IV): ISO 9797-1 MAC algorithm 1 on padded data."""
    full = {8: key * 3, 16: key + key[:8], 24: key}[len(key)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = Cipher(TripleDES(full), modes.CBC(bytes(8))).encryptor()
    return (enc.update(data) + enc.finalize())[-8:]


def _component_keys(key_type: str, length: int) -> list[bytes]:
    pair = LMK_PAIRS[LMK_CODE_PAIR[key_type[1:]]]
    left = bytes([pair[0] ^ TYPE_VARIANTS[int(key_type[0])]]) + pair[1:8]
    return [left + bytes([pair[8] ^ v]) + pair[9:] for v in SCHEME_VARIANTS[length]]


def lmk_encrypt(key_type: str, clear: bytes) -> bytes:
    keys = _component_keys(key_type, len(clear))
    return b"".join(des3(k, clear[8 * i : 8 * i + 8]) for i, k in enumerate(keys))


def lmk_decrypt(key_type: str, enc: bytes) -> bytes:
    keys = _component_keys(key_type, len(enc))
    return b"".join(des3(k, enc[8 * i : 8 * i + 8], decrypt=True) for i, k in enumerate(keys))


def lmk_field(key_type: str, clear: bytes) -> str:
    """Host-command key field for a clear key stored under the LMK."""
    tag = {8: "", 16: "U", 24: "T"}[len(clear)]
    return tag + lmk_encrypt(key_type, clear).hex().upper()


def field_bytes(field: str) -> bytes:
    """The encrypted bytes of a key field (tag stripped)."""
    return H(field[1:] if field[0] in "ZUTXY" else field)


def clear_from_field(key_type: str, field: str) -> bytes:
    return lmk_decrypt(key_type, field_bytes(field))


def kcv(key: bytes, digits: int = 6) -> str:
    return des3(key, bytes(8)).hex().upper()[:digits]


def odd_parity(key: bytes) -> bool:
    return all(bin(b).count("1") % 2 == 1 for b in key)


def with_odd_parity(key: bytes) -> bytes:
    return bytes(b if bin(b).count("1") % 2 else b ^ 1 for b in key)


def iso0_block(pin: str, account12: str) -> bytes:
    """ISO 9564-1 format 0 clear block."""
    pin_field = H(f"0{len(pin):X}{pin}".ljust(16, "F"))
    pan_field = H("0000" + account12)
    return bytes(a ^ b for a, b in zip(pin_field, pan_field, strict=True))


def lmk_pin(pin: str, account12: str) -> str:
    """This HSM's documented PIN-under-LMK form: the format 0 block under LMK pair 02-03."""
    return des3(LMK_PAIRS["02-03"], iso0_block(pin, account12)).hex().upper()


# --- the oracle against published material ---------------------------------------------------


@pytest.mark.skipif(not VECTORS.exists(), reason="shared vectors not present")
def test_oracle_lmk_pairs_match_the_published_vectors() -> None:
    pairs = json.loads(VECTORS.read_text())["thales_test_lmk_variant"]["pairs"]
    for name, value in LMK_PAIRS.items():
        assert pairs[name] == value.hex().upper()


def test_oracle_kcv_of_published_keys() -> None:
    assert kcv(TDES_KEY) == "08D7B4"
    assert kcv(DES_KEY, 16) == "D5D44FF720683D0D"


def test_oracle_decrypts_snowch_transcript() -> None:
    zmk = clear_from_field("000", SNOWCH_ZMK_LMK)
    zpk = clear_from_field("001", SNOWCH_ZPK_LMK)
    assert kcv(zmk) == "BA0FC3"
    assert kcv(zpk) == "6543F4"
    assert des3(zmk, field_bytes(SNOWCH_ZPK_ZMK), decrypt=True) == zpk


def test_oracle_encrypts_published_double_length_zmk() -> None:
    # hsm_sim's own LMK tests cite this pair from a public simulator transcript.
    clear = H("79CD23809B4FC1C47F9EFB2ADF2A674A")
    assert lmk_encrypt("000", clear) == H("1BA5185AFCF15A1B274BE1E003B47C2A")


def test_oracle_iso0_block_matches_published_vector() -> None:
    # psec's published ISO 9564 example: PIN 1234, PAN 5555555551234567 -> 041261AAAAEDCBA9
    assert iso0_block("1234", "555555123456") == H("041261AAAAEDCBA9")
