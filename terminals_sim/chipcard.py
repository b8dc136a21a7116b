"""The chip card a virtual terminal plays (docs/chip.md): a PBOC CVN 01 card by default, or an
EMV CVN 18-style card (the EMV common session key), chosen by the IAD it writes.

The card holds its card key (from the IMK-AC by EMV option A, or given) and an ATC that goes
up with every cryptogram, shared by every terminal of the process that reads the same card,
as one physical card passed along the counter. ``first_ac`` makes the ARQC over the data the
terminal gives it (``hsm_sim.emv.arqc_data`` names the bytes: one implementation of the fact);
``second_ac`` checks the issuer's ARPC (tag 91) the way the card does and answers TC when it
verifies and the host approved, AAC otherwise; ``run_scripts`` executes issuer scripts (71/72)
and reports their results as EMV's 9F5B does (DF31 in UnionPay messages). No key appears in
a repr.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from hsm_sim.emv import Cryptograms, Scheme, arqc_data, icc_master_key, pan_psn_block
from hsm_sim.testkeys import DEFAULT_SEED, derive_imk_ac
from specs.tlv import Tlv

PBOC_AID = bytes.fromhex("A000000333010101")  # UnionPay debit
_AIP = bytes.fromhex("7C00")  # SDA, DDA, cardholder verification, terminal risk management
_CVR_ARQC = bytes.fromhex("03A00000")  # length 03; first GENERATE AC returned an ARQC
_CID_ARQC, _CID_TC, _CID_AAC = 0x80, 0x40, 0x00
_SCRIPT_OK = 0x20  # 9F5B: result 2 (successful) in the high nibble


class CardType(StrEnum):
    """The cryptogram version the card's IAD names (hsm_sim.emv.scheme_for_iad reads it)."""

    PBOC = "pboc"  # UnionPay PBOC / UICS, IAD 07 xx 01: PBOC session key, ARPC under it
    EMV = "emv"  # CVN 18-style: IAD 06 xx 12, EMV common session key, ARPC under the card key

    @property
    def scheme(self) -> Scheme:
        return Scheme.PBOC if self is CardType.PBOC else Scheme.EMV_COMMON


class AtcCounter:
    """The card's application transaction counter (9F36): one a cryptogram, 0001 first."""

    __slots__ = ("_last", "_lock")

    def __init__(self, last: int = 0) -> None:
        self._last = last
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = self._last % 0xFFFF + 1
            return self._last

    @property
    def last(self) -> int:
        return self._last


@dataclass(frozen=True, slots=True)
class ChipProfile:
    """What the chip holds: its card key (never shown), PAN sequence number, AID, AIP, type."""

    card_key: bytes = field(repr=False)
    psn: str = "01"
    card_type: CardType = CardType.PBOC
    aid: bytes = PBOC_AID
    aip: bytes = _AIP
    atc: AtcCounter = field(default_factory=AtcCounter, compare=False, repr=False)
    seeded: bool = field(default=False, compare=False)  # its key comes from the fleet's seed
    issuer_data: bytes | None = None  # 9F10 as personalised; None: the card type's own format

    def __post_init__(self) -> None:
        if len(self.card_key) != 16:
            raise ValueError("a chip card key is 16 bytes")
        if not (len(self.psn) == 2 and self.psn.isdigit()):
            raise ValueError("PAN sequence number must be 2 digits")

    @classmethod
    def of_imk(cls, imk_ac: bytes, pan: str, psn: str = "01", card_type: CardType = CardType.PBOC) -> ChipProfile:
        """The card an issuer personalised from its IMK-AC (EMV option A)."""
        return cls(icc_master_key(imk_ac, pan_psn_block(pan, psn)), psn, card_type)

    @classmethod
    def derived(cls, pan: str, psn: str = "01", seed: str = DEFAULT_SEED) -> ChipProfile:
        """A shared test card: its IMK-AC derived from the fleet's seed, as the switch derives it."""
        card = cls.of_imk(derive_imk_ac(seed, pan), pan, psn)
        return cls(card.card_key, psn, seeded=True)

    def iad(self) -> bytes:
        """9F10: UnionPay format (07, DKI 01, CVN 01, CVR, algorithm 01 3DES, 0A + 10 bytes of
        issuer discretionary data), or the Visa-style format with CVN 18 for an EMV card."""
        if self.issuer_data is not None:
            return self.issuer_data
        if self.card_type is CardType.PBOC:
            return b"\x07\x01\x01" + _CVR_ARQC + b"\x01" + b"\x0a\x01" + bytes(9)
        return b"\x06\x01\x12" + _CVR_ARQC

    @property
    def pan_sequence(self) -> str:
        """Field 23: the PSN as three digits."""
        return "0" + self.psn


