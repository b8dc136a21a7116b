"""TR-31 / ANSI X9.143 key blocks, versions A, B, C and D.

A and C bind by key variants (KBEK = KBPK xor 45.., KBAK = KBPK xor 4D..), encrypt with
TDES-CBC (IV = the first 8 header bytes) and MAC the ASCII header plus the binary encrypted key
data with a TDES CBC-MAC truncated to 4 bytes. B and D derive KBEK and KBAK from the KBPK with CMAC
(SP 800-108 counter mode), MAC the header plus the clear key data with CMAC (8 bytes for B,
16 for D) and encrypt with CBC using that MAC as the IV.
"""

from __future__ import annotations

import hmac
import os
import string
from dataclasses import dataclass

from hsm_sim.ciphers import (
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    aes_cmac,
    tdes_cbc_decrypt,
    tdes_cbc_encrypt,
    tdes_cmac,
)
from hsm_sim.cryptoerrors import KeyBlockAuthError, KeyBlockFormatError, KeyLengthError

VERSIONS = frozenset("ABCD")
MAX_BLOCK_LENGTH = 9992
_HEADER_LENGTH = 16
_PRINTABLE = frozenset(chr(c) for c in range(0x20, 0x7F))
_ALNUM = frozenset(string.ascii_uppercase + string.digits)
_HEX = frozenset(string.hexdigits)
_PAD_BLOCK = "PB"


@dataclass(frozen=True, slots=True)
class Tr31Header:
    """Key block header fields; ``optional_blocks`` excludes the PB padding block."""

    version: str
    usage: str
    algorithm: str
    mode: str
    version_number: str = "00"
    exportability: str = "E"
    optional_blocks: tuple[tuple[str, str], ...] = ()
    reserved: str = "00"

    def __post_init__(self) -> None:
        if self.version not in VERSIONS or len(self.version) != 1:
            raise KeyBlockFormatError(f"key block version {self.version!r} not supported")
        if len(self.usage) != 2 or not set(self.usage) <= _ALNUM:
            raise KeyBlockFormatError(f"key usage {self.usage!r} invalid")
        for name, value in (
            ("algorithm", self.algorithm),
            ("mode of use", self.mode),
            ("exportability", self.exportability),
        ):
            if len(value) != 1 or value not in _ALNUM:
                raise KeyBlockFormatError(f"{name} {value!r} invalid")
        for name, value in (("key version number", self.version_number), ("reserved", self.reserved)):
            if len(value) != 2 or not set(value) <= _ALNUM:
                raise KeyBlockFormatError(f"{name} {value!r} invalid")
        for block_id, data in self.optional_blocks:
            if len(block_id) != 2 or not set(block_id) <= _ALNUM or block_id == _PAD_BLOCK:
                raise KeyBlockFormatError(f"optional block ID {block_id!r} invalid")
            if not set(data) <= _PRINTABLE:
                raise KeyBlockFormatError(f"optional block {block_id} data not printable ASCII")

    def optional_block(self, block_id: str) -> str | None:
        """Data of the first optional block named ``block_id`` (e.g. "KS"), if present."""
        return next((data for bid, data in self.optional_blocks if bid == block_id), None)


# --- header text -------------------------------------------------------------------------------


def _encode_opt_block(block_id: str, data: str) -> str:
    short = 4 + len(data)
    if short <= 0xFF:
        return f"{block_id}{short:02X}{data}"
    # Extended length: "00", the length-of-length, then the length (all counted).
    for lol in range(1, 5):
        total = 4 + 2 + lol * 2 + len(data)
        if total < 16 ** (lol * 2):
            return f"{block_id}00{lol * 2:02X}{total:0{lol * 2}X}{data}"
    raise KeyBlockFormatError(f"optional block {block_id} too long")


def _header_text(header: Tr31Header, block_size: int, total_length: int) -> str:
    blocks = "".join(_encode_opt_block(bid, data) for bid, data in header.optional_blocks)
    count = len(header.optional_blocks)
    if blocks and (_HEADER_LENGTH + len(blocks)) % block_size:
        pad = -(_HEADER_LENGTH + len(blocks) + 4) % block_size
        blocks += f"{_PAD_BLOCK}{4 + pad:02X}" + "0" * pad
        count += 1
    if count > 99:
        raise KeyBlockFormatError("more than 99 optional blocks")
    return (
        f"{header.version}{total_length:04d}{header.usage}{header.algorithm}{header.mode}"
        f"{header.version_number}{header.exportability}{count:02d}{header.reserved}{blocks}"
    )


