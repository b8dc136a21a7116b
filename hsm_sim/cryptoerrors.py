"""What the pure crypto core raises: its own errors, each saying what was wrong.

The core (ciphers, MACs, keys, PIN blocks, DUKPT, TR-31, EMV) knows nothing of payShield: a
function given a key of the wrong length raises ``KeyLengthError``, not "error 02". The
host-command layer maps each class to the code a command answers with, in one table
(``hsm_sim.errors.crypto_error_code``). ``reason`` is for operators and logs: it names sizes,
formats and nibble positions, never key, PIN or PIN-block material.
"""

from __future__ import annotations


class CryptoError(Exception):
    """A crypto-core failure; ``reason`` says what was wrong."""

    reason: str

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeyLengthError(CryptoError):
    """A key of a length the algorithm does not take."""


class IncompatibleKeyLengthError(CryptoError):
    """Two keys whose lengths do not go together (a working key longer than its BDK)."""


class DataLengthError(CryptoError):
    """Data that is not a whole number of cipher blocks."""


class InputError(CryptoError):
    """Any other argument the operation cannot take (an IV's size, a padding method, a KSN)."""


class PinLengthError(CryptoError):
    """A PIN of fewer than 4 or more than 12 digits."""


class PinBlockFormatError(CryptoError):
    """A PIN block format that is unknown or is not the one expected."""


class PinBlockContentError(CryptoError):
    """A PIN block whose PIN or fill digits are not valid for its format."""


class KeyBlockFormatError(CryptoError):
    """A TR-31 key block that does not parse."""


class KeyBlockAuthError(CryptoError):
    """A TR-31 key block whose MAC does not verify."""
