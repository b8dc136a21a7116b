"""Test-side crypto written from the published definitions, independent of hsm_sim.

Used to check what the switch produced: decrypting field 62 with the TMK, check values, the
operator PIN block, and the UnionPay POS MAC (docs/cup-pos.md, "The MAC")."""

from __future__ import annotations

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes


def _k24(key: bytes) -> bytes:
    return key * 3 if len(key) == 8 else key + key[:8] if len(key) == 16 else key


def ecb_encrypt(key: bytes, data: bytes) -> bytes:
    enc = Cipher(TripleDES(_k24(key)), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def ecb_decrypt(key: bytes, data: bytes) -> bytes:
    dec = Cipher(TripleDES(_k24(key)), modes.ECB()).decryptor()
    return dec.update(data) + dec.finalize()


def cv4(key: bytes) -> bytes:
    return ecb_encrypt(key, bytes(8))[:4]


def operator_pin_block(password: str, pik: bytes) -> bytes:
    """ISO 9564 format 0 with the PAN field all zeros: the clear block is the PIN field itself."""
    field = f"0{len(password)}{password}".ljust(16, "F")
    return ecb_encrypt(pik, bytes.fromhex(field))


def cup_pos_mac(mak: bytes, data: bytes) -> bytes:
    padded = data + bytes(-len(data) % 8)
    block = bytes(8)
    for i in range(0, len(padded), 8):
        block = bytes(a ^ b for a, b in zip(block, padded[i : i + 8], strict=True))
    hexed = block.hex().upper().encode()
    first = ecb_encrypt(mak, hexed[:8])
    second = ecb_encrypt(mak, bytes(a ^ b for a, b in zip(first, hexed[8:], strict=True)))
    return second.hex().upper().encode()[:8]


def card_pin_block(pin: str, pan: str, pik: bytes) -> bytes:
    """ISO 9564 format 0 with the PAN: PIN field XOR 0000 + the 12 PAN digits before the check digit."""
    pin_field = bytes.fromhex(f"0{len(pin)}{pin}".ljust(16, "F"))
    pan_field = bytes.fromhex("0000" + pan[-13:-1])
    return ecb_encrypt(pik, bytes(a ^ b for a, b in zip(pin_field, pan_field, strict=True)))


def iso0_pin(clear_block: bytes, pan: str | None) -> str | None:
    """The PIN in a clear ISO 9564 format 0 block, or None when the block is not one (wrong
    control nibble, length outside 4..12, a non-digit, fill other than F). ``pan`` None: the PAN
    field is all zeros (operator passwords, 53.1 = 1); else its 12 digits before the check digit."""
    account = "0" * 12 if pan is None else pan[-13:-1]
    pan_field = bytes.fromhex("0000" + account)
    nibbles = bytes(a ^ b for a, b in zip(clear_block, pan_field, strict=True)).hex().upper()
    length = int(nibbles[1], 16)
    if nibbles[0] != "0" or not 4 <= length <= 12:
        return None
    pin, fill = nibbles[2 : 2 + length], nibbles[2 + length :]
    return pin if pin.isdigit() and fill == "F" * len(fill) else None


def cbc_mac(key: bytes, data: bytes) -> bytes:
    """ANSI X9.9 / ISO 9797-1 MAC algorithm 1 with padding method 1 (zeros), under a single-length
    key: CBC encryption from a zero IV, the last block is the MAC (8 bytes)."""
    padded = data + bytes(-len(data) % 8) if data else bytes(8)
    block = bytes(8)
    for i in range(0, len(padded), 8):
        block = ecb_encrypt(key, bytes(a ^ b for a, b in zip(block, padded[i : i + 8], strict=True)))
    return block


def iso1_pin_block(pin: str, pik: bytes) -> bytes:
    """ISO 9564 format 1: control 1, the PIN length and digits, then fill (here a fixed one)."""
    return ecb_encrypt(pik, bytes.fromhex(f"1{len(pin):X}{pin}".ljust(16, "A")))


def no_pan_pin_block(pin: str, pik: bytes) -> bytes:
    """ISO 9564 format 0 with the account field all zeros (53.1 = 1)."""
    return ecb_encrypt(pik, bytes.fromhex(f"0{len(pin)}{pin}".ljust(16, "F")))
