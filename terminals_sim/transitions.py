"""The virtual terminal's state table: every allowed (state, request) pair in one place.
What each request looks like on the wire is the message catalogue's (specs/catalogue.py)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from terminals_sim.financial import FINANCIAL_KINDS
from terminals_sim.outcome import Kind


class State(StrEnum):
    SIGNED_OUT = "signed_out"  # no working keys
    SIGNED_IN = "signed_in"  # working keys, no operator
    OPERATOR_IN = "operator_in"  # working keys and an operator signed in


@dataclass(frozen=True, slots=True)
class Transition:
    approved: State
    declined: State


class TerminalProtocolError(Exception):
    """The caller asked for something the terminal's state does not allow (our fault)."""

    def __init__(self, state: State, event: str, reason: str) -> None:
        self.state = state
        self.event = event
        self.reason = reason
        super().__init__(f"{event} in state {state.value}: {reason}")


_OUT, _IN, _OP = State.SIGNED_OUT, State.SIGNED_IN, State.OPERATOR_IN
# (state, request) -> where 39 = 00 and any other 39 lead. A declined sign-in drops the keys
# (the host no longer honours them); everything else declined leaves the terminal where it was.
TRANSITIONS: dict[tuple[State, Kind], Transition] = {
    (_OUT, Kind.SIGNIN): Transition(_IN, _OUT),
    (_IN, Kind.SIGNIN): Transition(_IN, _OUT),
    (_OP, Kind.SIGNIN): Transition(_IN, _OUT),
    (_OUT, Kind.ECHO): Transition(_OUT, _OUT),
    (_IN, Kind.ECHO): Transition(_IN, _IN),
    (_OP, Kind.ECHO): Transition(_OP, _OP),
    (_IN, Kind.OPERATOR_SIGNIN): Transition(_OP, _IN),
    (_OP, Kind.OPERATOR_SIGNIN): Transition(_OP, _IN),
    (_OP, Kind.OPERATOR_SIGNOUT): Transition(_IN, _OP),
    (_OP, Kind.PASSWORD_CHANGE): Transition(_OP, _OP),
    (_IN, Kind.SIGNOFF): Transition(_OUT, _IN),
    (_OP, Kind.SIGNOFF): Transition(_OUT, _OP),
    (_IN, Kind.PARAM_DOWNLOAD): Transition(_IN, _IN),
    (_OP, Kind.PARAM_DOWNLOAD): Transition(_OP, _OP),
    (_IN, Kind.STATUS_UPLOAD): Transition(_IN, _IN),
    (_OP, Kind.STATUS_UPLOAD): Transition(_OP, _OP),
}
# Financial requests and the IC downloads need working keys and leave the terminal where it
# was, whatever 39 says.
_DOWNLOADS = (Kind.CAPK_LIST, Kind.CAPK_RECORD, Kind.CAPK_DONE, Kind.AID_LIST, Kind.AID_RECORD, Kind.AID_DONE,
              Kind.BLACKLIST, Kind.BLACKLIST_DONE)
TRANSITIONS.update(
    {(state, kind): Transition(state, state) for state in (_IN, _OP) for kind in (*FINANCIAL_KINDS, *_DOWNLOADS)}
)

# Answers that close a reversal or a batch-upload item: done, or the host holds nothing for it.
ANSWERED = frozenset({"00", "25"})
