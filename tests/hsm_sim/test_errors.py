import json
import pickle
from pathlib import Path

import pytest

from hsm_sim.errors import ErrorCode, HsmError

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "crypto.json"


def test_error_code_values_match_brief() -> None:
    assert ErrorCode.NO_ERROR.value == "00"
    assert ErrorCode.VERIFICATION_FAILURE.value == "01"
    assert ErrorCode.KEY_LENGTH.value == "02"
    assert ErrorCode.SOURCE_KEY_PARITY.value == "10"
    assert ErrorCode.PIN_BLOCK_INVALID.value == "20"
    assert ErrorCode.PIN_BLOCK_FORMAT.value == "23"
    assert ErrorCode.PIN_LENGTH.value == "24"
    assert ErrorCode.KEY_SCHEME.value == "26"
    assert ErrorCode.KEY_BLOCK_FORMAT.value == "83"
    assert ErrorCode.KEY_BLOCK_AUTH.value == "A4"


@pytest.mark.skipif(not VECTORS.exists(), reason="shared vectors not present")
def test_error_code_covers_every_published_code() -> None:
    table = json.loads(VECTORS.read_text())["payshield_error_codes"]
    table.pop("source")
    assert {c.value for c in ErrorCode} == set(table)
    for code, text in table.items():
        assert ErrorCode(code).description == text


def test_error_code_description_literal() -> None:
    assert ErrorCode.PIN_LENGTH.description == "PIN is fewer than 4 or more than 12 digits"


def test_hsm_error_str_is_code_then_reason() -> None:
    err = HsmError(ErrorCode.PIN_BLOCK_FORMAT, "format code 7 not supported")
    assert str(err) == "23 format code 7 not supported"
    assert err.code is ErrorCode.PIN_BLOCK_FORMAT
    assert err.reason == "format code 7 not supported"


def test_hsm_error_pickles() -> None:
    err = pickle.loads(pickle.dumps(HsmError(ErrorCode.KEY_LENGTH, "bad")))
    assert err.code is ErrorCode.KEY_LENGTH
    assert err.reason == "bad"
