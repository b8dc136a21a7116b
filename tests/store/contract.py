"""What the contract tests build their stores from: one `Opener` per store kind, and records
written out by hand (the expected values of the tests are worked from these, not computed by
the store under test)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import pytest

from switch.pg_store import PgStore
from switch.records import (
    AuditEvent,
    AuditRecord,
    Card,
    JournalEntry,
    Operator,
    Role,
    SessionKeys,
    Terminal,
    TerminalId,
    Transaction,
    TxnKind,
    TxnStatus,
)
from switch.sqlite_store import SqliteStore
from switch.store import Store

# The SQLite store runs the same suite once it is async (its constructor and URL come from
# switch/storeurl.py then); until then the param is skipped, not dropped.
KINDS = [
    "postgresql",
    pytest.param(
        "sqlite",
        marks=pytest.mark.skipif(
            not inspect.iscoroutinefunction(SqliteStore.get_terminal), reason="SQLite store not async yet"
        ),
    ),
]


@dataclass(frozen=True)
class Opener:
    """Opens a store of one kind at one place, as often as a test needs: a second instance
    reads what the first wrote the way another process would."""

    kind: str
    where: str  # a postgresql:// URL or a SQLite file path
    _open: Callable[[str], Awaitable[Store]]

    async def open(self) -> Store:
        return await self._open(self.where)


async def open_postgresql(url: str) -> Store:
    return await PgStore.open(url)


async def open_sqlite(path: str) -> Store:
    try:
        storeurl = importlib.import_module("switch.storeurl")
    except ModuleNotFoundError:
        pytest.skip("switch/storeurl.py (the store chosen by URL) is not on this branch yet")
    return cast(Store, await storeurl.open_store(path))


T1 = TerminalId("898310048990001", "00000764")
T2 = TerminalId("898310048990001", "00000765")
T3 = TerminalId("898310048990002", "00000001")

# A float that binary floating point cannot hold exactly: it must come back bit for bit.
NOW = 1764633600.123456

TERMINAL = Terminal(T1, "U" + "0123456789ABCDEF" * 2, "4C2B1A", enabled=True, batch="000001", key_generation=3)

CARD = Card(
    pan_ref="f" * 64,
    pan_masked="622202******0001",
    expiry="2812",
    service_code="201",
    pin_lmk="1234567890ABCDEF",
    pin_lmk_nopan="FEDCBA0987654321",
    balance=10_000,
    limit=500_000,
    pin_failures=0,
)
CHIP_CARD = Card(
    pan_ref="e" * 64,
    pan_masked="621234******9999",
    expiry="2901",
    service_code="220",
    pin_lmk="AAAAAAAAAAAAAAAA",
    pin_lmk_nopan="BBBBBBBBBBBBBBBB",
    balance=0,
    limit=0,
    imk_ac_lmk="U" + "00112233445566778899AABBCCDDEEFF",
    psn="01",
    atc=41,
)


def txn(
    stan: str,
    *,
    kind: TxnKind = TxnKind.PURCHASE,
    amount: int = 2500,
    batch: str = "000001",
    tid: TerminalId = T1,
    status: TxnStatus = TxnStatus.APPROVED,
    auth_code: str = "",
    original_id: int | None = None,
    remaining: int | None = None,
    when: float = NOW,
) -> Transaction:
    approved = status is TxnStatus.APPROVED
    return Transaction(
        merchant=tid.merchant,
        terminal=tid.terminal,
        batch=batch,
        stan=stan,
        kind=kind,
        mti="0200",
        processing_code="000000",
        amount=amount,
        pan_ref=CARD.pan_ref,
        pan_masked=CARD.pan_masked,
        response_code="00" if approved else "51",
        status=status,
        rrn=f"0000{stan}01",
        auth_code=auth_code or ("654321" if approved else ""),
        date="1202",
        time=when,
        original_id=original_id,
        remaining=(amount if approved else 0) if remaining is None else remaining,
    )


def operator(operator_id: str, tid: TerminalId = T1, failures: int = 0) -> Operator:
    return Operator(tid, operator_id, Role.for_operator(operator_id), f"PIN{operator_id}LMK", failures=failures)


def session(keys: str, *, tid: TerminalId = T1, at: float = NOW, operator_id: str | None = None) -> SessionKeys:
    return SessionKeys(
        terminal=tid,
        mode="003",
        pik_lmk=f"PIK-{keys}",
        mak_lmk=f"MAK-{keys}",
        tdk_lmk=None,
        signed_in_at=at,
        expires_at=at + 86_400.5,
        key_generation=3,
        operator_id=operator_id,
    )


def audit(when: float, tid: TerminalId, result: str = "ok") -> AuditRecord:
    return AuditRecord(when, AuditEvent.TERMINAL_SIGNIN, tid.merchant, tid.terminal, "", "127.0.0.1:4000", result, "")


def entry(stan: str, *, tid: TerminalId = T1, direction: str = "in", warnings: tuple[str, ...] = ()) -> JournalEntry:
    return JournalEntry(
        time=NOW,
        direction=direction,
        merchant=tid.merchant,
        terminal=tid.terminal,
        remote="127.0.0.1:4000",
        mti="0200",
        stan=stan,
        response_code="" if direction == "in" else "00",
        masked_json='{"2": "622202******0001"}',
        error="",
        reason="",
        warnings=warnings,
        wire="0200" + "*" * 8,
    )
