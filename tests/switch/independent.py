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


# -- EMV / PBOC cryptograms, from ../shared/vectors/emv.json "conventions" -----------------------


def _des(key8: bytes, block: bytes, *, decrypt: bool = False) -> bytes:
    cipher = Cipher(TripleDES(key8 * 3), modes.ECB())
    worker = cipher.decryptor() if decrypt else cipher.encryptor()
    return worker.update(block) + worker.finalize()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def card_key_option_a(imk: bytes, pan: str, psn: str) -> bytes:
    """Y = rightmost 16 digits of PAN||PSN (left-padded with 0); UDK = 3DES(Y) || 3DES(Y xor FF..)."""
    y = bytes.fromhex((pan + psn).rjust(16, "0")[-16:])
    return ecb_encrypt(imk, y) + ecb_encrypt(imk, _xor(y, b"\xff" * 8))


def pboc_session_key(card_key: bytes, atc: bytes) -> bytes:
    """SK = 3DES_UDK(000000000000 || ATC) || 3DES_UDK(000000000000 || ATC xor FFFF)."""
    return ecb_encrypt(card_key, bytes(6) + atc) + ecb_encrypt(card_key, bytes(6) + _xor(atc, b"\xff\xff"))


def mac_algorithm3(key: bytes, data: bytes) -> bytes:
    """ISO 9797-1 MAC algorithm 3, padding method 2: 80 then zeros to a multiple of 8."""
    padded = data + b"\x80" + bytes(-(len(data) + 1) % 8)
    left, right = key[:8], key[8:16]
    block = bytes(8)
    for i in range(0, len(padded), 8):
        block = _des(left, _xor(block, padded[i : i + 8]))
    return _des(left, _des(right, block, decrypt=True))


def arpc_method1(key: bytes, arqc: bytes, arc: bytes) -> bytes:
    """ARPC = 3DES_K(ARQC xor (ARC || 000000000000))."""
    return ecb_encrypt(key, _xor(arqc, arc + bytes(6)))


PBOC_ARQC_TAGS = ("9F02", "9F03", "9F1A", "95", "5F2A", "9A", "9C", "9F37", "82", "9F36")


def pboc_arqc_input(values: dict[str, bytes]) -> bytes:
    """9F02 9F03 9F1A 95 5F2A 9A 9C 9F37 82 9F36, then the CVR: IAD bytes 4..7."""
    return b"".join(values[tag] for tag in PBOC_ARQC_TAGS) + values["9F10"][3:7]


def tlv(tag: str, value: bytes) -> bytes:
    """One BER-TLV object with a one-byte length (every field 55 object here is short)."""
    assert len(value) < 0x80
    return bytes.fromhex(tag) + bytes([len(value)]) + value


def tlv_objects(data: bytes) -> list[tuple[str, bytes]]:
    """Top-level BER-TLV objects of field 55 (tags of one or two bytes, lengths up to 81 xx)."""
    out, pos = [], 0
    while pos < len(data):
        start = pos
        pos += 2 if data[pos] & 0x1F == 0x1F else 1
        tag = data[start:pos].hex().upper()
        length = data[pos]
        pos += 1
        if length == 0x81:
            length, pos = data[pos], pos + 1
        out.append((tag, data[pos : pos + length]))
        pos += length
    return out
