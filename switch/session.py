"""The terminal session state machine: every transition of the switch side in one place.

A session belongs to the terminal (merchant 42 + terminal 41), not to a TCP connection:
UnionPay terminals often open a new connection per exchange. The state is derived from the
stored `SessionKeys` (none, no operator, an operator), so it survives reconnects and restarts.

Sans-I/O, in two steps around the handler. `decide` takes what the store holds (the terminal,
its session) and the time, and says whether the request is served, in which state, with which
session, and where an approval leads: the rules of registration, re-registration (a session of
an earlier key generation is void), expiry and the iso87 network management kinds (answered
without a terminal) are all here. `settle` takes the decision and what the handler produced
(approved or not, the new working keys, the operator) and returns the session to keep, checking
that it is in the state the table names; the engine stores it. No handler writes a session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from specs.response import ResponseCode
from switch.records import AuditEvent, SessionKeys, Terminal


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
    ECHO = "echo"  # any state, and leaves it: the echo test, and the iso87 authorisation
    NETWORK_MANAGEMENT = "network_management"  # iso87 0800 (70): no terminal, no session
    PARAMETER_DOWNLOAD = "parameter_download"
    STATUS_UPLOAD = "status_upload"
    FINANCIAL = "financial"  # the POS day: 0100/0200/0220/0320/0400/0500 (see switch.financial)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the state does not allow: the code to answer and why (for log and audit)."""

    code: ResponseCode
    reason: str
    sign_in_again: bool = False
    audited: bool = False  # the engine writes an audit record of it


@dataclass(frozen=True, slots=True)
class NoSession:
    """Answered as it is, in any state, without a terminal or a session: the ISO 8583:1987
    network management kinds (the iso87 dialects exchange no working keys)."""

    code: ResponseCode
    reason: str


_NEEDS_SIGNIN = Refusal(ResponseCode.NOT_PERMITTED_TO_TERMINAL, "terminal not signed in", sign_in_again=True)
_NEEDS_OPERATOR = Refusal(ResponseCode.NOT_PERMITTED_TO_TERMINAL, "no operator signed in")
_ISO87 = NoSession(ResponseCode.APPROVED, "iso87 network management")

# The table: (state, request) -> state after success, a Refusal, or NoSession. A missing pair is
# a bug in this table, never a silent drop (see `transition`).
_S, _R = State, Request
TABLE: Mapping[tuple[State, Request], State | Refusal | NoSession] = MappingProxyType(
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
        (_S.SIGNED_OFF, _R.NETWORK_MANAGEMENT): _ISO87,
        (_S.SIGNED_IN, _R.TERMINAL_SIGNIN): _S.SIGNED_IN,
        (_S.SIGNED_IN, _R.TERMINAL_SIGNOFF): _S.SIGNED_OFF,
        (_S.SIGNED_IN, _R.OPERATOR_SIGNIN): _S.OPERATOR_SIGNED_IN,
        (_S.SIGNED_IN, _R.OPERATOR_SIGNOUT): _NEEDS_OPERATOR,
        (_S.SIGNED_IN, _R.PASSWORD_CHANGE): _S.SIGNED_IN,
        (_S.SIGNED_IN, _R.ECHO): _S.SIGNED_IN,
        (_S.SIGNED_IN, _R.PARAMETER_DOWNLOAD): _S.SIGNED_IN,
        (_S.SIGNED_IN, _R.STATUS_UPLOAD): _S.SIGNED_IN,
        (_S.SIGNED_IN, _R.FINANCIAL): _S.SIGNED_IN,
        (_S.SIGNED_IN, _R.NETWORK_MANAGEMENT): _ISO87,
        (_S.OPERATOR_SIGNED_IN, _R.TERMINAL_SIGNIN): _S.SIGNED_IN,
        (_S.OPERATOR_SIGNED_IN, _R.TERMINAL_SIGNOFF): _S.SIGNED_OFF,
        (_S.OPERATOR_SIGNED_IN, _R.OPERATOR_SIGNIN): _S.OPERATOR_SIGNED_IN,
        (_S.OPERATOR_SIGNED_IN, _R.OPERATOR_SIGNOUT): _S.SIGNED_IN,
        (_S.OPERATOR_SIGNED_IN, _R.PASSWORD_CHANGE): _S.OPERATOR_SIGNED_IN,
        (_S.OPERATOR_SIGNED_IN, _R.ECHO): _S.OPERATOR_SIGNED_IN,
        (_S.OPERATOR_SIGNED_IN, _R.PARAMETER_DOWNLOAD): _S.OPERATOR_SIGNED_IN,
        (_S.OPERATOR_SIGNED_IN, _R.STATUS_UPLOAD): _S.OPERATOR_SIGNED_IN,
        (_S.OPERATOR_SIGNED_IN, _R.FINANCIAL): _S.OPERATOR_SIGNED_IN,
        (_S.OPERATOR_SIGNED_IN, _R.NETWORK_MANAGEMENT): _ISO87,
    }
)


