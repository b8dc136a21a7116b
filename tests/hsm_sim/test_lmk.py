"""LMK key encryption against published Thales-simulator transcripts.

Sources: the single-length ZMK components come from a public Thales Simulator Library forum post
("FA (translate ZPK from ZMK to LMK) command with single length keys"); the double-length
components, the formed ZMK, the ZPK and the NC check value come from the CC0 book
snowch/hsm-guide (book.md), all produced with the standard test LMK set.
"""

import json
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from hsm_sim.ciphers import tdes_ecb_decrypt
from hsm_sim.errors import ErrorCode, HsmError
from hsm_sim.keys import fix_parity, kcv_tdes
from hsm_sim.lmk import (
    PAIR_NAMES,
    KeyScheme,
    Lmk,
    format_key_field,
    parse_key_field,
    parse_key_type,
)

H = bytes.fromhex
LMK = Lmk.default()


def _des3(key16: bytes, block: bytes) -> bytes:
    """Independent 2-key 3DES ECB for cross-checks (not via hsm_sim)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = Cipher(TripleDES(key16 + key16[:8]), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


# The standard Thales test LMK set: its pairs.
TEST_LMK_PAIRS = {
    "00-01": "01010101010101017902CD1FD36EF8BA",
    "02-03": "20202020202020203131313131313131",
    "04-05": "40404040404040405151515151515151",
    "06-07": "61616161616161617070707070707070",
    "08-09": "80808080808080809191919191919191",
    "10-11": "A1A1A1A1A1A1A1A1B0B0B0B0B0B0B0B0",
    "12-13": "C1C1010101010101D0D0010101010101",
    "14-15": "E0E0010101010101F1F1010101010101",
    "16-17": "1C587F1C13924FEF0101010101010101",
    "18-19": "01010101010101010101010101010101",
    "20-21": "02020202020202020404040404040404",
    "22-23": "07070707070707071010101010101010",
    "24-25": "13131313131313131515151515151515",
    "26-27": "16161616161616161919191919191919",
    "28-29": "1A1A1A1A1A1A1A1A1C1C1C1C1C1C1C1C",
    "30-31": "23232323232323232525252525252525",
    "32-33": "26262626262626262929292929292929",
    "34-35": "2A2A2A2A2A2A2A2A2C2C2C2C2C2C2C2C",
    "36-37": "2F2F2F2F2F2F2F2F3131313131313131",
    "38-39": "01010101010101010101010101010101",
}


def test_default_lmk_is_the_published_test_lmk() -> None:
    assert {k: v.hex().upper() for k, v in LMK.pairs.items()} == TEST_LMK_PAIRS


def test_check_value_matches_simulator_nc() -> None:
    # snowch/hsm-guide: "!0000ND007B44AC1DDEE2A94B0007-E000"
    assert LMK.check_value() == H("7B44AC1DDEE2A94B")


@pytest.mark.parametrize(
    ("clear", "encrypted", "kcv"),
    [
        ("43455E25297CD946", "42D51505B7CFC461", "428C48"),
        ("834CDF1052761FBA", "9FB1185F9741502A", "D6FCF1"),
        ("5DD51A9BE957F71A", "619E36FE513CEA21", "EEC66C"),
        ("9DDC9BAE925D31E6", "2B77B300B25494A2", "0EB795"),
    ],
)
def test_encrypt_single_length_zmk(clear: str, encrypted: str, kcv: str) -> None:
    assert LMK.encrypt_key("000", H(clear)) == H(encrypted)
    assert LMK.decrypt_key("000", H(encrypted)) == H(clear)
    assert kcv_tdes(H(clear))[:3] == H(kcv)


def test_single_length_zmk_is_xor_of_components() -> None:
    parts = [H("43455E25297CD946"), H("834CDF1052761FBA"), H("5DD51A9BE957F71A")]
    xor = bytes(a ^ b ^ c for a, b, c in zip(*parts, strict=True))
    assert fix_parity(xor) == H("9DDC9BAE925D31E6")


@pytest.mark.parametrize(
    ("clear", "encrypted", "kcv"),
    [
        ("79CD23809B4FC1C47F9EFB2ADF2A674A", "1BA5185AFCF15A1B274BE1E003B47C2A", "7A5BC7"),
        ("0157B3DF61163402372C54FD62F21C91", "FCE47AF7FFF89F402407A35AF063D3E1", "1E79CB"),
        ("7AEAB5A41A9E9B68EF80494C08194ADA", "EE8D4F9EC8B2ADF49CD2F0D27F5C95C5", "277A5F"),
    ],
)
def test_encrypt_double_length_variant_zmk(clear: str, encrypted: str, kcv: str) -> None:
    assert LMK.encrypt_key("000", H(clear)) == H(encrypted)
    assert LMK.decrypt_key("000", H(encrypted)) == H(clear)
    assert kcv_tdes(H(clear))[:3] == H(kcv)


def test_decrypt_published_zmk_and_zpk() -> None:
    # FK gave "U 104C...7789" KCV BA0FC3; KG gave ZPK "U 8586...CD6B" under LMK and
    # "X BAA5...44EB" under that ZMK, KCV 6543F4.
    zmk = LMK.decrypt_key("000", H("104C4216A751FEEEFF55698B26C57789"))
    assert kcv_tdes(zmk)[:3] == H("BA0FC3")
    zpk = LMK.decrypt_key("001", H("858651EC83AFCA668175804F5B7DCD6B"))
    assert kcv_tdes(zpk)[:3] == H("6543F4")
    assert tdes_ecb_decrypt(zmk, H("BAA518AAD10D28A2D32A5688317F44EB")) == zpk


def test_key_type_variant_goes_into_left_lmk_first_byte() -> None:
    # 402 = LMK 14-15 (E0E0010101010101 F1F1010101010101) variant 4 (DE): E0^DE = 3E.
    key = H("0123456789ABCDEF")
    lmk = H("3EE0010101010101F1F1010101010101")
    assert LMK.encrypt_key("402", key) == _des3(lmk, key)


def test_triple_length_scheme_variants_go_into_right_lmk_first_byte() -> None:
    # 002 = LMK 14-15 variant 0; components use F1^6A=9B, F1^DE=2F, F1^2B=DA.
    k1, k2, k3 = H("0123456789ABCDEF"), H("FEDCBA9876543210"), H("89ABCDEF01234567")
    expected = (
        _des3(H("E0E00101010101019BF1010101010101"), k1)
        + _des3(H("E0E00101010101012FF1010101010101"), k2)
        + _des3(H("E0E0010101010101DAF1010101010101"), k3)
    )
    assert LMK.encrypt_key("002", k1 + k2 + k3) == expected
    assert LMK.decrypt_key("002", expected) == k1 + k2 + k3


@pytest.mark.parametrize(
    ("key_type", "pair", "variant"),
    [
        ("000", "04-05", 0),
        ("001", "06-07", 0),
        ("002", "14-15", 0),
        ("003", "16-17", 0),
        ("008", "26-27", 0),
        ("009", "28-29", 0),
        ("00A", "30-31", 0),
        ("00B", "32-33", 0),
        ("402", "14-15", 0xDE),
        ("109", "28-29", 0xA6),
        ("70D", "36-37", 0x74),
    ],
)
def test_parse_key_type(key_type: str, pair: str, variant: int) -> None:
    assert parse_key_type(key_type) == (pair, variant)


@pytest.mark.parametrize("key_type", ["", "00", "0000", "A00", "00F", "0ZZ"])
def test_parse_key_type_rejects(key_type: str) -> None:
    with pytest.raises(HsmError) as e:
        parse_key_type(key_type)
    assert e.value.code is ErrorCode.INVALID_KEY_TYPE


def test_encrypt_key_rejects_bad_length() -> None:
    with pytest.raises(HsmError) as e:
        LMK.encrypt_key("000", bytes(12))
    assert e.value.code is ErrorCode.KEY_LENGTH


def test_load_toml_and_json(tmp_path: Path) -> None:
    pairs = {n: LMK.pairs[n].hex().upper() for n in PAIR_NAMES}
    toml_file = tmp_path / "lmk.toml"
    toml_file.write_text("[pairs]\n" + "".join(f'"{n}" = "{v}"\n' for n, v in pairs.items()))
    json_file = tmp_path / "lmk.json"
    json_file.write_text(json.dumps({"pairs": pairs}))
    assert Lmk.load(toml_file).pairs == LMK.pairs
    assert Lmk.load(json_file).check_value() == H("7B44AC1DDEE2A94B")


def test_load_names_file_and_pair_without_key_material(tmp_path: Path) -> None:
    pairs = {n: LMK.pairs[n].hex().upper() for n in PAIR_NAMES}
    pairs["14-15"] = "E0E0010101010101F1F10101010101ZZ"
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"pairs": pairs}))
    with pytest.raises(HsmError) as e:
        Lmk.load(f)
    assert e.value.code is ErrorCode.INVALID_LMK
    assert "bad.json" in e.value.reason and "14-15" in e.value.reason
    assert "E0E0" not in str(e.value)


def test_load_missing_pair_and_bad_syntax(tmp_path: Path) -> None:
    f = tmp_path / "short.toml"
    f.write_text('[pairs]\n"00-01" = "01010101010101017902CD1FD36EF8BA"\n')
    with pytest.raises(HsmError, match="02-03 missing"):
        Lmk.load(f)
    g = tmp_path / "broken.toml"
    g.write_text("pairs = [\n")
    with pytest.raises(HsmError, match="not valid TOML"):
        Lmk.load(g)
    with pytest.raises(HsmError, match="cannot read"):
        Lmk.load(tmp_path / "absent.toml")


def test_lmk_repr_hides_pairs() -> None:
    assert "0101" not in repr(LMK)


@pytest.mark.parametrize(
    ("text", "scheme", "hexkey"),
    [
        ("2B77B300B25494A2", KeyScheme.Z, "2B77B300B25494A2"),
        ("Z2B77B300B25494A2", KeyScheme.Z, "2B77B300B25494A2"),
        ("U104C4216A751FEEEFF55698B26C57789", KeyScheme.U, "104C4216A751FEEEFF55698B26C57789"),
        ("XBAA518AAD10D28A2D32A5688317F44EB", KeyScheme.X, "BAA518AAD10D28A2D32A5688317F44EB"),
        ("T" + "11" * 24, KeyScheme.T, "11" * 24),
        ("Y" + "ab" * 24, KeyScheme.Y, "AB" * 24),
        ("11" * 16, KeyScheme.X, "11" * 16),
    ],
)
def test_parse_key_field(text: str, scheme: KeyScheme, hexkey: str) -> None:
    assert parse_key_field(text) == (scheme, H(hexkey))


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", ErrorCode.INPUT_DATA),
        ("S" + "11" * 16, ErrorCode.KEY_SCHEME),
        ("u" + "11" * 16, ErrorCode.KEY_SCHEME),
        ("U" + "11" * 8, ErrorCode.KEY_LENGTH),
        ("T" + "11" * 16, ErrorCode.KEY_LENGTH),
        ("11" * 10, ErrorCode.KEY_LENGTH),
        ("U" + "1G" * 16, ErrorCode.INPUT_DATA),
        ("0123456789ABCDEG", ErrorCode.INPUT_DATA),
    ],
)
def test_parse_key_field_errors(text: str, code: ErrorCode) -> None:
    with pytest.raises(HsmError) as e:
        parse_key_field(text)
    assert e.value.code is code


def test_format_key_field() -> None:
    assert format_key_field(KeyScheme.Z, H("2B77B300B25494A2")) == "2B77B300B25494A2"
    assert format_key_field(KeyScheme.U, bytes(16)) == "U" + "0" * 32
    assert format_key_field(KeyScheme.Y, bytes(24)) == "Y" + "0" * 48
    with pytest.raises(HsmError) as e:
        format_key_field(KeyScheme.T, bytes(16))
    assert e.value.code is ErrorCode.KEY_LENGTH


def test_key_scheme_for_length() -> None:
    assert KeyScheme.for_length(8) is KeyScheme.Z
    assert KeyScheme.for_length(16) is KeyScheme.U
    assert KeyScheme.for_length(24, variant=False) is KeyScheme.Y