def _parse_header(block: str) -> tuple[Tr31Header, int]:
    """Parse the header and optional blocks; return it and the header text length."""
    if len(block) < _HEADER_LENGTH:
        raise KeyBlockFormatError(f"key block shorter than the {_HEADER_LENGTH}-character header")
    count_text = block[12:14]
    if not count_text.isdigit():
        raise KeyBlockFormatError("optional block count not numeric")
    pos = _HEADER_LENGTH
    blocks: list[tuple[str, str]] = []
    for _ in range(int(count_text)):
        block_id = block[pos : pos + 2]
        if len(block_id) != 2 or not set(block_id) <= _ALNUM:
            raise KeyBlockFormatError(f"optional block ID at offset {pos} invalid")
        length_text = block[pos + 2 : pos + 4]
        if len(length_text) != 2 or not set(length_text) <= _HEX:
            raise KeyBlockFormatError(f"optional block {block_id} length not hex")
        length = int(length_text, 16)
        data_start = pos + 4
        if length == 0:
            lol_text = block[pos + 4 : pos + 6]
            if len(lol_text) != 2 or not set(lol_text) <= _HEX or int(lol_text, 16) == 0:
                raise KeyBlockFormatError(f"optional block {block_id} extended length invalid")
            lol = int(lol_text, 16)
            ext = block[pos + 6 : pos + 6 + lol]
            if len(ext) != lol or not set(ext) <= _HEX:
                raise KeyBlockFormatError(f"optional block {block_id} extended length invalid")
            length = int(ext, 16)
            data_start = pos + 6 + lol
        if length < data_start - pos or pos + length > len(block):
            raise KeyBlockFormatError(f"optional block {block_id} length {length} out of range")
        data = block[data_start : pos + length]
        if not set(data) <= _PRINTABLE:
            raise KeyBlockFormatError(f"optional block {block_id} data not printable ASCII")
        if block_id != _PAD_BLOCK:
            blocks.append((block_id, data))
        pos += length
    header = Tr31Header(
        version=block[0],
        usage=block[5:7],
        algorithm=block[7],
        mode=block[8],
        version_number=block[9:11],
        exportability=block[11],
        optional_blocks=tuple(blocks),
        reserved=block[14:16],
    )
    return header, pos


# --- key derivation per version ----------------------------------------------------------------


def _xor_const(key: bytes, value: int) -> bytes:
    return bytes(b ^ value for b in key)


def _tdes_kbpk_check(kbpk: bytes, version: str, *, allow_single: bool) -> None:
    allowed = (8, 16, 24) if allow_single else (16, 24)
    if len(kbpk) not in allowed:
        raise KeyLengthError(
            f"version {version} KBPK must be {allowed} bytes, got {len(kbpk)}"
        )


def _derivation_input(counter: int, usage: int, algorithm: int, bits: int) -> bytes:
    return (
        bytes([counter])
        + usage.to_bytes(2, "big")
        + b"\x00"
        + algorithm.to_bytes(2, "big")
        + bits.to_bytes(2, "big")
    )


def _derive_b(kbpk: bytes) -> tuple[bytes, bytes]:
    algorithm, bits = (0x0000, 128) if len(kbpk) == 16 else (0x0001, 192)
    n = len(kbpk) // 8

    def derive(usage: int) -> bytes:
        return b"".join(
            tdes_cmac(kbpk, _derivation_input(i, usage, algorithm, bits)) for i in range(1, n + 1)
        )

    return derive(0x0000), derive(0x0001)


def _derive_d(kbpk: bytes) -> tuple[bytes, bytes]:
    algorithm = {16: 0x0002, 24: 0x0003, 32: 0x0004}[len(kbpk)]
    bits = len(kbpk) * 8
    n = (len(kbpk) + 15) // 16

    def derive(usage: int) -> bytes:
        out = b"".join(aes_cmac(kbpk, _derivation_input(i, usage, algorithm, bits)) for i in range(1, n + 1))
        return out[: len(kbpk)]

    return derive(0x0000), derive(0x0001)


def _payload(key: bytes, block_size: int, masked_length: int) -> bytes:
    clear = (len(key) * 8).to_bytes(2, "big") + key
    pad = max(masked_length - len(key), 0)
    pad += -(len(clear) + pad) % block_size
    return clear + os.urandom(pad)


# --- wrap / unwrap -----------------------------------------------------------------------------


