"""PINs stored under the LMK (the "PIN under LMK pair 02-03" of BA, JC, JE, JG, BC and NG).

payShield's own LMK PIN encryption is proprietary and numeric. This HSM uses a documented,
account-bound form instead, which clients treat as opaque just the same:

    encrypted PIN = hex(TDES-ECB(LMK pair 02-03, ISO 9564-1 format 0 block(PIN, account)))

16 hex characters; ``account`` is the 12-digit account-number field of the command. Because
the block is format 0, an encrypted PIN only decrypts correctly with the account it was made
for; with any other account it fails the format checks (error 20) or yields a different PIN.
"""

from __future__ import annotations

from hsm_sim.ciphers import tdes_ecb_decrypt, tdes_ecb_encrypt
from hsm_sim.cryptoerrors import CryptoError
from hsm_sim.errors import ErrorCode, HsmError
from hsm_sim.lmk import Lmk
from hsm_sim.pinblock import PinBlockFormat, build_pinblock, parse_pinblock

PIN_PAIR = "02-03"
REFERENCE_PAIR = "18-19"
LMK_PIN_LENGTH = 16  # hex characters
#: Length of the clear-PIN fields of BA (in) and NG (out): PIN, then 'F' padding.
CLEAR_PIN_FIELD = 13


def encrypt_pin(lmk: Lmk, pin: str, account: str) -> str:
    block = build_pinblock(PinBlockFormat.ISO0, pin, account)
    return tdes_ecb_encrypt(lmk.pair(PIN_PAIR), block).hex().upper()


def decrypt_pin(lmk: Lmk, encrypted: str, account: str) -> str:
    """The clear PIN; 20 when the value is not a PIN under this LMK for this account."""
    try:
        raw = bytes.fromhex(encrypted)
    except ValueError:
        raise HsmError(ErrorCode.INPUT_DATA, "PIN (LMK): not hexadecimal") from None
    if len(raw) != LMK_PIN_LENGTH // 2:
        raise HsmError(ErrorCode.INPUT_DATA, f"PIN (LMK): must be {LMK_PIN_LENGTH} hex characters")
    block = tdes_ecb_decrypt(lmk.pair(PIN_PAIR), raw)
    try:
        return parse_pinblock(block, account, _ISO0)
    except CryptoError:
        # One answer for every failure: which check failed would leak PIN-block structure.
        raise HsmError(ErrorCode.PIN_BLOCK_INVALID, "PIN (LMK): not a valid PIN under LMK") from None


def reference_number(lmk: Lmk, account: str) -> str:
    """NG's reference number: the account under LMK pair 18-19, decimalised to 12 digits
    (hex digits A-F become 0-5)."""
    enc = tdes_ecb_encrypt(lmk.pair(REFERENCE_PAIR), bytes.fromhex("0000" + account))
    return enc.hex().upper().translate(_DECIMALISE)[:12]


_ISO0 = PinBlockFormat.ISO0  # a constant: an enum attribute lookup is a Python-level call
_DECIMALISE = str.maketrans("ABCDEF", "012345")
