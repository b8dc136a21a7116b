"""The session transition table: complete, and refusing what a state does not allow."""

from __future__ import annotations

import pytest

from specs.response import ResponseCode
from switch.records import SessionKeys, TerminalId
from switch.session import AUDIT_EVENTS, TABLE, Refusal, Request, State, audit_event, state_of, transition


def test_table_has_every_state_and_request_pair() -> None:
    assert {(s, r) for s in State for r in Request} == set(TABLE)


def test_every_request_kind_has_its_own_audit_event() -> None:
    assert set(AUDIT_EVENTS) == set(Request)
    # each kind is audited under its own name, never under another kind's
    assert {r.value: audit_event(r).value for r in Request} == {
        "terminal_signin": "terminal_signin",
        "terminal_signoff": "terminal_signoff",
        "operator_signin": "operator_signin",
        "operator_signout": "operator_signout",
        "password_change": "operator_password_change",
        "echo": "echo",
        "parameter_download": "parameter_download",
        "status_upload": "status_upload",
        "financial": "financial",
    }


def test_operator_requests_refused_before_signin_with_sign_in_again() -> None:
    step = transition(State.SIGNED_OFF, Request.OPERATOR_SIGNIN)
    assert isinstance(step, Refusal)
    assert step.code is ResponseCode.NOT_PERMITTED_TO_TERMINAL and step.sign_in_again


@pytest.mark.parametrize(
    ("state", "request_", "after"),
    [
        (State.SIGNED_OFF, Request.TERMINAL_SIGNIN, State.SIGNED_IN),
        (State.SIGNED_IN, Request.OPERATOR_SIGNIN, State.OPERATOR_SIGNED_IN),
        (State.OPERATOR_SIGNED_IN, Request.OPERATOR_SIGNOUT, State.SIGNED_IN),
        (State.OPERATOR_SIGNED_IN, Request.TERMINAL_SIGNIN, State.SIGNED_IN),
        (State.OPERATOR_SIGNED_IN, Request.TERMINAL_SIGNOFF, State.SIGNED_OFF),
    ],
)
def test_transitions(state: State, request_: Request, after: State) -> None:
    assert transition(state, request_) is after


def test_expired_session_is_signed_off() -> None:
    tid = TerminalId("848100058126002", "00000764")
    session = SessionKeys(tid, "003", "U" + "0" * 32, "0" * 16, None, 0.0, 100.0, 0, "01")
    assert state_of(session, 99.0) is State.OPERATOR_SIGNED_IN
    assert state_of(session, 100.0) is State.SIGNED_OFF
    assert state_of(None, 0.0) is State.SIGNED_OFF
