"""Parity, random keys and check values against published vectors (the Thales BU and DES KCV
examples, and the UnionPay working keys of docs/cup-pos.md)."""

import pytest

from hsm_sim.cryptoerrors import KeyLengthError
from hsm_sim.keys import (
    fix_parity,
    has_odd_parity,
    kcv_aes,
    kcv_tdes,
    random_key,
)

H = bytes.fromhex


def test_kcv_tdes_single_des() -> None:
    assert kcv_tdes(H("0123456789ABCDEF")) == H("D5D44FF720683D0D")


def test_kcv_tdes_double_length() -> None:
    assert kcv_tdes(H("0123456789ABCDEFFEDCBA9876543210"))[:3] == H("08D7B4")


def test_kcv_aes_x9_24_2017() -> None:
    assert kcv_aes(H("3F419E1CB7079442AA37474C2EFBF8B8")) == H("08793E25AB")


def test_kcv_tdes_of_aes_key_bytes() -> None:
    assert kcv_tdes(H("3F419E1CB7079442AA37474C2EFBF8B8"))[:3] == H("57C409")


@pytest.mark.parametrize(
    ("clear", "cv"),
    [
        ("11111111111111111111111111111111", None),  # TMK: no published CV
        ("22222222222222222222222222222222", "00962B60"),
        ("3333333333333333", "ADC67D84"),
        ("44444444444444444444444444444444", "E2F24340"),
    ],
)
def test_kcv_tdes_cup_pos_working_keys(clear: str, cv: str | None) -> None:
    if cv is None:
        # A key of identical halves is single DES: the double and single forms agree.
        assert kcv_tdes(H(clear)) == kcv_tdes(H(clear[:16]))
    else:
        assert kcv_tdes(H(clear))[:4] == H(cv)


def test_has_odd_parity() -> None:
    assert has_odd_parity(H("0123456789ABCDEF"))
    assert not has_odd_parity(H("0023456789ABCDEF"))
    assert not has_odd_parity(H("0000000000000000"))


def test_fix_parity_flips_low_bit_only() -> None:
    # 00 has zero bits -> 01; 03 has two -> 02; FE has seven -> FE.
    assert fix_parity(H("0003FE")) == H("0102FE")
    assert fix_parity(H("0123456789ABCDEF")) == H("0123456789ABCDEF")


@pytest.mark.parametrize("n", [8, 16, 24])
def test_random_key_shape(n: int) -> None:
    for _ in range(20):
        k = random_key(n)
        assert len(k) == n
        assert has_odd_parity(k)
        halves = {k[i : i + 8] for i in range(0, n, 8)}
        assert len(halves) == n // 8
    assert random_key(n) != random_key(n)


def test_random_key_bad_length() -> None:
    with pytest.raises(KeyLengthError):
        random_key(12)
