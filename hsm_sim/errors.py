"""payShield error codes, the host-command layer's exception, and the one map from the crypto
core's errors to codes.

An ``HsmError`` carries the two-character code a host command answers with. The crypto core
raises its own ``CryptoError`` subclasses instead (``hsm_sim/cryptoerrors.py``); the dispatcher
answers them with ``crypto_error_code``, the only place that knows which code each one means.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

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

_DESCRIPTIONS: dict[str, str] = {
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
    "81": "Zero-length data",
    "83": "Key block format error",
    "84": "Key block check value error",
    "A4": "Key block authentication failure",
}


class ErrorCode(StrEnum):
    """payShield 10K host-command error codes (Core Host Commands error table)."""

    NO_ERROR = "00"
    VERIFICATION_FAILURE = "01"
    KEY_LENGTH = "02"
    INVALID_KEY_TYPE = "04"
    INVALID_KEY_LENGTH_FLAG = "05"
    SOURCE_KEY_PARITY = "10"
    DEST_KEY_PARITY = "11"
    USER_STORAGE = "12"
    INVALID_LMK = "13"
    INPUT_DATA = "15"
    NOT_AUTHORIZED = "17"
    PIN_BLOCK_INVALID = "20"
    PIN_BLOCK_FORMAT = "23"
    PIN_LENGTH = "24"
    KEY_SCHEME = "26"
    INCOMPATIBLE_KEY_LENGTH = "27"
    KEY_TYPE = "28"
    KEY_FUNCTION = "29"
    MESSAGE_HEADER = "51"
    NOT_LICENSED = "67"
    DISABLED = "68"
    PIN_FORMAT_DISABLED = "69"
    DATA_LENGTH = "80"
    ZERO_LENGTH = "81"
    KEY_BLOCK_FORMAT = "83"
    KEY_BLOCK_CHECK_VALUE = "84"
    KEY_BLOCK_AUTH = "A4"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self.value]


class HsmError(Exception):
    """A failure that maps onto one payShield error code.

    ``reason`` is for operators and logs: it must never contain key, PIN or PIN-block material.
    """

    code: ErrorCode
    reason: str

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code} {self.reason}"

    def __reduce__(self) -> tuple[type[HsmError], tuple[ErrorCode, str]]:
        return (type(self), (self.code, self.reason))


#: The payShield code each crypto-core error answers with.
CRYPTO_ERROR_CODES: Mapping[type[CryptoError], ErrorCode] = MappingProxyType(
    {
        KeyLengthError: ErrorCode.KEY_LENGTH,
        IncompatibleKeyLengthError: ErrorCode.INCOMPATIBLE_KEY_LENGTH,
        DataLengthError: ErrorCode.DATA_LENGTH,
        InputError: ErrorCode.INPUT_DATA,
        PinLengthError: ErrorCode.PIN_LENGTH,
        PinBlockFormatError: ErrorCode.PIN_BLOCK_FORMAT,
        PinBlockContentError: ErrorCode.PIN_BLOCK_INVALID,
        KeyBlockFormatError: ErrorCode.KEY_BLOCK_FORMAT,
        KeyBlockAuthError: ErrorCode.KEY_BLOCK_AUTH,
    }
)


def crypto_error_code(exc: CryptoError) -> ErrorCode:
    """The code ``exc`` answers with: its class's, or the nearest base class's; 15 (input data)
    for a ``CryptoError`` the table does not name."""
    for cls in type(exc).__mro__:
        code = CRYPTO_ERROR_CODES.get(cls)
        if code is not None:
            return code
    return ErrorCode.INPUT_DATA
