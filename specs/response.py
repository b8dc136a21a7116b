"""ISO 8583 field 39 response codes as UnionPay POS hosts use them (docs/cup-pos.md)."""

from __future__ import annotations

from enum import StrEnum


class ResponseCode(StrEnum):
    APPROVED = "00"
    INVALID_MERCHANT = "03"
    INVALID_TRANSACTION = "12"
    INVALID_AMOUNT = "13"
    INVALID_CARD = "14"
    ORIGINAL_NOT_FOUND = "25"
    FORMAT_ERROR = "30"
    FUNCTION_NOT_SUPPORTED = "40"
    USE_CHIP = "45"  # a chip card was swiped without the fallback indicator
    INSUFFICIENT_FUNDS = "51"
    EXPIRED_CARD = "54"
    INCORRECT_PIN = "55"
    NOT_PERMITTED_TO_TERMINAL = "58"
    CARD_VERIFICATION_ERROR = "59"  # the chip's ARQC did not verify (docs/chip.md)
    EXCEEDS_AMOUNT_LIMIT = "61"
    PIN_TRIES_EXCEEDED = "75"
    DUPLICATE_TRANSACTION = "94"
    RECONCILIATION_ERROR = "95"
    SYSTEM_MALFUNCTION = "96"
    TERMINAL_NOT_REGISTERED = "97"
    PIN_FORMAT_ERROR = "99"
    MAC_ERROR = "A0"
    SECURITY_PROCESSING_FAILURE = "A7"  # the HSM could not process a cryptogram


#: What each code means and, for a refusal, what to look at: the one table of meanings. The fleet's
#: and conformance's failure summaries print it (`describe`), `switchsim specs show` and
#: docs/diagnostics.md print it whole (`render_meanings`).
MEANINGS: dict[str, str] = {
    ResponseCode.APPROVED: "approved",
    ResponseCode.INVALID_MERCHANT: "unknown merchant: is the terminal provisioned?",
    ResponseCode.INVALID_TRANSACTION: "invalid transaction: no kind serves this MTI with this 3 and 60.1",
    ResponseCode.INVALID_AMOUNT: "invalid amount: zero, or not what the original allows",
    ResponseCode.INVALID_CARD: "invalid card: unknown to the host, blocked, or 2/35/14 disagree",
    ResponseCode.ORIGINAL_NOT_FOUND: "original not found: 61 (or 38) names no approved transaction",
    ResponseCode.FORMAT_ERROR: "format error: a field the dialect refuses, or a strict field check (see the reason)",
    ResponseCode.FUNCTION_NOT_SUPPORTED: "function not supported: no kind of the catalogue serves this request",
    ResponseCode.USE_CHIP: "use the chip: a chip card was swiped without the fallback indicator (60.5 = 2)",
    ResponseCode.INSUFFICIENT_FUNDS: "insufficient funds",
    ResponseCode.EXPIRED_CARD: "expired card",
    ResponseCode.INCORRECT_PIN: "incorrect PIN (also: unknown operator or wrong password)",
    ResponseCode.NOT_PERMITTED_TO_TERMINAL: "not permitted: sign in first, or the supervisor must be signed in",
    ResponseCode.CARD_VERIFICATION_ERROR: "card verification error: the chip's ARQC did not verify (see the reason)",
    ResponseCode.EXCEEDS_AMOUNT_LIMIT: "over the card's amount limit",
    ResponseCode.PIN_TRIES_EXCEEDED: "PIN tries exceeded: card or operator locked until unlocked",
    ResponseCode.DUPLICATE_TRANSACTION: "duplicate transaction: the STAN is already used in the batch",
    ResponseCode.RECONCILIATION_ERROR: "settlement totals differ: upload the batch",
    ResponseCode.SYSTEM_MALFUNCTION: "system malfunction: the host's HSM or store failed",
    ResponseCode.TERMINAL_NOT_REGISTERED: "terminal not registered or disabled: is it provisioned?",
    ResponseCode.PIN_FORMAT_ERROR: "PIN format error: 52 is not what 53 announces under the PIK; sign in again",
    ResponseCode.MAC_ERROR: "MAC error: field 64 wrong or missing; sign in again",
    ResponseCode.SECURITY_PROCESSING_FAILURE: "security processing failure: the HSM could not process the cryptogram",
}


def meaning(code: str) -> str | None:
    """The meaning of a 39, or None for a code this table does not hold."""
    return MEANINGS.get(code)


def describe(code: str | None) -> str:
    """`03 (unknown merchant: is the terminal provisioned?)`: a 39 for a failure summary."""
    if code is None:
        return "none"
    text = MEANINGS.get(code)
    return f"{code} ({text})" if text else f"{code} (a code switchsim does not define)"


def render_meanings() -> str:
    """The table of codes and meanings, as `switchsim specs show` and docs/diagnostics.md print it."""
    return "\n".join(f"{code:>5}  {text}" for code, text in MEANINGS.items()) + "\n"
