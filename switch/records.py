"""What the switch keeps about terminals, operators, sessions, audit and journal.

Key and PIN fields only ever hold HSM output: keys encrypted under the LMK, passwords as
LMK-encrypted PINs. Nothing here is ever a clear key or a clear PIN.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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


@dataclass(frozen=True, slots=True)
class TerminalId:
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
    OPERATOR_LOCKED = "operator_locked"
    OPERATOR_UNLOCKED = "operator_unlocked"
    OPERATOR_ADMIN = "operator_admin"


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


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One message in or out, masked: what `switchsim trace` prints."""

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
