"""Administrator actions on operators, shared by the CLI and the tests."""

from __future__ import annotations

import time
from dataclasses import replace

from switch.context import Services
from switch.records import AuditEvent, AuditRecord, Operator, TerminalId
from switch.store import StoreError


async def _operator(services: Services, tid: TerminalId, operator_id: str) -> Operator:
    operator = await services.store.get_operator(tid, operator_id)
    if operator is None:
        raise StoreError(f"no operator {operator_id} on terminal {tid}")
    return operator


async def _audit(services: Services, tid: TerminalId, operator_id: str, event: AuditEvent, reason: str) -> None:
    await services.store.add_audit(
        AuditRecord(time.time(), event, tid.merchant, tid.terminal, operator_id, "cli", "ok", reason)
    )


async def unlock_operator(services: Services, tid: TerminalId, operator_id: str) -> None:
    """Clear the failures and the lock of an operator, or of an id the terminal does not have
    (whose failures are counted too, see OperatorFailures)."""
    operator = await services.store.get_operator(tid, operator_id)
    cleared = await services.store.delete_operator_failures(tid, operator_id)
    if operator is None and not cleared:
        raise StoreError(f"no operator {operator_id} on terminal {tid}, and no failures counted for that id")
    if operator is not None:
        await services.store.put_operator(replace(operator, locked=False, failures=0))
    reason = "unlocked by administrator" if operator is not None else "failures of an unknown id cleared"
    await _audit(services, tid, operator_id, AuditEvent.OPERATOR_UNLOCKED, reason)


async def set_operator_enabled(services: Services, tid: TerminalId, operator_id: str, enabled: bool) -> None:
    await services.store.put_operator(replace(await _operator(services, tid, operator_id), enabled=enabled))
    await _audit(services, tid, operator_id, AuditEvent.OPERATOR_ADMIN, "enabled" if enabled else "disabled")


async def set_password(services: Services, tid: TerminalId, operator_id: str, password: str) -> None:
    operator = await _operator(services, tid, operator_id)
    pin_lmk = await services.keys.encrypt_password(password)
    await services.store.put_operator(replace(operator, pin_lmk=pin_lmk, failures=0, locked=False))
    await _audit(services, tid, operator_id, AuditEvent.OPERATOR_ADMIN, "password set by administrator")
