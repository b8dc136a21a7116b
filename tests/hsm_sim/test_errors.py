"""payShield error codes against the published table, HsmError, and the one map from the crypto
core's errors to codes (expected codes from the payShield table, by what each error means)."""

import pickle

import pytest

from hsm_sim import cryptoerrors
from hsm_sim.cryptoerrors import (
    CryptoError,
    DataLengthError,
    IncompatibleKeyLengthError,
    InputError,
    KeyBlockAuthError,
    KeyBlockFormatError,
    KeyLengthError,
    PinBlockContentError,
    PinBlockFormatError,
    PinLengthError,
)
from hsm_sim.errors import CRYPTO_ERROR_CODES, ErrorCode, HsmError, crypto_error_code


def test_error_code_values_match_the_payshield_table() -> None:
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


# The payShield 10K Core Host Commands error table.
PUBLISHED_CODES = {
    "00": "No error",
    "01": "Verification failure or warning of imported key parity error",
    "02": "Key inappropriate length for algorithm",
    "04": "Invalid key type code",
    "05": "Invalid key length flag",
    "10": "Source key parity error",
    "11": "Destination key parity error or key all zeros",
    "12": "Contents of user storage not available",
    "13": "Invalid LMK identifier",
    "15": "Error in input data",
    "17": "HSM not authorized",
    "20": "PIN block does not contain valid values",
    "23": "Invalid PIN block format code",
    "24": "PIN is fewer than 4 or more than 12 digits",
    "26": "Invalid key scheme",
    "27": "Incompatible key length",
    "28": "Invalid key type",
    "29": "Key function not permitted",
    "51": "Invalid message header",
    "67": "Command not licensed",
    "68": "Command has been disabled",
    "69": "PIN block format has been disabled",
    "80": "Data length error",
    "83": "Key block format error",
    "84": "Key block check value error",
    "A4": "Key block authentication failure",
}


# Codes only one command uses, with its own meaning: emv.json payshield_emv.KQ_errors.
COMMAND_CODES = {"81"}


def test_error_code_covers_every_published_code() -> None:
    assert {c.value for c in ErrorCode} == set(PUBLISHED_CODES) | COMMAND_CODES
    for code, text in PUBLISHED_CODES.items():
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


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (KeyLengthError, "02"),  # Key inappropriate length for algorithm
        (IncompatibleKeyLengthError, "27"),  # Incompatible key length
        (DataLengthError, "80"),  # Data length error
        (InputError, "15"),  # Error in input data
        (PinLengthError, "24"),  # PIN is fewer than 4 or more than 12 digits
        (PinBlockFormatError, "23"),  # Invalid PIN block format code
        (PinBlockContentError, "20"),  # PIN block does not contain valid values
        (KeyBlockFormatError, "83"),  # Key block format error
        (KeyBlockAuthError, "A4"),  # Key block authentication failure
    ],
)
def test_each_crypto_error_answers_its_payshield_code(error: type[CryptoError], code: str) -> None:
    assert crypto_error_code(error("why")) == code


def test_the_map_names_every_crypto_error_the_core_defines() -> None:
    defined = {
        cls
        for cls in vars(cryptoerrors).values()
        if isinstance(cls, type) and issubclass(cls, CryptoError) and cls is not CryptoError
    }
    assert set(CRYPTO_ERROR_CODES) == defined


def test_a_subclass_answers_its_base_class_code_and_an_unmapped_one_15() -> None:
    class ShortIv(InputError):
        pass

    class Unmapped(CryptoError):
        pass

    assert crypto_error_code(ShortIv("IV must be 8 bytes")) is ErrorCode.INPUT_DATA
    assert crypto_error_code(Unmapped("?")) is ErrorCode.INPUT_DATA


def test_crypto_errors_are_not_hsm_errors_and_pickle_with_their_reason() -> None:
    err = PinLengthError("PIN has 3 digits, allowed 4..12")
    assert not isinstance(err, HsmError)
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), copy.reason, str(copy)) == (PinLengthError, err.reason, err.reason)
