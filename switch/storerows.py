"""What the stores share of their tables: the columns of a ledger row, a card, a terminal and an
operator, in the order both read and write them, and the records made of such a row. One
mapping for SQLite (switch/sqlite_store.py) and PostgreSQL (switch/pg_store.py), so that the two
cannot disagree on what a column holds; each converts to its driver's types only what differs
(the journal's warnings, booleans)."""

from __future__ import annotations

from typing import Any, Protocol

from switch.records import (
    Card,
    CardStatus,
    Operator,
    OperatorChange,
    Role,
    Terminal,
    TerminalId,
    Transaction,
    TxnKind,
    TxnStatus,
)


class Row(Protocol):
    """A row as either driver returns it (a tuple from sqlite3, a Record from asyncpg)."""

    def __getitem__(self, index: int, /) -> Any: ...


TXN_COLUMNS = (
    "merchant, terminal, batch, stan, kind, mti, processing_code, amount, pan_ref, pan_masked, "
    "response_code, status, rrn, auth_code, date, time, original_id, remaining"
)
CARD_COLUMNS = (
    "pan_ref, pan_masked, expiry, service_code, pin_lmk, pin_lmk_nopan, balance, card_limit, status, pin_failures, "
    "imk_ac_lmk, psn, atc"
)
TERMINAL_COLUMNS = "merchant, terminal, tmk_lmk, tmk_kcv, enabled, batch, key_generation"
OPERATOR_COLUMNS = "merchant, terminal, operator, role, pin_lmk, enabled, locked, failures"


def txn_args(t: Transaction) -> tuple[object, ...]:
    return (
        t.merchant,
        t.terminal,
        t.batch,
        t.stan,
        t.kind.value,
        t.mti,
        t.processing_code,
        t.amount,
        t.pan_ref,
        t.pan_masked,
        t.response_code,
        t.status.value,
        t.rrn,
        t.auth_code,
        t.date,
        t.time,
        t.original_id,
        t.remaining,
    )


def txn_from_row(r: Row) -> Transaction:
    original = r[17]
    return Transaction(
        merchant=str(r[1]),
        terminal=str(r[2]),
        batch=str(r[3]),
        stan=str(r[4]),
        kind=TxnKind(r[5]),
        mti=str(r[6]),
        processing_code=str(r[7]),
        amount=int(r[8]),
        pan_ref=str(r[9]),
        pan_masked=str(r[10]),
        response_code=str(r[11]),
        status=TxnStatus(r[12]),
        rrn=str(r[13]),
        auth_code=str(r[14]),
        date=str(r[15]),
        time=float(r[16]),
        original_id=None if original is None else int(original),
        remaining=int(r[18]),
        id=int(r[0]),
    )


def card_from_row(r: Row) -> Card:
    return Card(
        pan_ref=str(r[0]),
        pan_masked=str(r[1]),
        expiry=str(r[2]),
        service_code=str(r[3]),
        pin_lmk=str(r[4]),
        pin_lmk_nopan=str(r[5]),
        balance=int(r[6]),
        limit=int(r[7]),
        status=CardStatus(r[8]),
        pin_failures=int(r[9]),
        imk_ac_lmk=str(r[10]),
        psn=str(r[11]),
        atc=int(r[12]),
    )


def terminal_from_row(r: Row) -> Terminal:
    return Terminal(TerminalId(str(r[0]), str(r[1])), str(r[2]), str(r[3]), bool(r[4]), str(r[5]), int(r[6]))


def operator_from_row(r: Row) -> Operator:
    return Operator(
        TerminalId(str(r[0]), str(r[1])), str(r[2]), Role(r[3]), str(r[4]), bool(r[5]), bool(r[6]), int(r[7])
    )


def operator_change_columns(change: OperatorChange) -> list[tuple[str, object]]:
    """(column, value) of each field ``change`` sets, in OPERATOR_COLUMNS' order; both drivers
    take a bool for the flags (sqlite3 stores it as the integer it is)."""
    fields = (("pin_lmk", change.pin_lmk), ("enabled", change.enabled), ("locked", change.locked),
              ("failures", change.failures))
    return [(column, value) for column, value in fields if value is not None]
