"""Operator sign-in (60.3 = 011), sign-out (012) and password change (013).

The password arrives as an ISO 9564 format 0 PIN block with a zero PAN field, under the
session PIK; only the HSM compares it (BC) with the stored LMK-encrypted password. Unknown
operator and wrong password answer the same 55, after the same HSM round trip, so that
operator ids cannot be guessed from the code or the latency; an unknown id keeps a failure
count in the store as a real operator does, and locks (75) at the same count.

Who is signed in is the session table's (switch/session.py): an approved sign-in names the
operator in ``Result.operator``, and the table signs them in or out.
"""

from __future__ import annotations

from hsm_sim.client import HsmAnswerError
from specs.response import ResponseCode
from switch.context import Exchange, Result, Services, operator_id_from_63
from switch.records import AuditEvent, Operator, OperatorChange, OperatorFailures, SessionKeys

# A well-formed LMK-encrypted PIN that matches no real password: compared against when the
# operator is unknown, so that the answer takes as long as a real check.
_DECOY_PIN_LMK = "0" * 16


def _locked(event: AuditEvent, operator_id: str) -> Result:
    return Result(ResponseCode.PIN_TRIES_EXCEEDED, audit=event, reason="operator locked", operator=operator_id)


async def _check_password(
    services: Services, ex: Exchange, session: SessionKeys, block_field: int, event: AuditEvent
) -> tuple[Operator | None, Result | None]:
    """(operator, None) when the password in ``block_field`` is right, else (None, the answer)."""
    operator_id = operator_id_from_63(ex.message.get(63))
    block_hex = ex.message.get(block_field)
    if operator_id is None or block_hex is None or len(block_hex) != 16:
        return None, Result(
            ResponseCode.FORMAT_ERROR,
            audit=event,
            reason=f"field 63 (operator) and field {block_field} (8-byte PIN block) are required",
        )
    operator = await services.store.get_operator(ex.tid, operator_id)
    # Read for every id, known or not, so that both take the same store round trips.
    stranger = await services.store.get_operator_failures(ex.tid, operator_id)
    if operator is not None:
        failures, locked = operator.failures, operator.locked
    else:
        failures, locked = (stranger.failures, stranger.locked) if stranger is not None else (0, False)
    if locked:
        return None, _locked(event, operator_id)
    usable = operator is not None and operator.enabled
    stored = operator.pin_lmk if operator is not None and usable else _DECOY_PIN_LMK
    try:
        good = await services.keys.verify_password(session.pik_lmk, bytes.fromhex(block_hex), stored)
    except HsmAnswerError:  # a malformed block is the terminal's fault: same answer as a wrong one
        good = False
    if good and operator is not None and usable:
        # Reset only the count, and only while unlocked: a lock another worker counted during
        # the HSM call stands, and this sign-in is refused with it.
        if operator.failures and not await services.store.update_operator(
            ex.tid, operator_id, OperatorChange(failures=0), unless_locked=True
        ):
            return None, _locked(event, operator_id)
        return operator, None
    # Every refusal counts, whatever its reason, and locks at the same count: an unknown or a
    # disabled id answers 55, 55, 75, 75, ... exactly as a real operator with a wrong password.
    # The count moves in the store, so that workers sharing it count one operator together.
    lock_at = services.config.max_operator_failures
    counted: Operator | OperatorFailures | None = None
    if operator is not None:
        counted = await services.store.add_operator_failure(ex.tid, operator_id, lock_at)
        why = "wrong password" if operator.enabled else "disabled operator"
    if counted is None:  # an unknown id (or one removed since it was read)
        counted = await services.store.add_stranger_failure(ex.tid, operator_id, lock_at)
        why = "unknown operator"
    failures, locked = counted.failures, counted.locked
    if locked:
        return None, Result(
            ResponseCode.PIN_TRIES_EXCEEDED,
            audit=AuditEvent.OPERATOR_LOCKED,
            reason=f"{failures} consecutive refused sign-ins ({why})",
            operator=operator_id,
        )
    return None, Result(ResponseCode.INCORRECT_PIN, audit=event, reason=why, operator=operator_id)


async def operator_signin(services: Services, ex: Exchange, session: SessionKeys) -> Result:
    operator, refusal = await _check_password(services, ex, session, 52, AuditEvent.OPERATOR_SIGNIN)
    if refusal is not None or operator is None:
        return refusal or Result(ResponseCode.SYSTEM_MALFUNCTION)
    return Result(
        ResponseCode.APPROVED,
        audit=AuditEvent.OPERATOR_SIGNIN,
        reason=operator.role.value,
        operator=operator.operator_id,
    )


async def operator_signout(services: Services, ex: Exchange, session: SessionKeys) -> Result:
    previous = session.operator_id or ""
    return Result(ResponseCode.APPROVED, audit=AuditEvent.OPERATOR_SIGNOUT, operator=previous)


async def password_change(services: Services, ex: Exchange, session: SessionKeys) -> Result:
    event = AuditEvent.OPERATOR_PASSWORD_CHANGE
    operator, refusal = await _check_password(services, ex, session, 52, event)
    if refusal is not None or operator is None:
        return refusal or Result(ResponseCode.SYSTEM_MALFUNCTION)
    new_block = ex.message.get(62)
    if new_block is None or len(new_block) != 16:
        return Result(ResponseCode.FORMAT_ERROR, audit=event, reason="field 62 must hold the new 8-byte PIN block")
    try:
        pin_lmk = await services.keys.translate_password(session.pik_lmk, bytes.fromhex(new_block))
    except HsmAnswerError:  # the HSM refused the new block (bad format or PIN length)
        return Result(ResponseCode.PIN_FORMAT_ERROR, audit=event, reason="new password block refused by the HSM")
    # The new password and the count only: an administrator's disable during the HSM calls stays,
    # and a lock counted meanwhile refuses the change.
    change = OperatorChange(pin_lmk=pin_lmk, failures=0)
    if not await services.store.update_operator(ex.tid, operator.operator_id, change, unless_locked=True):
        return _locked(event, operator.operator_id)
    return Result(ResponseCode.APPROVED, audit=event, operator=operator.operator_id)