@dataclass(frozen=True, slots=True, repr=False)
class FirstAc:
    """The card's answer to the first GENERATE AC: the data objects it adds to field 55."""

    objects: Mapping[str, Tlv]  # 9F26 ARQC, 9F27, 9F10, 9F36, 82
    data: bytes  # what the ARQC covers
    atc: bytes
    un: bytes

    @property
    def arqc(self) -> bytes:
        return self.objects["9F26"].value

    def __repr__(self) -> str:
        return f"FirstAc(atc={self.atc.hex().upper()})"


def first_ac(chip: ChipProfile, terminal_data: Mapping[str, bytes]) -> FirstAc:
    """ARQC over the terminal's data (9F02 9F03 9F1A 95 5F2A 9A 9C 9F37) and the card's own
    (82 AIP, 9F36 ATC, the IAD's CVR), with a fresh ATC."""
    atc = chip.atc.next().to_bytes(2, "big")
    objects = {tag: Tlv(tag, value) for tag, value in terminal_data.items()}
    objects |= {"82": Tlv("82", chip.aip), "9F36": Tlv("9F36", atc), "9F10": Tlv("9F10", chip.iad())}
    un = terminal_data["9F37"]
    data = arqc_data(chip.card_type.scheme, objects)
    arqc = Cryptograms.of(chip.card_type.scheme, chip.card_key, atc, un).arqc(data)
    card = {
        "9F26": Tlv("9F26", arqc),
        "9F27": Tlv("9F27", bytes([_CID_ARQC])),
        "9F10": objects["9F10"],
        "9F36": objects["9F36"],
        "82": objects["82"],
    }
    return FirstAc(card, data, atc, un)


@dataclass(frozen=True, slots=True, repr=False)
class SecondAc:
    """The card's decision after the host's answer."""

    approved: bool  # TC: the ARPC verified and the host approved
    arpc_ok: bool  # the issuer authenticated (91 verified for its ARC)
    cryptogram: Tlv  # 9F26: the TC or the AAC
    cid: Tlv  # 9F27: 40 TC or 00 AAC
    problem: str  # why the card declined an approval ("" otherwise)

    def __repr__(self) -> str:
        return f"SecondAc(approved={self.approved}, arpc_ok={self.arpc_ok})"


def second_ac(chip: ChipProfile, first: FirstAc, tag91: bytes | None, response_code: str) -> SecondAc:
    """Issuer authentication and the second GENERATE AC: the ARPC in 91 must be the one for
    the ARC it carries, that ARC must be the answer's 39, and only then does an approval
    become a TC."""
    card = Cryptograms.of(chip.card_type.scheme, chip.card_key, first.atc, first.un)
    problem = ""
    arpc_ok = False
    if tag91 is None:
        problem = "no 91 (ARPC) in the answer's 55"
    elif len(tag91) != 10:
        problem = f"91 is {len(tag91)} bytes, ARPC method 1 gives 10 (ARPC || ARC)"
    else:
        arpc, arc = tag91[:8], tag91[8:]
        if arc != response_code.encode("ascii", "replace"):
            problem = f"the ARC in 91 ({arc.decode('ascii', 'replace')}) is not 39 ({response_code})"
        elif not hmac.compare_digest(card.arpc(first.arqc, arc), arpc):
            problem = "the ARPC in 91 does not verify for the card's ARQC"
        else:
            arpc_ok = True
    approved = arpc_ok and response_code == "00"
    arc_bytes = response_code.encode("ascii", "replace")[:2].ljust(2, b"0")
    # The second cryptogram covers the first's data and the ARC the terminal took from 39.
    cryptogram = card.arqc(first.data + arc_bytes)
    return SecondAc(
        approved,
        arpc_ok,
        Tlv("9F26", cryptogram),
        Tlv("9F27", bytes([_CID_TC if approved else _CID_AAC])),
        problem if response_code == "00" else "",
    )


def run_scripts(templates: Sequence[Tlv]) -> bytes:
    """Execute issuer scripts (71/72) and give their results: 5 bytes a script, result 2
    "successful" (the low nibble names a failed command, so 0), then the script identifier
    (9F18, or zeros)."""
    out = b""
    for template in templates:
        ident = next((c.value for c in template.children if c.tag == "9F18"), bytes(4))
        out += bytes([_SCRIPT_OK]) + ident[:4].ljust(4, b"\x00")
    return out
