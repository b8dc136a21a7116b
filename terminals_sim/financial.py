"""What a virtual terminal needs to sell (docs/financial.md): the card it reads, its habits
for each financial request, its own batch of transactions, and the fields built from them.
What each request is on the wire (MTI, 3, 60) is the message catalogue's (specs/catalogue.py).

The batch (``Ledger``) is the terminal's journal, as on a real POS: from it the terminal picks
the original of a void, refund or completion, builds a reversal when an answer never came,
adds up the settlement totals (field 48) and runs the batch upload. Card numbers, tracks and
PINs stay out of every repr.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

from hsm_sim.ciphers import tdes_ecb_encrypt
from hsm_sim.pinblock import PinBlockFormat, build_pinblock
from hsm_sim.testkeys import DEFAULT_SEED
from specs.testcards import TestCard
from specs.tlv import Tlv
from terminals_sim.chipcard import ChipProfile
from terminals_sim.outcome import Kind

CURRENCY = "156"  # CNY
POS_CONDITION = "00"  # normal presentment
PIN_CAPTURE = "12"  # the longest PIN the pad accepts
MAX_AMOUNT_CENTS = 999_999_999_999  # 12 digits
# A batch holds at most this many settled transactions: field 48 counts them in 3 digits.
MAX_BATCH_COUNT = 999
_TRACK2_DISCRETIONARY = "00000"
# 53: PIN block format 2 = ISO 0 with PAN; algorithm 6 = double-length 3DES, 0 = single DES.
_SECURITY_WITH_PAN = {16: "2600000000000000", 8: "2000000000000000"}
_BALANCE_PREFIX = "1002" + CURRENCY  # 54: account type 10, amount type 02, currency 156


class EntryMode(StrEnum):
    """The first two digits of field 22."""

    MANUAL = "01"  # 2 and 14, no track
    SWIPED = "02"  # 2, 35 and 14


class ReversalReason(StrEnum):
    """Field 39 of a 0400."""

    NO_ANSWER = "98"
    OTHER = "06"


@dataclass(frozen=True, slots=True)
class CardProfile:
    """The card a terminal reads: what it needs for 2, 35, 14 and the PIN block; a chip card's
    chip (docs/chip.md); ``fallback``: its chip cannot be read, so it is swiped with 60.5 = 2."""

    pan: str
    expiry: str  # YYMM
    service_code: str = "101"
    pin: str = field(default="", repr=False)
    entry: EntryMode = EntryMode.SWIPED
    chip: ChipProfile | None = None
    fallback: bool = False

    def __post_init__(self) -> None:
        if not (self.pan.isdigit() and 12 <= len(self.pan) <= 19):
            raise ValueError("card PAN must be 12 to 19 digits")
        if not (self.expiry.isdigit() and len(self.expiry) == 4):
            raise ValueError("card expiry must be YYMM")
        if not (self.service_code.isdigit() and len(self.service_code) == 3):
            raise ValueError("card service code must be 3 digits")
        if self.pin and not (self.pin.isdigit() and 4 <= len(self.pin) <= 12):
            raise ValueError("card PIN must be 4 to 12 digits")

    @classmethod
    def of(cls, card: TestCard, entry: EntryMode = EntryMode.SWIPED, seed: str | None = None) -> CardProfile:
        """The profile of a shared test card; a chip one's key derived from the fleet's seed."""
        chip = ChipProfile.derived(card.pan, card.psn, seed or DEFAULT_SEED) if card.chip else None
        return cls(card.pan, card.expiry, card.service_code, card.pin, entry, chip)

    @property
    def masked_pan(self) -> str:
        return f"{self.pan[:6]}...{self.pan[-4:]}"

    def track2(self, separator: str) -> str:
        """PAN, separator (the dialect's: D in BCD, = in ASCII), YYMM, service code, discretionary."""
        return f"{self.pan}{separator}{self.expiry}{self.service_code}{_TRACK2_DISCRETIONARY}"

    def __repr__(self) -> str:
        chip = ", chip" if self.chip is not None else ""
        return f"CardProfile({self.masked_pan}, entry={self.entry.value}{chip})"


@dataclass(frozen=True, slots=True)
class TxnShape:
    """What the terminal does for one card transaction type beyond its wire form."""

    pin_by_default: bool
    original: Kind | None  # what a void, refund or completion refers to


SHAPES: dict[Kind, TxnShape] = {
    Kind.PURCHASE: TxnShape(True, None),
    Kind.BALANCE: TxnShape(True, None),
    Kind.VOID: TxnShape(False, Kind.PURCHASE),
    Kind.REFUND: TxnShape(False, Kind.PURCHASE),
    Kind.PREAUTH: TxnShape(True, None),
    Kind.COMPLETION: TxnShape(False, Kind.PREAUTH),
    Kind.AUTHORISATION: TxnShape(False, None),  # iso87: no PIN key to put a PIN under
    # chip (docs/chip.md): a void, refund or prerequisite of a chip kind is a chip one too
    Kind.CHIP_PURCHASE: TxnShape(True, None),
    Kind.CONTACTLESS_PURCHASE: TxnShape(False, None),  # qPBOC: no PIN up to the CVM limit
    Kind.CHIP_BALANCE: TxnShape(True, None),
    Kind.CHIP_VOID: TxnShape(False, Kind.CHIP_PURCHASE),
    Kind.CHIP_REFUND: TxnShape(False, Kind.CHIP_PURCHASE),
    Kind.CHIP_PREAUTH: TxnShape(True, None),
}
TRANSACTION_KINDS = frozenset(SHAPES)
# What each kind is as money: a chip purchase is a purchase (its void finds it, settlement
# counts it), read from the chip.
FAMILY: Mapping[Kind, Kind] = MappingProxyType(
    {
        **{kind: kind for kind in SHAPES},
        Kind.CHIP_PURCHASE: Kind.PURCHASE,
        Kind.CONTACTLESS_PURCHASE: Kind.PURCHASE,
        Kind.CHIP_BALANCE: Kind.BALANCE,
        Kind.CHIP_VOID: Kind.VOID,
        Kind.CHIP_REFUND: Kind.REFUND,
        Kind.CHIP_PREAUTH: Kind.PREAUTH,
    }
)
CHIP_KINDS = frozenset(k for k in SHAPES if FAMILY[k] is not k)
# Reversals, batch uploads and script advices: what the terminal sends on its own.
REVERSAL_KINDS = frozenset({Kind.REVERSAL, Kind.CHIP_REVERSAL})
UPLOAD_KINDS = frozenset({Kind.BATCH_UPLOAD, Kind.IC_UPLOAD, Kind.IC_UPLOAD_END})
# Everything the contract calls a financial request: a due reversal goes before any of them.
FINANCIAL_KINDS = TRANSACTION_KINDS | REVERSAL_KINDS | UPLOAD_KINDS | {Kind.SETTLEMENT, Kind.SCRIPT_ADVICE}
# A balance inquiry or an iso87 authorisation moves no money: when its answer is lost there is
# nothing to reverse, and the batch does not keep it.
MOVES_NO_MONEY = frozenset({Kind.BALANCE, Kind.CHIP_BALANCE, Kind.AUTHORISATION})
REVERSIBLE_KINDS = TRANSACTION_KINDS - MOVES_NO_MONEY
_DEBITS = frozenset({Kind.PURCHASE, Kind.COMPLETION})
_CREDITS = frozenset({Kind.REFUND})


@dataclass(frozen=True, slots=True, repr=False)
class ChipRecord:
    """What a chip transaction's later messages repeat: its field 55 objects as sent, and
    after the host's answer the card's second cryptogram, script results and verdict."""

    objects: Mapping[str, Tlv]  # by tag, as the request's 55 carried them
    subfields: Mapping[str, str]  # 60.4 and 60.5 of the request
    entry_mode: str  # field 22 of the request
    final: Mapping[str, Tlv] = field(default_factory=dict)  # 9F26 / 9F27 of the second AC
    scripts: bytes = b""  # DF31: the results of the issuer scripts the answer carried
    arpc_error: bool = False  # the host approved but the ARPC failed: the card declined

    def data(self, tag: str) -> Tlv | None:
        """A data object as the latest message must carry it: the second AC's, the scripts'
        results, else the request's."""
        if tag == "DF31":
            return Tlv("DF31", self.scripts) if self.scripts else None
        return self.final.get(tag) or self.objects.get(tag)

    def __repr__(self) -> str:
        return f"ChipRecord(arpc_error={self.arpc_error}, scripts={len(self.scripts) // 5})"


class TxnStatus(StrEnum):
    SENT = "sent"  # the request is out, no answer yet
    APPROVED = "approved"
    DECLINED = "declined"
    UNKNOWN = "unknown"  # no trustworthy answer: a reversal is due
    VOIDED = "voided"  # an approved purchase a later void cancelled
    REVERSED = "reversed"


@dataclass(frozen=True, slots=True)
class OriginalRef:
    """What a void, refund or completion says about its original (37, 38, 61, 4).

    ``seq`` links to the original's record in the terminal's batch, when it has one there.
    """

    batch: str
    stan: str
    amount_cents: int
    rrn: str = ""
    auth_code: str = ""
    date: str = ""  # MMDD
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Transaction:
    """One request the terminal made, as its batch remembers it."""

    seq: int
    kind: Kind
    stan: str
    batch: str
    amount_cents: int  # 0 for a balance inquiry
    card: CardProfile
    with_pin: bool
    original: OriginalRef | None = None
    status: TxnStatus = TxnStatus.SENT
    response_code: str | None = None
    rrn: str = ""
    auth_code: str = ""
    date: str = ""  # 13 of the answer, MMDD
    used_cents: int = 0  # refunded (a purchase) or completed (a pre-authorisation)
    chip: ChipRecord | None = None

    @property
    def shape(self) -> TxnShape:
        return SHAPES[self.kind]

    @property
    def left_cents(self) -> int:
        return self.amount_cents - self.used_cents

    def as_original(self) -> OriginalRef:
        return OriginalRef(self.batch, self.stan, self.amount_cents, self.rrn, self.auth_code,
                           self.date, self.seq)


@dataclass(frozen=True, slots=True)
class Totals:
    """Settlement totals: what field 48 of a 0500 carries."""

    debit_cents: int = 0
    debit_count: int = 0
    credit_cents: int = 0
    credit_count: int = 0

    def field48(self, flag: str = "0") -> str:
        if self.debit_count > MAX_BATCH_COUNT or self.credit_count > MAX_BATCH_COUNT:
            raise ValueError(f"a batch holds at most {MAX_BATCH_COUNT} debits and credits")
        if max(self.debit_cents, self.credit_cents) > MAX_AMOUNT_CENTS:
            raise ValueError("settlement totals above 12 digits")
        return (f"{self.debit_cents:012d}{self.debit_count:03d}"
                f"{self.credit_cents:012d}{self.credit_count:03d}{flag}")


def parse_field48(value: str) -> tuple[Totals, str]:
    """Totals and the settlement flag from a 31-digit field 48."""
    if len(value) != 31 or not value.isdigit():
        raise ValueError(f"settlement field 48 must be 31 digits, got {len(value)} characters")
    totals = Totals(int(value[0:12]), int(value[12:15]), int(value[15:27]), int(value[27:30]))
    return totals, value[30]


def parse_balance(value: str) -> int:
    """Field 54 of a balance inquiry answer ("1002156C" + 12 digits) in cents; D is negative."""
    if len(value) != 20 or not value.startswith(_BALANCE_PREFIX) or value[7] not in "CD":
        raise ValueError("field 54 is not 1002156 + C/D + 12 digits")
    digits = value[8:]
    if not digits.isdigit():
        raise ValueError("field 54 amount is not 12 digits")
    cents = int(digits)
    return -cents if value[7] == "D" else cents


def parse_amount(text: str) -> int:
    """Cents from a decimal yuan amount: "12.34", "12.3", "12"."""
    whole, dot, frac = text.strip().partition(".")
    if not whole.isdigit() or (dot and not (frac.isdigit() and len(frac) <= 2)):
        raise ValueError(f"not an amount with at most two decimals: {text!r}")
    cents = int(whole) * 100 + (int(frac.ljust(2, "0")) if dot else 0)
    if cents > MAX_AMOUNT_CENTS:
        raise ValueError(f"amount above 12 digits: {text!r}")
    return cents


def security_control(pik: bytes) -> str:
    """53 for a format-0-with-PAN PIN block under this PIK."""
    return _SECURITY_WITH_PAN[8 if len(pik) == 8 else 16]


def encrypted_pin_block(pik: bytes, pin: str, pan: str) -> str:
    """52: the ISO 9564 format 0 block of ``pin`` with ``pan``, encrypted under the PIK."""
    return tdes_ecb_encrypt(pik, build_pinblock(PinBlockFormat.ISO0, pin, pan)).hex().upper()


def card_fields(card: CardProfile, with_pin: bool, separator: str) -> dict[int, str]:
    """2, 35 (with the dialect's track separator) and 14 as the card's entry mode gives them,
    and 22."""
    fields = {2: card.pan, 14: card.expiry, 22: f"{card.entry.value}{1 if with_pin else 2}"}
    if card.entry is EntryMode.SWIPED:
        fields[35] = card.track2(separator)
    return fields


def original_fields(kind: Kind, ref: OriginalRef) -> dict[int, str]:
    """37, 38 and 61 of a void, refund or completion: what identifies the original."""
    fields = {61: ref.batch + ref.stan + (ref.date if kind is not Kind.VOID else "")}
    if kind is Kind.COMPLETION:
        if ref.auth_code:
            fields[38] = ref.auth_code
    elif ref.rrn:
        fields[37] = ref.rrn
    return fields


def next_batch(batch: str) -> str:
    number = int(batch) + 1
    return f"{1 if number > 999_999 else number:06d}"


class Ledger:
    """The terminal's batch: every financial request it made since the last settlement,
    the reversals it owes, and the batch upload under way. Mutable; one owner."""

    __slots__ = ("_advices", "_due", "_next_seq", "_records", "_uploads")

    def __init__(self) -> None:
        self._records: dict[int, Transaction] = {}
        self._next_seq = 1
        self._due: list[tuple[int, ReversalReason]] = []  # oldest first
        # Batch upload items: (the record, or None for the end of the upload; 60.3).
        self._uploads: list[tuple[int | None, str]] = []
        self._advices: list[int] = []  # script result advices owed, oldest first

    def __iter__(self) -> Iterator[Transaction]:
        return iter(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    def get(self, seq: int) -> Transaction:
        return self._records[seq]

    def add(self, **values: object) -> Transaction:
        txn = Transaction(seq=self._next_seq, **values)  # type: ignore[arg-type]
        self._records[txn.seq] = txn
        self._next_seq += 1
        return txn

    def forget(self, seq: int) -> None:
        self._records.pop(seq, None)

    def update(self, seq: int, **changes: object) -> Transaction:
        txn = replace(self._records[seq], **changes)  # type: ignore[arg-type]
        self._records[seq] = txn
        return txn

    # -- originals ------------------------------------------------------------------------

    def latest_original(self, kind: Kind) -> Transaction | None:
        """The most recent record a new ``kind`` (void, refund, completion) can refer to."""
        want = SHAPES[kind].original
        assert want is not None
        family = FAMILY[kind]
        chip = kind in CHIP_KINDS  # a chip void or refund reads the chip card of a chip original
        for txn in reversed(self._records.values()):
            if FAMILY[txn.kind] is not FAMILY[want] or txn.status is not TxnStatus.APPROVED:
                continue
            if (txn.chip is not None) != chip:
                continue
            if family is Kind.REFUND and txn.left_cents > 0:
                return txn
            if family in (Kind.VOID, Kind.COMPLETION) and txn.used_cents == 0:
                return txn
        return None

    # -- answers --------------------------------------------------------------------------

    def approve(self, seq: int, *, code: str, rrn: str, auth_code: str, date: str) -> Transaction:
        txn = self.update(seq, status=TxnStatus.APPROVED, response_code=code, rrn=rrn,
                          auth_code=auth_code, date=date)
        self._apply(txn, +1)
        return txn

    def decline(self, seq: int, code: str) -> Transaction:
        return self.update(seq, status=TxnStatus.DECLINED, response_code=code)

    def lose(self, seq: int, reason: ReversalReason) -> Transaction:
        """No trustworthy answer: the record is in doubt and a reversal is owed for it."""
        txn = self.update(seq, status=TxnStatus.UNKNOWN)
        self.owe_reversal(seq, reason)
        return txn

    def _apply(self, txn: Transaction, sign: int) -> None:
        """Apply (+1) or undo (-1) what an approved void, refund or completion did to its
        original in this batch."""
        ref = txn.original
        if ref is None or ref.seq is None or ref.seq not in self._records:
            return
        original = self._records[ref.seq]
        family = FAMILY[txn.kind]
        if family is Kind.VOID:
            status = TxnStatus.VOIDED if sign > 0 else TxnStatus.APPROVED
            if original.status in (TxnStatus.APPROVED, TxnStatus.VOIDED):
                self.update(original.seq, status=status)
        elif family in (Kind.REFUND, Kind.COMPLETION):
            used = max(0, original.used_cents + sign * txn.amount_cents)
            self.update(original.seq, used_cents=used)

    # -- reversals ------------------------------------------------------------------------

    @property
    def reversal_due(self) -> tuple[Transaction, ReversalReason] | None:
        if not self._due:
            return None
        seq, reason = self._due[0]
        return self._records[seq], reason

    def owe_reversal(self, seq: int, reason: ReversalReason) -> None:
        if seq in self._records and all(s != seq for s, _ in self._due):
            self._due.append((seq, reason))

    def reversed(self, seq: int) -> Transaction | None:
        """The host answered the reversal of ``seq`` (00, or 25: it holds nothing to undo)."""
        self._due = [(s, r) for s, r in self._due if s != seq]
        txn = self._records.get(seq)
        if txn is None:
            return None
        if txn.status is TxnStatus.APPROVED:
            self._apply(txn, -1)
        if txn.status is TxnStatus.DECLINED:
            return txn
        return self.update(seq, status=TxnStatus.REVERSED)

    # -- settlement -----------------------------------------------------------------------

    def settled(self, batch: str) -> list[Transaction]:
        """What settlement counts in ``batch``: approved purchases and completions (not voided
        or reversed) and approved refunds (not reversed), in the order they were made."""
        return [t for t in self._records.values() if t.batch == batch
                and t.status is TxnStatus.APPROVED and FAMILY[t.kind] in _DEBITS | _CREDITS]

    def totals(self, batch: str) -> Totals:
        debits = [t.amount_cents for t in self.settled(batch) if FAMILY[t.kind] in _DEBITS]
        credits = [t.amount_cents for t in self.settled(batch) if FAMILY[t.kind] in _CREDITS]
        return Totals(sum(debits), len(debits), sum(credits), len(credits))

    @property
    def next_upload(self) -> Transaction | None:
        """The record of the next batch upload item (None for the end item, or none left)."""
        item = self.next_upload_item
        return item[0] if item is not None else None

    @property
    def next_upload_item(self) -> tuple[Transaction | None, str] | None:
        """The next batch upload item: its record (None: the end of the upload) and its 60.3."""
        if not self._uploads:
            return None
        seq, code = self._uploads[0]
        return (self._records[seq] if seq is not None else None), code

    def start_uploads(self, batch: str, *, balanced: bool = False) -> None:
        """What the batch upload sends. After a settlement answered 95 (not balanced): every
        settled transaction (201; a chip one's TC record 205), the chip transactions whose
        ARPC failed (206), and when there were chip records the end (207). After 00
        (balanced): only the chip records, 203 and 204, then 202 (docs/chip.md)."""
        settled = self.settled(batch)
        failed = [t.seq for t in self._records.values()
                  if t.batch == batch and t.chip is not None and t.chip.arpc_error]
        items: list[tuple[int | None, str]] = []
        for txn in settled:
            if txn.chip is not None:
                items.append((txn.seq, "203" if balanced else "205"))
            elif not balanced:
                items.append((txn.seq, "201"))
        items += [(seq, "204" if balanced else "206") for seq in failed]
        if any(code != "201" for _, code in items):
            items.append((None, "202" if balanced else "207"))
        self._uploads = items

    def uploaded(self) -> None:
        if self._uploads:
            self._uploads.pop(0)

    # -- script result advices ------------------------------------------------------------

    @property
    def advice_due(self) -> Transaction | None:
        return self._records[self._advices[0]] if self._advices else None

    def owe_advice(self, seq: int) -> None:
        if seq in self._records and seq not in self._advices:
            self._advices.append(seq)

    def advised(self, seq: int) -> None:
        self._advices = [s for s in self._advices if s != seq]

    def close(self, batch: str) -> None:
        """The batch is settled: forget its records (a reversal or advice owed stays, with its record)."""
        owed = {s for s, _ in self._due} | set(self._advices)
        self._records = {s: t for s, t in self._records.items() if t.batch != batch or s in owed}
        self._uploads = []
