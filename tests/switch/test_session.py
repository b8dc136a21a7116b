"""The session table and its decision, without sockets, a store or an HSM: the table is complete,
`decide` applies registration, re-registration, expiry and the iso87 rule, and `settle` keeps
the session the table names for what a handler produced."""

from __future__ import annotations

import pytest

from specs.response import ResponseCode
from switch.records import SessionKeys, Terminal, TerminalId
from switch.session import (
    AUDIT_EVENTS,
    EFFECTS,
    SESSIONLESS,
    TABLE,
    Decision,
    Effect,
    NewKeys,
    NoSession,
    Refusal,
    Request,
    SessionTableError,
    State,
    audit_event,
    decide,
    settle,
    state_of,
    transition,
)

TID = TerminalId("848100058126002", "00000764")
TERMINAL = Terminal(TID, "U" + "A" * 32, "ABCDEF", key_generation=2)
NOW = 1_000.0
KEYS = NewKeys("003", "U" + "1" * 32, "2" * 16, None)


def session(operator: str | None = None, *, expires_at: float = 2_000.0, generation: int = 2) -> SessionKeys:
    return SessionKeys(TID, "003", "U" + "0" * 32, "0" * 16, None, 500.0, expires_at, generation, operator)


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
        "network_management": "network_management",
    }


def test_every_request_kind_has_an_effect() -> None:
    assert set(EFFECTS) == set(Request)
    assert EFFECTS[Request.TERMINAL_SIGNIN] is Effect.INSTALL_KEYS
    assert EFFECTS[Request.TERMINAL_SIGNOFF] is Effect.END


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
    keys = session("01", expires_at=100.0)
    assert state_of(keys, 99.0) is State.OPERATOR_SIGNED_IN
    assert state_of(keys, 100.0) is State.SIGNED_OFF
    assert state_of(None, 0.0) is State.SIGNED_OFF


# -- decide -------------------------------------------------------------------------------------


def test_iso87_network_management_needs_no_terminal_and_no_session() -> None:
    assert {Request.NETWORK_MANAGEMENT} == SESSIONLESS
    decision = decide(Request.NETWORK_MANAGEMENT, None, None, NOW, merchant_known=False)
    assert decision.step == NoSession(ResponseCode.APPROVED, "iso87 network management")
    assert decision.live is None


@pytest.mark.parametrize(
    ("terminal", "merchant_known", "code", "reason"),
    [
        (None, False, "03", "unknown merchant"),
        (None, True, "97", "unknown terminal"),
        (Terminal(TID, "U" + "A" * 32, "ABCDEF", enabled=False), True, "97", "terminal disabled"),
    ],
)
def test_an_unregistered_terminal_is_refused_and_only_its_signin_audited(
    terminal: Terminal | None, merchant_known: bool, code: str, reason: str
) -> None:
    for request in Request:
        if request in SESSIONLESS:
            continue
        decision = decide(request, terminal, session(), NOW, merchant_known=merchant_known)
        assert decision.step == Refusal(ResponseCode(code), reason, audited=request is Request.TERMINAL_SIGNIN)
        assert decision.live is None and not decision.sign_in_again
        assert decision.session == session()  # a disabled terminal's session waits for it


def test_a_session_of_an_earlier_registration_is_void() -> None:
    old = session("01", generation=1)
    refused = decide(Request.OPERATOR_SIGNOUT, TERMINAL, old, NOW)
    assert refused.state is State.SIGNED_OFF and refused.session is None and refused.live is None
    assert refused.step == Refusal(ResponseCode.NOT_PERMITTED_TO_TERMINAL, "terminal not signed in", True)
    assert refused.sign_in_again
    signin = decide(Request.TERMINAL_SIGNIN, TERMINAL, old, NOW)
    assert signin.step is State.SIGNED_IN and signin.session is None


def test_expired_keys_serve_an_echo_but_ask_for_a_new_signin() -> None:
    expired = session(expires_at=NOW)
    echo = decide(Request.ECHO, TERMINAL, expired, NOW)
    assert echo.state is State.SIGNED_OFF and echo.step is State.SIGNED_OFF
    assert echo.live is None and echo.session == expired and echo.sign_in_again
    purchase = decide(Request.FINANCIAL, TERMINAL, expired, NOW)
    assert isinstance(purchase.step, Refusal) and purchase.step.code == "58" and purchase.sign_in_again
    signin = decide(Request.TERMINAL_SIGNIN, TERMINAL, expired, NOW)
    assert signin.step is State.SIGNED_IN and not signin.sign_in_again


