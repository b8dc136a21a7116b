"""What the switch keeps about terminals, operators, sessions, audit and journal.

Key and PIN fields only ever hold HSM output: keys encrypted under the LMK, passwords as
LMK-encrypted PINs. Nothing here is ever a clear key or a clear PIN.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class Role(StrEnum):
    SUPERVISOR = "supervisor"
    ADMINISTRATOR = "administrator"
    CASHIER = "cashier"

    @classmethod
    def for_operator(cls, operator_id: str) -> Role:
        """UnionPay convention: 00 supervisor, 99 administrator, the rest cashiers."""
        if operator_id == "00":
            return cls.SUPERVISOR
        if operator_id == "99":
            return cls.ADMINISTRATOR
        return cls.CASHIER


#: Operators every registered terminal gets, as real UnionPay terminals ship.
DEFAULT_OPERATORS: tuple[tuple[str, str], ...] = (("00", "123456"), ("99", "12345678"), ("01", "0000"))


class TerminalId(NamedTuple):
    """A terminal's key: a named tuple, not a frozen dataclass, because every exchange hashes
    and compares one (the session cache, the store), and a tuple does both in C."""

    merchant: str  # field 42, 15 characters
    terminal: str  # field 41, 8 characters

    def __str__(self) -> str:
        return f"{self.merchant}/{self.terminal}"


@dataclass(frozen=True, slots=True)
class Terminal:
    id: TerminalId
    tmk_lmk: str  # TMK under the LMK (host-command key notation)
    tmk_kcv: str  # 6 hex characters
    enabled: bool = True
    batch: str = "000001"
    key_generation: int = 0  # bumped on every re-registration: ends any session


@dataclass(frozen=True, slots=True)
class Operator:
    terminal: TerminalId
    operator_id: str  # two digits
    role: Role
    pin_lmk: str  # password as an LMK-encrypted PIN
    enabled: bool = True
    locked: bool = False
    failures: int = 0


@dataclass(frozen=True, slots=True)
class OperatorChange:
    """The fields of an operator record one action sets, and only those (None: left as the store
    holds it). Writing a whole record read earlier would undo what another worker, or the
    administrator, wrote in between: a lock counted during a sign-in's HSM call, a disable
    during a password change."""

    pin_lmk: str | None = None
    enabled: bool | None = None
    locked: bool | None = None
    failures: int | None = None


@dataclass(frozen=True, slots=True)
class OperatorFailures:
    """Refused sign-ins of an operator id the terminal does not have, counted and locked as a
    real operator's are, so that the answers (55, 55, 75, 75, ...) never tell which ids exist."""

    terminal: TerminalId
    operator_id: str
    failures: int = 0
    locked: bool = False


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """A terminal's signed-in session: working keys under the LMK, never in clear."""

    terminal: TerminalId
    mode: str  # 60.3 of the sign-in: 001, 003 or 004
    pik_lmk: str
    mak_lmk: str
    tdk_lmk: str | None
    signed_in_at: float
    expires_at: float
    key_generation: int
    operator_id: str | None = None

    def __repr__(self) -> str:
        # Keys under the LMK are not secret in the strict sense, but keep reprs short and bland.
        return f"SessionKeys({self.terminal}, mode={self.mode}, operator={self.operator_id})"


class AuditEvent(StrEnum):
    TERMINAL_REGISTERED = "terminal_registered"
    TERMINAL_SIGNIN = "terminal_signin"
    TERMINAL_SIGNOFF = "terminal_signoff"
    OPERATOR_SIGNIN = "operator_signin"
    OPERATOR_SIGNOUT = "operator_signout"
    OPERATOR_PASSWORD_CHANGE = "operator_password_change"
    # Every request kind has its event (switch.session.AUDIT_EVENTS), so a refusal of any of
    # them (a bad MAC on a purchase) is audited as what it was.
    ECHO = "echo"
    PARAMETER_DOWNLOAD = "parameter_download"
    STATUS_UPLOAD = "status_upload"
    FINANCIAL = "financial"
    NETWORK_MANAGEMENT = "network_management"  # iso87 0800 (70)
    OPERATOR_LOCKED = "operator_locked"
    OPERATOR_UNLOCKED = "operator_unlocked"
    OPERATOR_ADMIN = "operator_admin"
    CARD_UNLOCKED = "card_unlocked"
    SCRIPT_RESULT = "script_result"  # a 0620 advice: the issuer scripts' results, with the original
    IC_UPLOAD = "ic_upload"  # a chip record of the batch upload (TC, or a failed / ARPC-error one)
    IC_DOWNLOAD = "ic_download"  # a terminal finished a CA key, IC parameter or blacklist download


