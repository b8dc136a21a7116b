"""Field 62 of a sign-in answer (0810): working keys under the terminal master key.

Layouts (shared/vectors/cup_pos.json, ``field_62_in_0810``):

- 001: 24 bytes, PIK(8) + CV(4) + MAK(8) + CV(4)
- 003: 40 bytes, PIK(16) + CV(4) + MAK(8) + 8 zero bytes + CV(4)
- 004: 60 bytes, the 003 layout + TDK(16) + CV(4)

Key ciphertexts are DES/3DES ECB under the TMK; CV = first 4 bytes of E(clear key, 8 zero
bytes). Errors name the key and the problem, never a key byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hsm_sim.ciphers import tdes_ecb_decrypt
from hsm_sim.errors import HsmError
from hsm_sim.keys import kcv_tdes

CV_LEN = 4


class KeyMode(StrEnum):
    """60.3 of a terminal sign-in: which working keys the terminal asks for."""

    SINGLE = "001"  # single-length PIK and MAK
    DOUBLE = "003"  # double-length PIK, single-length MAK
    DOUBLE_TDK = "004"  # as 003, plus a double-length track data key


FIELD62_LENGTH = {KeyMode.SINGLE: 24, KeyMode.DOUBLE: 40, KeyMode.DOUBLE_TDK: 60}


class KeyCheckError(Exception):
    """Field 62 is not what the key mode promises.

    ``check_value`` is True when a key decrypted to something whose check value differs from
    the one sent (the terminal must refuse the key), False for a layout problem.
    """

    def __init__(self, reason: str, *, check_value: bool) -> None:
        self.reason = reason
        self.check_value = check_value
        super().__init__(reason)


@dataclass(frozen=True, slots=True, repr=False)
class WorkingKeys:
    """Clear working keys, as a PIN pad holds them. The repr never shows key bytes."""

    pik: bytes
    mak: bytes
    tdk: bytes | None = None

    def __repr__(self) -> str:
        tdk = f", tdk=<{len(self.tdk)} bytes>" if self.tdk is not None else ""
        return f"WorkingKeys(pik=<{len(self.pik)} bytes>, mak=<{len(self.mak)} bytes>{tdk})"


def check_value(key: bytes) -> bytes:
    """The 4-byte check value UnionPay hosts send beside a key."""
    return kcv_tdes(key)[:CV_LEN]


def unwrap_working_keys(mode: KeyMode, tmk: bytes, field62: bytes, *, strict: bool = False) -> WorkingKeys:
    """Decrypt and verify the working keys of a sign-in answer.

    ``strict`` also requires the 8 filler bytes of the 003/004 layout to be zero (conformance
    checks want that; a terminal in the field only cares about the keys).
    """
    want = FIELD62_LENGTH[mode]
    if len(field62) != want:
        raise KeyCheckError(
            f"field 62 is {len(field62)} bytes, sign-in {mode.value} needs {want}", check_value=False
        )
    if mode is KeyMode.SINGLE:
        pik = _unwrap("PIK", tmk, field62[0:8], field62[8:12])
        mak = _unwrap("MAK", tmk, field62[12:20], field62[20:24])
        return WorkingKeys(pik=pik, mak=mak)
    pik = _unwrap("PIK", tmk, field62[0:16], field62[16:20])
    if strict and any(field62[28:36]):
        raise KeyCheckError("field 62 bytes 28..35 (after the MAK) are not zero", check_value=False)
    mak = _unwrap("MAK", tmk, field62[20:28], field62[36:40])
    tdk = None
    if mode is KeyMode.DOUBLE_TDK:
        tdk = _unwrap("TDK", tmk, field62[40:56], field62[56:60])
    return WorkingKeys(pik=pik, mak=mak, tdk=tdk)


def _unwrap(name: str, tmk: bytes, encrypted: bytes, cv: bytes) -> bytes:
    try:
        clear = tdes_ecb_decrypt(tmk, encrypted)
    except HsmError as exc:
        raise KeyCheckError(f"{name} cannot be decrypted: {exc.reason}", check_value=False) from None
    if check_value(clear) != cv:
        raise KeyCheckError(f"{name} check value does not match the decrypted key", check_value=True)
    return clear