def test_a_live_session_serves_what_its_state_allows() -> None:
    live = session()
    decision = decide(Request.FINANCIAL, TERMINAL, live, NOW)
    assert (decision.state, decision.step, decision.live, decision.sign_in_again) == (
        State.SIGNED_IN,
        State.SIGNED_IN,
        live,
        False,
    )
    refused = decide(Request.OPERATOR_SIGNOUT, TERMINAL, live, NOW)
    assert refused.step == Refusal(ResponseCode.NOT_PERMITTED_TO_TERMINAL, "no operator signed in")
    assert refused.live == live and not refused.sign_in_again


# -- settle -------------------------------------------------------------------------------------


def _settle(
    decision: Decision, approved: bool = True, keys: NewKeys | None = None, operator: str = ""
) -> SessionKeys | None:
    return settle(decision, approved=approved, keys=keys, operator=operator, lifetime=600.0)


def test_an_approved_signin_installs_the_new_keys_with_lifetime_and_generation() -> None:
    decision = decide(Request.TERMINAL_SIGNIN, TERMINAL, session("01"), NOW)
    assert _settle(decision, keys=KEYS, operator="01") == SessionKeys(
        TID, "003", "U" + "1" * 32, "2" * 16, None, NOW, NOW + 600.0, 2, None
    )


def test_operator_signin_and_signout_change_only_the_operator() -> None:
    signin = decide(Request.OPERATOR_SIGNIN, TERMINAL, session(), NOW)
    assert _settle(signin, operator="00") == session("00")
    signout = decide(Request.OPERATOR_SIGNOUT, TERMINAL, session("00"), NOW)
    assert _settle(signout, operator="00") == session()


def test_a_signoff_ends_the_session_and_a_decline_changes_nothing() -> None:
    assert _settle(decide(Request.TERMINAL_SIGNOFF, TERMINAL, session("01"), NOW)) is None
    declined = decide(Request.OPERATOR_SIGNIN, TERMINAL, session(), NOW)
    assert _settle(declined, approved=False, operator="01") == session()
    assert _settle(decide(Request.FINANCIAL, TERMINAL, session("01"), NOW)) == session("01")


def test_an_echo_keeps_an_expired_session_so_later_answers_still_ask_for_a_signin() -> None:
    expired = session(expires_at=NOW)
    assert _settle(decide(Request.ECHO, TERMINAL, expired, NOW)) == expired


@pytest.mark.parametrize(
    ("request_", "keys", "operator", "problem"),
    [
        (Request.TERMINAL_SIGNIN, None, "", "approved without working keys"),
        (Request.OPERATOR_SIGNIN, None, "", "approved without naming the operator"),
        (Request.ECHO, KEYS, "", "produced working keys it does not install"),
    ],
)
def test_an_approval_that_does_not_fit_its_request_is_a_bug(
    request_: Request, keys: NewKeys | None, operator: str, problem: str
) -> None:
    with pytest.raises(SessionTableError, match=problem):
        _settle(decide(request_, TERMINAL, session(), NOW), keys=keys, operator=operator)


def test_a_result_off_the_table_is_a_bug() -> None:
    # A session that expires at the decision's own time cannot hold a sign-in: the table says
    # signed in, the result is signed off.
    decision = decide(Request.TERMINAL_SIGNIN, TERMINAL, None, NOW)
    with pytest.raises(SessionTableError, match="reached signed_off, the table says signed_in"):
        settle(decision, approved=True, keys=KEYS, operator="", lifetime=0.0)


def test_only_a_served_request_settles() -> None:
    refused = decide(Request.FINANCIAL, TERMINAL, None, NOW)
    with pytest.raises(SessionTableError, match="was not served"):
        _settle(refused)


@pytest.mark.parametrize(("state", "request_"), sorted((k for k, v in TABLE.items() if isinstance(v, State))))
def test_every_allowed_pair_reaches_the_tables_state_with_the_data_its_handler_gives(
    state: State, request_: Request
) -> None:
    """The effects table and the transition table agree: each approval, with the data a handler
    of its kind produces, lands where the table says."""
    stored = {State.SIGNED_OFF: None, State.SIGNED_IN: session(), State.OPERATOR_SIGNED_IN: session("01")}[state]
    decision = decide(request_, TERMINAL, stored, NOW)
    keys = KEYS if EFFECTS[request_] is Effect.INSTALL_KEYS else None
    after = _settle(decision, keys=keys, operator="02")
    assert state_of(after, NOW) is TABLE[(state, request_)]
