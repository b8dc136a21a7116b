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
    INSUFFICIENT_FUNDS = "51"
    EXPIRED_CARD = "54"
    INCORRECT_PIN = "55"
    NOT_PERMITTED_TO_TERMINAL = "58"
    EXCEEDS_AMOUNT_LIMIT = "61"
    PIN_TRIES_EXCEEDED = "75"
    DUPLICATE_TRANSACTION = "94"
    RECONCILIATION_ERROR = "95"
    SYSTEM_MALFUNCTION = "96"
    TERMINAL_NOT_REGISTERED = "97"
    PIN_FORMAT_ERROR = "99"
    MAC_ERROR = "A0"