def wrap(kbpk: bytes, key: bytes, header: Tr31Header, *, key_length_masking: int = 0) -> str:
    """Wrap ``key`` under ``kbpk`` into a TR-31 key block string.

    ``key_length_masking`` pads the key data as if the key were that many bytes long, so
    keys of different lengths give blocks of the same length (0: no masking).
    """
    version = header.version
    if version == "D":
        if len(kbpk) not in (16, 24, 32):
            raise KeyLengthError(f"version D KBPK must be AES, got {len(kbpk)} bytes")
        block_size, mac_len = 16, 16
    else:
        _tdes_kbpk_check(kbpk, version, allow_single=version != "B")
        block_size, mac_len = 8, 4 if version in "AC" else 8
    if not key or len(key) > 64:
        raise KeyLengthError(f"key of {len(key)} bytes cannot be wrapped")
    payload = _payload(key, block_size, key_length_masking)
    opt_len = len(_header_text(header, block_size, 0))
    total = opt_len + 2 * len(payload) + 2 * mac_len
    if total > MAX_BLOCK_LENGTH:
        raise KeyBlockFormatError(f"key block length {total} exceeds {MAX_BLOCK_LENGTH}")
    head = _header_text(header, block_size, total).encode("ascii")
    if version in "AC":
        kbek, kbak = _xor_const(kbpk, 0x45), _xor_const(kbpk, 0x4D)
        encrypted = tdes_cbc_encrypt(kbek, payload, iv=head[:8])
        mac = _variant_mac(kbak, head, encrypted)
        body = encrypted
    elif version == "B":
        kbek, kbak = _derive_b(kbpk)
        mac = tdes_cmac(kbak, head + payload)
        body = tdes_cbc_encrypt(kbek, payload, iv=mac)
    else:
        kbek, kbak = _derive_d(kbpk)
        mac = aes_cmac(kbak, head + payload)
        body = aes_cbc_encrypt(kbek, payload, iv=mac)
    return head.decode("ascii") + body.hex().upper() + mac.hex().upper()


def _variant_mac(kbak: bytes, head: bytes, encrypted: bytes) -> bytes:
    return tdes_cbc_encrypt(kbak, head + encrypted)[-8:][:4]


def unwrap(kbpk: bytes, block: str) -> tuple[Tr31Header, bytes]:
    """Check and decrypt a TR-31 key block: 83 on format errors, A4 when the MAC fails."""
    if not block.isascii():
        raise KeyBlockFormatError("key block is not ASCII")
    header, head_len = _parse_header(block)
    length_text = block[1:5]
    if not length_text.isdigit() or int(length_text) != len(block):
        raise KeyBlockFormatError("key block length field does not match the block")
    version = header.version
    if version == "D":
        if len(kbpk) not in (16, 24, 32):
            raise KeyLengthError(f"version D KBPK must be AES, got {len(kbpk)} bytes")
        block_size, mac_len = 16, 16
    else:
        _tdes_kbpk_check(kbpk, version, allow_single=version != "B")
        block_size, mac_len = 8, 4 if version in "AC" else 8
    if head_len % block_size:
        raise KeyBlockFormatError("header length not a multiple of the cipher block")
    body_text = block[head_len : len(block) - 2 * mac_len]
    mac_text = block[len(block) - 2 * mac_len :]
    if len(body_text) < 2 * block_size or len(body_text) % (2 * block_size):
        raise KeyBlockFormatError("encrypted key data length invalid")
    if not set(body_text) <= _HEX or not set(mac_text) <= _HEX:
        raise KeyBlockFormatError("encrypted key data or MAC not hexadecimal")
    head = block[:head_len].encode("ascii")
    encrypted = bytes.fromhex(body_text)
    mac = bytes.fromhex(mac_text)
    if version in "AC":
        kbek, kbak = _xor_const(kbpk, 0x45), _xor_const(kbpk, 0x4D)
        if not hmac.compare_digest(_variant_mac(kbak, head, encrypted), mac):
            raise KeyBlockAuthError("key block MAC verification failed")
        payload = tdes_cbc_decrypt(kbek, encrypted, iv=head[:8])
    elif version == "B":
        kbek, kbak = _derive_b(kbpk)
        payload = tdes_cbc_decrypt(kbek, encrypted, iv=mac)
        if not hmac.compare_digest(tdes_cmac(kbak, head + payload), mac):
            raise KeyBlockAuthError("key block MAC verification failed")
    else:
        kbek, kbak = _derive_d(kbpk)
        payload = aes_cbc_decrypt(kbek, encrypted, iv=mac)
        if not hmac.compare_digest(aes_cmac(kbak, head + payload), mac):
            raise KeyBlockAuthError("key block MAC verification failed")
    bits = int.from_bytes(payload[:2], "big")
    if bits == 0 or bits % 8 or 2 + bits // 8 > len(payload):
        raise KeyBlockFormatError("decrypted key length invalid")
    return header, payload[2 : 2 + bits // 8]
