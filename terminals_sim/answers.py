"""Judging the host's answer to a virtual terminal's outstanding request.

An answer is trusted only when it decodes strictly in the dialect, has the MTI the catalogue
names, echoes what the request sent (11, 41, 42, 60.3, ...) and, where a MAC is due, carries a
field 64 that verifies under the terminal's MAK. A bad answer is the host's fault and comes
back as an ``Outcome`` with a ``Failure``; reasons never hold key, PIN or MAC material.
"""

from __future__ import annotations

from hsm_sim.mac import cup_pos_mac
from specs.catalogue import echo_value, mac_input
from specs.errors import WireError
from specs.framing import CupHeader, Frame, decode_frame
from specs.message import Message
from terminals_sim.outcome import Failure, FollowUp, Kind, Outcome
from terminals_sim.terminalstate import Pending, TerminalState
from terminals_sim.transitions import TRANSITIONS
from terminals_sim.workingkeys import KeyCheckError, unwrap_working_keys

# The requests of the IC downloads (terminals_sim/icload.py).
DOWNLOAD_KINDS = frozenset(
    {Kind.CAPK_LIST, Kind.CAPK_RECORD, Kind.CAPK_DONE, Kind.AID_LIST, Kind.AID_RECORD, Kind.AID_DONE,
     Kind.BLACKLIST, Kind.BLACKLIST_DONE}
)
# Codes that tell the terminal its working keys are no good (docs/cup-pos.md, response codes).
SIGN_IN_AGAIN = frozenset({"A0", "99"})
# How an echo problem names the fields a person looks for first.
_LABELS = {"3": "processing code", "4": "amount", "11": "STAN", "41": "terminal id", "42": "merchant id"}
_REQUIREMENT_FOLLOW_UP = {
    3: FollowUp.SIGNIN,
    1: FollowUp.PARAM_DOWNLOAD,
    2: FollowUp.STATUS_UPLOAD,
    4: FollowUp.CAPK_DOWNLOAD,
    5: FollowUp.AID_DOWNLOAD,
    7: FollowUp.BLACKLIST_DOWNLOAD,
}


def judge(st: TerminalState, pending: Pending, data: bytes | Frame) -> tuple[Outcome, Message | None]:
    """The outcome, and the answer when it is trustworthy (well formed, MAC verified)."""
    try:
        frame = data if isinstance(data, Frame) else decode_frame(st.codec.dialect.framing, data)
        if st.profile.accept_mirror and frame.body == pending.body:
            # The very request bounced back: nothing in it to judge, so nothing to decode.
            return Outcome(kind=pending.kind, response_code=None, mirrored=True, detail="mirrored"), None
        message = st.codec.decode(frame.body)
    except WireError as exc:
        return protocol(pending, f"undecodable answer: {exc.describe()}"), None
    if st.profile.accept_mirror and message.mti == pending.mti:
        return Outcome(kind=pending.kind, response_code=None, mirrored=True, detail="mirrored"), None
    problem = _mismatch(st, pending, message)
    if problem:
        return protocol(pending, problem), None
    code = message[39]
    transition = TRANSITIONS[(st.state, pending.kind)]
    # A sign-in answer is never MACed: the keys it carries are the ones a MAC would need.
    if pending.maced or (64 in message and pending.kind is not Kind.SIGNIN):
        mac_problem = _mac_problem(st, message, required=pending.maced and code == "00")
        if mac_problem:
            return Outcome(
                kind=pending.kind,
                response_code=code,
                failure=Failure.BAD_MAC,
                detail=mac_problem,
                follow_up=FollowUp.SIGNIN,
            ), None
    follow_up = _follow_up(code, frame.header)
    if code in SIGN_IN_AGAIN:
        st.drop_keys()
        return Outcome(kind=pending.kind, response_code=code, follow_up=FollowUp.SIGNIN), message
    if code != "00":
        if pending.kind in DOWNLOAD_KINDS:
            st.ic.abandon()
        st.enter(transition.declined)
        return Outcome(kind=pending.kind, response_code=code, follow_up=follow_up), message
    if pending.kind is Kind.SIGNIN:
        failure = _install_keys(st, pending, message)
        if failure is not None:
            return failure, None
    elif pending.kind is Kind.PARAM_DOWNLOAD:
        st.parameters = bytes.fromhex(message.get(62) or "")
    elif pending.kind is Kind.PASSWORD_CHANGE and pending.new_password is not None:
        st.password = pending.new_password
    elif pending.kind in DOWNLOAD_KINDS:
        raw = message.get(62)
        problem = st.ic.take(pending.kind, bytes.fromhex(raw) if raw is not None else None)
        if problem:
            why = Failure.BAD_CHECK_VALUE if problem.startswith("checksum") else Failure.PROTOCOL
            return Outcome(kind=pending.kind, response_code=code, failure=why, detail=problem), None
    st.enter(transition.approved)
    return Outcome(kind=pending.kind, response_code=code, follow_up=follow_up), message


def protocol(pending: Pending, detail: str) -> Outcome:
    return Outcome(kind=pending.kind, response_code=None, failure=Failure.PROTOCOL, detail=detail)


def _mismatch(st: TerminalState, pending: Pending, message: Message) -> str:
    if message.mti != pending.answer_mti:
        return f"answer MTI {message.mti}, expected {pending.answer_mti}"
    for item, want in pending.echo.items():
        got = echo_value(message, item)
        if got == want:
            continue
        label = f"field {item} ({_LABELS.get(item) or _name_of(st, item)})"
        if got is None:
            return f"{label} not echoed"
        return f"{label} answered differs from the request's"
    return ""


def _name_of(st: TerminalState, item: str) -> str:
    dialect = st.codec.dialect
    if "." in item:
        found = dialect.subfield_spec(item)
        return found[0].subfields[found[1]].name if found else item
    spec = dialect.field_spec(int(item))
    return spec.name if spec else item


def _mac_problem(st: TerminalState, message: Message, *, required: bool) -> str:
    sent = message.get(64)
    if sent is None:
        return "answer to a MACed request carries no field 64" if required else ""
    if st.keys is None:
        return "answer carries field 64 but the terminal holds no MAK"
    want = cup_pos_mac(st.keys.mak, mac_input(st.codec, message)).hex().upper()
    return "" if sent == want else "field 64 MAC of the answer does not verify"


def _follow_up(code: str, header: CupHeader | None) -> FollowUp:
    if code in SIGN_IN_AGAIN:
        return FollowUp.SIGNIN
    if header is None:
        return FollowUp.NONE
    return _REQUIREMENT_FOLLOW_UP.get(header.processing_requirement, FollowUp.NONE)


def _install_keys(st: TerminalState, pending: Pending, message: Message) -> Outcome | None:
    if pending.layout is not None:
        raw = message.get(62)
        if raw is None:
            st.drop_keys()
            return protocol(pending, "approved sign-in without field 62")
        try:
            keys = unwrap_working_keys(pending.layout, st.profile.tmk, bytes.fromhex(raw))
        except KeyCheckError as exc:
            st.drop_keys()
            failure = Failure.BAD_CHECK_VALUE if exc.check_value else Failure.PROTOCOL
            return Outcome(kind=pending.kind, response_code=message[39], failure=failure, detail=exc.reason)
        st.keys = keys
    batch_field = st.catalogue.batch_field
    batch = message.sub(batch_field) if batch_field else None
    # The host's batch number, unless this terminal has transactions in its open batch.
    if batch and not any(t.batch == st.batch for t in st.ledger):
        st.batch = batch
    return None