class Effect(StrEnum):
    """What an approved request does to the stored session (the table says where it leads)."""

    KEEP = "keep"  # the session stays as it is
    INSTALL_KEYS = "install_keys"  # a new session: the sign-in's working keys, no operator
    END = "end"  # no session any more
    OPERATOR_IN = "operator_in"  # the same keys, the operator the handler names
    OPERATOR_OUT = "operator_out"  # the same keys, no operator


#: The effect of each request kind's approval; total over `Request`, as the table is.
EFFECTS: Mapping[Request, Effect] = MappingProxyType(
    {
        _R.TERMINAL_SIGNIN: Effect.INSTALL_KEYS,
        _R.TERMINAL_SIGNOFF: Effect.END,
        _R.OPERATOR_SIGNIN: Effect.OPERATOR_IN,
        _R.OPERATOR_SIGNOUT: Effect.OPERATOR_OUT,
        _R.PASSWORD_CHANGE: Effect.KEEP,
        _R.ECHO: Effect.KEEP,
        _R.PARAMETER_DOWNLOAD: Effect.KEEP,
        _R.STATUS_UPLOAD: Effect.KEEP,
        _R.FINANCIAL: Effect.KEEP,
        _R.NETWORK_MANAGEMENT: Effect.KEEP,
    }
)

