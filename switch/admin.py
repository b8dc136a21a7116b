"""Administrator actions on operators, shared by the CLI and the tests."""

from __future__ import annotations

import time

from switch.context import Services
from switch.records import AuditEvent, AuditRecord, OperatorChange, TerminalId
from switch.store import StoreError


async def _change(services: Services, tid: TerminalId, operator_id: str, change: OperatorChange) -> None:
    # Only the fields the action sets: a count or a password another worker wrote stays.
    if await services.store.update_operator(tid, operator_id, change) is None:
        raise StoreError(f"no operator {operator_id} on terminal {tid}")


async def _audit(services: Services, tid: TerminalId, operator_id: str, event: AuditEvent, reason: str) -> None:
    await services.store.add_audit(
        AuditRecord(time.time(), event, tid.merchant, tid.terminal, operator_id, "cli", "ok", reason)
    )


async def unlock_operator(services: Services, tid: TerminalId, operator_id: str) -> None:
    """Clear the failures and the lock of an operator, or of an id the terminal does not have
    (whose failures are counted too, see OperatorFailures)."""
    operator = await services.store.update_operator(tid, operator_id, OperatorChange(locked=False, failures=0))
    cleared = await services.store.delete_operator_failures(tid, operator_id)
    if operator is None and not cleared:
        raise StoreError(f"no operator {operator_id} on terminal {tid}, and no failures counted for that id")
    reason = "unlocked by administrator" if operator is not None else "failures of an unknown id cleared"
    await _audit(services, tid, operator_id, AuditEvent.OPERATOR_UNLOCKED, reason)


async def set_operator_enabled(services: Services, tid: TerminalId, operator_id: str, enabled: bool) -> None:
    await _change(services, tid, operator_id, OperatorChange(enabled=enabled))
    await _audit(services, tid, operator_id, AuditEvent.OPERATOR_ADMIN, "enabled" if enabled else "disabled")


async def set_password(services: Services, tid: TerminalId, operator_id: str, password: str) -> None:
    if await services.store.get_operator(tid, operator_id) is None:  # refused before the HSM is asked
        raise StoreError(f"no operator {operator_id} on terminal {tid}")
    pin_lmk = await services.keys.encrypt_password(password)
    await _change(services, tid, operator_id, OperatorChange(pin_lmk=pin_lmk, failures=0, locked=False))
    await _audit(services, tid, operator_id, AuditEvent.OPERATOR_ADMIN, "password set by administrator")
