"""Field 62 of a sign-in answer (0810): working keys under the terminal master key.

Where each key and check value sits is the key mode's layout in the message catalogue
(specs/keylayout.py, ``KeyLayout``; docs/cup-pos.md, "Field 62"). Key ciphertexts are DES/3DES
ECB under the TMK; a check value is the first bytes of E(clear key, 8 zero bytes). Errors name
the key and the problem, never a key byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hsm_sim.ciphers import tdes_ecb_decrypt
from hsm_sim.cryptoerrors import CryptoError
from hsm_sim.keys import kcv_tdes
from specs.keylayout import KeyLayout, KeyLayoutError, KeyName


class KeyMode(StrEnum):
    """60.3 of a terminal sign-in: which working keys the terminal asks for (the sign-in
    kind's network codes in the catalogue)."""

    SINGLE = "001"  # single-length PIK and MAK
    DOUBLE = "003"  # double-length PIK, single-length MAK
    DOUBLE_TDK = "004"  # as 003, plus a double-length track data key


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


def check_value(key: bytes, length: int = 4) -> bytes:
    """The check value UnionPay hosts send beside a key: the first bytes of E(key, zeros)."""
    return kcv_tdes(key)[:length]


def unwrap_working_keys(layout: KeyLayout, tmk: bytes, field62: bytes, *, strict: bool = False) -> WorkingKeys:
    """Decrypt and verify the working keys of a sign-in answer laid out as ``layout`` says.

    ``strict`` also requires the filler to be zero (conformance checks want that; a terminal
    in the field only cares about the keys).
    """
    try:
        parts = layout.parse(field62, strict=strict)
    except KeyLayoutError as exc:
        raise KeyCheckError(exc.reason, check_value=False) from None
    clear = {name: _unwrap(name.value, tmk, encrypted, cv) for name, (encrypted, cv) in parts.items()}
    return WorkingKeys(pik=clear[KeyName.PIK], mak=clear[KeyName.MAK], tdk=clear.get(KeyName.TDK))


def _unwrap(name: str, tmk: bytes, encrypted: bytes, cv: bytes) -> bytes:
    try:
        clear = tdes_ecb_decrypt(tmk, encrypted)
    except CryptoError as exc:
        raise KeyCheckError(f"{name} cannot be decrypted: {exc.reason}", check_value=False) from None
    if check_value(clear, len(cv)) != cv:
        raise KeyCheckError(f"{name} check value does not match the decrypted key", check_value=True)
    return clear