#: Requests the table answers in every state without a session: there is nothing to look up.
SESSIONLESS: frozenset[Request] = frozenset(
    r for r in Request if all(isinstance(TABLE.get((s, r)), NoSession) for s in State)
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
        _R.NETWORK_MANAGEMENT: AuditEvent.NETWORK_MANAGEMENT,
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


def transition(state: State, request: Request) -> State | Refusal | NoSession:
    try:
        return TABLE[(state, request)]
    except KeyError:
        raise SessionTableError(f"no transition for {request.value} in {state.value}") from None


def effect_of(request: Request) -> Effect:
    try:
        return EFFECTS[request]
    except KeyError:
        raise SessionTableError(f"no effect for {request.value}") from None


@dataclass(frozen=True, slots=True)
class NewKeys:
    """Working keys a sign-in obtained from the HSM, under the LMK: what `settle` installs."""

    mode: str  # 60.3 of the sign-in: 001, 003 or 004
    pik_lmk: str
    mak_lmk: str
    tdk_lmk: str | None

    def __repr__(self) -> str:
        return f"NewKeys(mode={self.mode})"


class Decision(NamedTuple):
    """What the session rules make of one request before any handler runs (a named tuple: one
    is made per exchange, see switch/context.py's Result).

    ``step`` is the table's entry: the state an approval leads to, a refusal to answer (no
    handler runs), or NoSession (answered as it is). ``session`` is what the store should hold
    for the terminal now: the stored session, or None when it belongs to an earlier key
    generation (the terminal was re-registered); it may have expired. ``live`` is the session
    the request may use (its MAK and PIK): None when the terminal is signed off.
    """

    request: Request
    state: State
    step: State | Refusal | NoSession
    session: SessionKeys | None
    live: SessionKeys | None
    terminal: Terminal | None
    now: float
    sign_in_again: bool = False  # the answer asks for a new sign-in (the keys expired)


def current(stored: SessionKeys | None, terminal: Terminal) -> SessionKeys | None:
    """The stored session, unless the terminal was re-registered since: that ends it."""
    if stored is not None and stored.key_generation != terminal.key_generation:
        return None
    return stored


def decide(
    request: Request,
    terminal: Terminal | None,
    stored: SessionKeys | None,
    now: float,
    *,
    merchant_known: bool = True,
) -> Decision:
    """The decision for ``request`` from a terminal the store holds as ``terminal`` (None: not
    registered) with ``stored`` as its session. ``merchant_known`` tells an unknown terminal of a
    known merchant (97) from an unknown merchant (03)."""
    if request in SESSIONLESS:  # the table's NoSession rows: the same in every state
        step = transition(State.SIGNED_OFF, request)
        assert isinstance(step, NoSession)
        return Decision(request, State.SIGNED_OFF, step, stored, None, terminal, now)
    if terminal is None or not terminal.enabled:
        if not merchant_known:
            code, reason = ResponseCode.INVALID_MERCHANT, "unknown merchant"
        else:
            code = ResponseCode.TERMINAL_NOT_REGISTERED
            reason = "terminal disabled" if terminal is not None else "unknown terminal"
        refusal = Refusal(code, reason, audited=request is Request.TERMINAL_SIGNIN)
        return Decision(request, State.SIGNED_OFF, refusal, stored, None, terminal, now)
    session = current(stored, terminal)
    state = state_of(session, now)
    step = transition(state, request)
    expired = session is not None and session.expires_at <= now
    live = session if state is not State.SIGNED_OFF else None
    if isinstance(step, Refusal):
        return Decision(request, state, step, session, live, terminal, now, step.sign_in_again or expired)
    return Decision(
        request, state, step, session, live, terminal, now, expired and request is not Request.TERMINAL_SIGNIN
    )


def settle(
    decision: Decision, *, approved: bool, keys: NewKeys | None, operator: str, lifetime: float
) -> SessionKeys | None:
    """The session a served request leaves: what its effect makes of the decision's session when
    approved, that session unchanged otherwise. Raises SessionTableError when the handler's data
    does not fit the request or the result is not in the state the table names: a bug of ours."""
    target, request, live = decision.step, decision.request, decision.live
    if not isinstance(target, State) or decision.terminal is None:
        raise SessionTableError(f"{request.value} was not served: it has no session to settle")
    effect = effect_of(request)
    if keys is not None and (effect is not Effect.INSTALL_KEYS or not approved):
        raise SessionTableError(f"{request.value} produced working keys it does not install")
    if not approved:
        return decision.session
    if effect is Effect.KEEP:
        after = decision.session
    elif effect is Effect.END:
        after = None
    elif effect is Effect.INSTALL_KEYS:
        if keys is None:
            raise SessionTableError(f"{request.value} approved without working keys")
        after = SessionKeys(
            terminal=decision.terminal.id,
            mode=keys.mode,
            pik_lmk=keys.pik_lmk,
            mak_lmk=keys.mak_lmk,
            tdk_lmk=keys.tdk_lmk,
            signed_in_at=decision.now,
            expires_at=decision.now + lifetime,
            key_generation=decision.terminal.key_generation,
        )
    elif live is None:
        raise SessionTableError(f"{request.value} approved with no live session")
    elif effect is Effect.OPERATOR_IN:
        if not operator:
            raise SessionTableError(f"{request.value} approved without naming the operator")
        after = replace(live, operator_id=operator)
    else:
        after = replace(live, operator_id=None)
    reached = state_of(after, decision.now)
    if reached is not target:
        raise SessionTableError(
            f"{request.value} in {decision.state.value} reached {reached.value}, the table says {target.value}"
        )
    return after
