"""The terminal session state machine: every transition of the switch side in one table.

A session belongs to the terminal (merchant 42 + terminal 41), not to a TCP connection:
UnionPay terminals often open a new connection per exchange. The state is derived from the
stored `SessionKeys` (none, no operator, an operator), so it survives reconnects and restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from specs.response import ResponseCode
from switch.records import AuditEvent, SessionKeys


class State(StrEnum):
    SIGNED_OFF = "signed_off"
    SIGNED_IN = "signed_in"
    OPERATOR_SIGNED_IN = "operator_signed_in"


class Request(StrEnum):
    """The session rule a request follows; switch/routes.py names it for each catalogue kind."""

    TERMINAL_SIGNIN = "terminal_signin"
    TERMINAL_SIGNOFF = "terminal_signoff"
    OPERATOR_SIGNIN = "operator_signin"
    OPERATOR_SIGNOUT = "operator_signout"
    PASSWORD_CHANGE = "password_change"
    ECHO = "echo"  # any state, and leaves it: the echo test, and the iso87 kinds (no session)
    PARAMETER_DOWNLOAD = "parameter_download"
    STATUS_UPLOAD = "status_upload"
    FINANCIAL = "financial"  # the POS day: 0100/0200/0220/0320/0400/0500 (see switch.financial)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the state does not allow: the code to answer and why (for log and audit)."""

    code: ResponseCode
    reason: str
    sign_in_again: bool = False


_NEEDS_SIGNIN = Refusal(ResponseCode.NOT_PERMITTED_TO_TERMINAL, "terminal not signed in", sign_in_again=True)
_NEEDS_OPERATOR = Refusal(ResponseCode.NOT_PERMITTED_TO_TERMINAL, "no operator signed in")

# The table: (state, request) -> state after success, or a Refusal. A missing pair is a bug in
# this table, never a silent drop (see `transition`).
_S, _R = State, Request
TABLE: Mapping[tuple[State, Request], State | Refusal] = MappingProxyType(
    {
        (_S.SIGNED_OFF, _R.TERMINAL_SIGNIN): _S.SIGNED_IN,
        (_S.SIGNED_OFF, _R.TERMINAL_SIGNOFF): _S.SIGNED_OFF,
        (_S.SIGNED_OFF, _R.OPERATOR_SIGNIN): _NEEDS_SIGNIN,
        (_S.SIGNED_OFF, _R.OPERATOR_SIGNOUT): _NEEDS_SIGNIN,
        (_S.SIGNED_OFF, _R.PASSWORD_CHANGE): _NEEDS_SIGNIN,
        (_S.SIGNED_OFF, _R.ECHO): _S.SIGNED_OFF,
        (_S.SIGNED_OFF, _R.PARAMETER_DOWNLOAD): _NEEDS_SIGNIN,
        (_S.SIGNED_OFF, _R.STATUS_UPLOAD): _NEEDS_SIGNIN,
        (_S.SIGNED_OFF, _R.FINANCIAL): _NEEDS_SIGNIN,
        (_S.SIGNED_IN, _R.TERMINAL_SIGNIN): _S.SIGNED_IN,
        (_S.SIGNED_IN, _R.TERMINAL_SIGNOFF): _S.SIGNED_OFF,
        (_S.SIGNED_IN, _R.OPERATOR_SIGNIN): _S.OPERATOR_SIGNED_IN,
        (_S.SIGNED_IN, _R.OPERATOR_SIGNOUT): _NEEDS_OPERATOR,
        (_S.SIGNED_IN, _R.PASSWORD_CHANGE): _S.SIGNED_IN,
        (_S.SIGNED_IN, _R.ECHO): _S.SIGNED_IN,
        (_S.SIGNED_IN, _R.PARAMETER_DOWNLOAD): _S.SIGNED_IN,
        (_S.SIGNED_IN, _R.STATUS_UPLOAD): _S.SIGNED_IN,
        (_S.SIGNED_IN, _R.FINANCIAL): _S.SIGNED_IN,
        (_S.OPERATOR_SIGNED_IN, _R.TERMINAL_SIGNIN): _S.SIGNED_IN,
        (_S.OPERATOR_SIGNED_IN, _R.TERMINAL_SIGNOFF): _S.SIGNED_OFF,
        (_S.OPERATOR_SIGNED_IN, _R.OPERATOR_SIGNIN): _S.OPERATOR_SIGNED_IN,
        (_S.OPERATOR_SIGNED_IN, _R.OPERATOR_SIGNOUT): _S.SIGNED_IN,
        (_S.OPERATOR_SIGNED_IN, _R.PASSWORD_CHANGE): _S.OPERATOR_SIGNED_IN,
        (_S.OPERATOR_SIGNED_IN, _R.ECHO): _S.OPERATOR_SIGNED_IN,
        (_S.OPERATOR_SIGNED_IN, _R.PARAMETER_DOWNLOAD): _S.OPERATOR_SIGNED_IN,
        (_S.OPERATOR_SIGNED_IN, _R.STATUS_UPLOAD): _S.OPERATOR_SIGNED_IN,
        (_S.OPERATOR_SIGNED_IN, _R.FINANCIAL): _S.OPERATOR_SIGNED_IN,
    }
)


#: The audit event of each request kind, for the refusals the engine audits (a bad MAC). Total
#: over `Request`, as the table is over its pairs: a missing kind is a bug (see `audit_event`).
AUDIT_EVENTS: Mapping[Request, AuditEvent] = MappingProxyType(
    {
        _R.TERMINAL_SIGNIN: AuditEvent.TERMINAL_SIGNIN,
        _R.TERMINAL_SIGNOFF: AuditEvent.TERMINAL_SIGNOFF,
        _R.OPERATOR_SIGNIN: AuditEvent.OPERATOR_SIGNIN,
        _R.OPERATOR_SIGNOUT: AuditEvent.OPERATOR_SIGNOUT,
        _R.PASSWORD_CHANGE: AuditEvent.OPERATOR_PASSWORD_CHANGE,
        _R.ECHO: AuditEvent.ECHO,
        _R.PARAMETER_DOWNLOAD: AuditEvent.PARAMETER_DOWNLOAD,
        _R.STATUS_UPLOAD: AuditEvent.STATUS_UPLOAD,
        _R.FINANCIAL: AuditEvent.FINANCIAL,
    }
)


class SessionTableError(Exception):
    """The transition table has no entry for a pair: a programming error, not a peer's."""


def state_of(session: SessionKeys | None, now: float) -> State:
    """Expired keys are no keys: the terminal must sign in again."""
    if session is None or session.expires_at <= now:
        return State.SIGNED_OFF
    return State.SIGNED_IN if session.operator_id is None else State.OPERATOR_SIGNED_IN


def audit_event(request: Request) -> AuditEvent:
    try:
        return AUDIT_EVENTS[request]
    except KeyError:
        raise SessionTableError(f"no audit event for {request.value}") from None


def transition(state: State, request: Request) -> State | Refusal:
    try:
        return TABLE[(state, request)]
    except KeyError:
        raise SessionTableError(f"no transition for {request.value} in {state.value}") from None
