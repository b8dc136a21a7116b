"""Every key and PIN operation the switch needs, in its own words, over the one HSM client.

The switch never sees a clear key or PIN: it sends LMK-encrypted keys and encrypted PIN
blocks, and receives LMK-encrypted results. Requests, answers and their checks are
`hsm_sim.client.HsmClient`'s; this adapter only adds the switch's vocabulary: working-key
kinds and their key types, a key as field 62 carries it (ciphertext under the TMK and a
4-byte check value), operator passwords as PINs with an all-zero account, ISO format 0
blocks, the UnionPay POS MAC.

Errors are the client's. `HsmAnswerError`: the HSM answered an error code; a handler that
asked for a decision (BC: does this PIN verify? JC: is this new password block usable?) turns
it into its answer, anywhere else the engine answers 96. `HsmTransportError`: the HSM could
not be asked; the engine answers 96.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hsm_sim.client import HsmClient, MacAlgorithm

_ACCOUNT_NONE = "000000000000"  # operator passwords: PIN blocks with the PAN field all zeros
_PIN_FORMAT_ISO0 = "01"
_TMK_KEY_TYPE = "002"  # a terminal's TMK is held under the LMK as a TPK
_HEX_ASCII = frozenset(b"0123456789ABCDEF")


class KeyKind(StrEnum):
    """Working-key types and their Thales key-type codes."""

    PIK = "002"  # TPK, LMK 14-15
    MAK = "003"  # TAK, LMK 16-17
    TDK = "00B"  # DEK/TEK, LMK 32-33


@dataclass(frozen=True, slots=True)
class WorkingKey:
    kind: KeyKind
    under_lmk: str  # host-command key notation, for the session
    under_tmk: bytes  # ciphertext for field 62
    check_value: bytes  # first 4 bytes of E(key, zeros), for field 62

    def __repr__(self) -> str:
        return f"WorkingKey({self.kind.name}, {len(self.under_tmk)} bytes)"


class KeyService:
    __slots__ = ("hsm",)

    def __init__(self, hsm: HsmClient) -> None:
        self.hsm = hsm

    async def import_clear_key(self, key_type: str, clear: bytes) -> tuple[str, str]:
        """A test key given in clear (terminal registration): returns (under LMK, 6-hex KCV)."""
        key = await self.hsm.import_clear_key(key_type, clear)
        return key.under_lmk, key.kcv

    async def generate_working_key(self, kind: KeyKind, length: int, tmk_lmk: str) -> WorkingKey:
        """A fresh key under the LMK and under the terminal's TMK, with its 4-byte check value
        (A0 answers only 3 bytes of it, BU all 8)."""
        key = await self.hsm.generate_key(kind.value, length, (_TMK_KEY_TYPE, tmk_lmk))
        under_tmk = key.export_ciphertext
        assert under_tmk is not None  # A0 was asked to export, and its answer parsed
        check = await self.hsm.check_value(kind.value, key.under_lmk)
        return WorkingKey(kind, key.under_lmk, under_tmk, bytes.fromhex(check[:8]))

    async def encrypt_password(self, password: str) -> str:
        """An operator password as an LMK-encrypted PIN (BA)."""
        return await self.encrypt_pin(password, _ACCOUNT_NONE)

    async def encrypt_pin(self, pin: str, account: str) -> str:
        """BA: a clear PIN (test-card set-up) to its LMK-encrypted form for ``account``."""
        return await self.hsm.encrypt_clear_pin(pin, account)

    async def verify_password(self, pik_lmk: str, pin_block: bytes, pin_lmk: str) -> bool:
        """BC: the PIK-encrypted block against the stored LMK-encrypted password."""
        return await self.verify_pin(pik_lmk, pin_block, _ACCOUNT_NONE, pin_lmk)

    async def verify_pin(self, pik_lmk: str, pin_block: bytes, account: str, pin_lmk: str) -> bool:
        """BC: an ISO format 0 block under the PIK against an LMK-encrypted PIN, for ``account``."""
        return await self.hsm.verify_terminal_pin_comparison(
            pik_lmk, pin_block.hex().upper(), _PIN_FORMAT_ISO0, account, pin_lmk
        )

    async def translate_password(self, pik_lmk: str, pin_block: bytes) -> str:
        """JC: a new password block under the PIK to its LMK-encrypted form."""
        block = pin_block.hex().upper()
        return await self.hsm.translate_pin_tpk_to_lmk(pik_lmk, block, _PIN_FORMAT_ISO0, _ACCOUNT_NONE)

    async def generate_mac(self, mak_lmk: str, data: bytes) -> bytes:
        """The UnionPay POS MAC (8 ASCII characters) of ``data`` under the session MAK."""
        mac = await self.hsm.generate_mac(KeyKind.MAK.value, mak_lmk, data, MacAlgorithm.CUP_POS)
        return mac.encode("ascii")

    async def verify_mac(self, mak_lmk: str, data: bytes, mac: bytes) -> bool:
        if len(mac) != 8 or not set(mac) <= _HEX_ASCII:
            return False  # a UnionPay POS MAC is 8 uppercase hex characters: anything else is wrong
        return await self.hsm.verify_mac(KeyKind.MAK.value, mak_lmk, data, mac.decode("ascii"), MacAlgorithm.CUP_POS)