@dataclass(frozen=True, slots=True)
class AuditRecord:
    time: float
    event: AuditEvent
    merchant: str
    terminal: str
    operator: str
    remote: str
    result: str  # response code given, or "ok"
    reason: str


class JournalEntry(NamedTuple):
    """One message in or out, masked: what `switchsim trace` prints. A named tuple, not a frozen
    dataclass like the other records: the switch builds two for every exchange, and a frozen
    dataclass of this many fields costs about four times as much to build (bench/journalwire.py
    times the entries of an exchange). It is as immutable; `_replace` makes a changed copy."""

    time: float
    direction: str  # "in" or "out"
    merchant: str
    terminal: str
    remote: str
    mti: str
    stan: str
    response_code: str
    masked_json: str  # the masked decode (specs.dump.to_json), or the raw length for garbage
    error: str  # the typed error of a malformed frame, else ""
    # Why an answer is not 00, in words (switch/macdiag.py, pindiag.py, fieldchecks.py ...);
    # "" for an approval and for requests.
    reason: str = ""
    warnings: tuple[str, ...] = ()  # field checks that failed without refusing (docs/diagnostics.md)
    wire: str = ""  # the frame as on the wire, hex, sensitive nibbles as '*' (specs/wiremask.py)
    raw: str = ""  # the frame unmasked, hex: only with `serve --keep-raw`, else ""
    id: int | None = None  # the store's row id (what `trace --follow` reads on from)


@dataclass(frozen=True, slots=True)
class IssuedKeys:
    """One set of working keys a sign-in gave a terminal, under the LMK, numbered from 1 per
    terminal (its key generation). The store keeps the current set and the one before, so a
    MAC or PIN block made under the previous set can be recognised (switch/macdiag.py)."""

    terminal: TerminalId
    generation: int
    mode: str
    pik_lmk: str
    mak_lmk: str
    tdk_lmk: str | None
    issued_at: float

    def __repr__(self) -> str:
        return f"IssuedKeys({self.terminal}, generation={self.generation}, mode={self.mode})"


class CardStatus(StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class Card:
    """A test card. The PAN itself is never stored: ``pan_ref`` is its fingerprint and
    ``pan_masked`` its 6+4 view; the PIN exists only as HSM output (LMK-encrypted)."""

    pan_ref: str
    pan_masked: str
    expiry: str  # YYMM
    service_code: str
    pin_lmk: str  # PIN under the LMK, account = the PAN's 12 digits (blocks with PAN)
    pin_lmk_nopan: str  # PIN under the LMK, account = zeros (blocks without PAN, 53.1 = 1)
    balance: int  # minor units (fen)
    limit: int  # per-transaction limit, minor units; 0 = none
    status: CardStatus = CardStatus.ACTIVE
    pin_failures: int = 0
    # A chip card: its issuer key for cryptograms (IMK-AC, key type 109) under the LMK, its PAN
    # sequence number, and the highest ATC the switch has accepted (-1 before the first).
    imk_ac_lmk: str = ""
    psn: str = ""
    atc: int = -1

    @property
    def chip(self) -> bool:
        return bool(self.imk_ac_lmk)


class TxnKind(StrEnum):
    PURCHASE = "purchase"
    BALANCE = "balance"
    VOID = "void"
    REFUND = "refund"
    PREAUTH = "preauth"
    COMPLETION = "completion"


class TxnStatus(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    VOIDED = "voided"  # a purchase undone by a void
    REVERSED = "reversed"
    COMPLETED = "completed"  # a pre-authorisation consumed by its completion


@dataclass(frozen=True, slots=True)
class Transaction:
    """One financial request and what became of it: the ledger the journal reconciles."""

    merchant: str
    terminal: str
    batch: str
    stan: str
    kind: TxnKind
    mti: str
    processing_code: str
    amount: int
    pan_ref: str
    pan_masked: str
    response_code: str
    status: TxnStatus
    rrn: str
    auth_code: str
    date: str  # MMDD
    time: float
    original_id: int | None = None  # the purchase of a void/refund, the pre-auth of a completion
    remaining: int = 0  # what can still be refunded (purchases) or completed (pre-auths)
    id: int | None = None
