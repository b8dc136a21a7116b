"""Turning request key fields into clear keys inside the HSM, and clear keys back into fields.

Two kinds of encryption meet here:

* under the LMK, for storage: ``Lmk.encrypt_key`` / ``decrypt_key`` (variant LMK; schemes Z/U/T);
* under a key-encrypting key (ZMK or TMK), for transport: scheme Z/X/Y is plain TDES-ECB of each
  8-byte component (ANSI X9.17); scheme U/T encrypts component *i* under the KEK whose right
  half has its first byte XORed with the i-th double/triple key-scheme variant, which is how
  Thales applies the same variants to a ZMK as to an LMK pair.

A UnionPay terminal decrypts its working keys with plain TDES-ECB under its TMK, so the switch
asks for scheme X (double) / Y (triple) / Z (single) when it exports under a TMK.
"""

from __future__ import annotations

from hsm_sim.ciphers import tdes_ecb_decrypt, tdes_ecb_encrypt
from hsm_sim.errors import ErrorCode, HsmError
from hsm_sim.hostcmd import KeyField
from hsm_sim.keys import has_odd_parity, kcv_tdes
from hsm_sim.lmk import DOUBLE_KEY_VARIANTS, TRIPLE_KEY_VARIANTS, KeyScheme, Lmk

KEY_TYPE_ZMK = "000"
KEY_TYPE_ZPK = "001"
KEY_TYPE_TMK = "002"  # also TPK and PVK: all stored under LMK pair 14-15
KEY_TYPE_TAK = "003"
KEY_TYPE_ZAK = "008"
KEY_TYPE_BDK = "009"
KEY_TYPE_MK_AC = "109"  # issuer master key for application cryptograms (IMK-AC), LMK 28-29 variant 1

_LMK_SCHEMES = (KeyScheme.Z, KeyScheme.U, KeyScheme.T)


def from_lmk(
    lmk: Lmk,
    key_type: str,
    field: KeyField,
    name: str,
    parity_error: ErrorCode = ErrorCode.SOURCE_KEY_PARITY,
) -> bytes:
    """The clear key behind a key field stored under the LMK, parity-checked.

    X/Y are transport-only schemes here: under the LMK a double/triple key must be U/T.
    """
    if field.scheme not in _LMK_SCHEMES:
        raise HsmError(ErrorCode.KEY_SCHEME, f"{name}: scheme {field.scheme} not valid under LMK")
    key = lmk.decrypt_key(key_type, field.enc)
    if not has_odd_parity(key):
        raise HsmError(parity_error, f"{name}: parity error")
    return key


def to_lmk(lmk: Lmk, key_type: str, key: bytes) -> str:
    """A clear key as a key field under the LMK (scheme from its length: Z/U/T)."""
    return KeyField(KeyScheme.for_length(len(key)), lmk.encrypt_key(key_type, key)).text


def _kek_for_component(kek: bytes, variant: int) -> bytes:
    if len(kek) == 8:
        kek = kek + kek
    if variant == 0:
        return kek
    return kek[:8] + bytes([kek[8] ^ variant]) + kek[9:]


def _variants(scheme: KeyScheme) -> tuple[int, ...]:
    if scheme is KeyScheme.U:
        return DOUBLE_KEY_VARIANTS
    if scheme is KeyScheme.T:
        return TRIPLE_KEY_VARIANTS
    return (0,) * scheme.key_length


def _under_kek(kek: bytes, data: bytes, scheme: KeyScheme, *, encrypt: bool) -> bytes:
    if len(data) != scheme.key_length:
        raise HsmError(
            ErrorCode.INCOMPATIBLE_KEY_LENGTH,
            f"key scheme {scheme} is for {scheme.key_length}-byte keys, key has {len(data)}",
        )
    op = tdes_ecb_encrypt if encrypt else tdes_ecb_decrypt
    variants = _variants(scheme)
    if not any(variants):
        return op(kek, data)
    return b"".join(op(_kek_for_component(kek, v), data[8 * i : 8 * i + 8]) for i, v in enumerate(variants))


def encrypt_under_kek(kek: bytes, key: bytes, scheme: KeyScheme) -> bytes:
    """Encrypt a clear key for transport under a ZMK/TMK (see module doc for the schemes)."""
    return _under_kek(kek, key, scheme, encrypt=True)


def decrypt_under_kek(kek: bytes, enc: bytes, scheme: KeyScheme) -> bytes:
    """Inverse of :func:`encrypt_under_kek`."""
    return _under_kek(kek, enc, scheme, encrypt=False)


def kcv6(key: bytes) -> str:
    """The 6-hex-digit key check value hosts compare (first 3 bytes of E(K, zeros))."""
    return kcv_tdes(key)[:3].hex().upper()


def kcv16(key: bytes) -> str:
    """The 16-hex-digit "backwards compatible" key check value."""
    return kcv_tdes(key).hex().upper()
