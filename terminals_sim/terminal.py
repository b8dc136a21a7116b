"""The virtual UnionPay POS terminal: a sans-I/O state machine.

It builds request frames (``start_*``) and judges answer frames (``receive``); an asyncio
shell moves the bytes. One request is outstanding at a time, as on a real terminal. Every
allowed (state, request) pair is in ``_TRANSITIONS``; a request the table does not allow, or a
second request while one is outstanding, raises ``TerminalProtocolError`` (our fault). A bad
answer is the host's fault and comes back as an ``Outcome`` with a ``Failure``.

The terminal holds its TMK and working keys in clear, as a PIN pad does; they never appear in
a repr, an outcome or an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from hsm_sim.ciphers import tdes_ecb_encrypt
from hsm_sim.mac import cup_pos_mac
from hsm_sim.pinblock import PinBlockFormat, build_pinblock
from specs.codec import codec_for
from specs.errors import WireError
from specs.framing import CupHeader, Frame, Tpdu, decode_frame, encode_frame
from specs.message import Message
from terminals_sim.outcome import Failure, FollowUp, Kind, Outcome
from terminals_sim.workingkeys import KeyCheckError, KeyMode, WorkingKeys, unwrap_working_keys

DEFAULT_TPDU = Tpdu.from_hex("6000000000")
DEFAULT_HEADER = CupHeader.from_hex("603100000000")
MAX_STAN = 999_999
# The account-number field of an operator password block: the PAN field all zeros.
_NO_PAN = "000000000000"
_MAC_PLACEHOLDER = "0" * 16
_MAC_LEN = 8
# Codes that tell the terminal its working keys are no good (cup_pos.json response codes).
_SIGN_IN_AGAIN = frozenset({"A0", "99"})
_REQUIREMENT_FOLLOW_UP = {3: FollowUp.SIGNIN, 1: FollowUp.PARAM_DOWNLOAD, 2: FollowUp.STATUS_UPLOAD}


class State(StrEnum):
    SIGNED_OUT = "signed_out"  # no working keys
    SIGNED_IN = "signed_in"  # working keys, no operator
    OPERATOR_IN = "operator_in"  # working keys and an operator signed in


@dataclass(frozen=True, slots=True)
class _Transition:
    approved: State
    declined: State


_OUT, _IN, _OP = State.SIGNED_OUT, State.SIGNED_IN, State.OPERATOR_IN
# (state, request) -> where 39 = 00 and any other 39 lead. A declined sign-in drops the keys
# (the host no longer honours them); everything else declined leaves the terminal where it was.
_TRANSITIONS: dict[tuple[State, Kind], _Transition] = {
    (_OUT, Kind.SIGNIN): _Transition(_IN, _OUT),
    (_IN, Kind.SIGNIN): _Transition(_IN, _OUT),
    (_OP, Kind.SIGNIN): _Transition(_IN, _OUT),
    (_OUT, Kind.ECHO): _Transition(_OUT, _OUT),
    (_IN, Kind.ECHO): _Transition(_IN, _IN),
    (_OP, Kind.ECHO): _Transition(_OP, _OP),
    (_IN, Kind.OPERATOR_SIGNIN): _Transition(_OP, _IN),
    (_OP, Kind.OPERATOR_SIGNIN): _Transition(_OP, _IN),
    (_OP, Kind.OPERATOR_SIGNOUT): _Transition(_IN, _OP),
    (_OP, Kind.PASSWORD_CHANGE): _Transition(_OP, _OP),
    (_IN, Kind.SIGNOFF): _Transition(_OUT, _IN),
    (_OP, Kind.SIGNOFF): _Transition(_OUT, _OP),
    (_IN, Kind.PARAM_DOWNLOAD): _Transition(_IN, _IN),
    (_OP, Kind.PARAM_DOWNLOAD): _Transition(_OP, _OP),
    (_IN, Kind.STATUS_UPLOAD): _Transition(_IN, _IN),
    (_OP, Kind.STATUS_UPLOAD): _Transition(_OP, _OP),
}


@dataclass(frozen=True, slots=True)
class _RequestShape:
    mti: str
    code: str  # 60.3; "" for sign-in, whose code is the key mode
    maced: bool


_SHAPES = {
    Kind.SIGNIN: _RequestShape("0800", "", False),
    Kind.OPERATOR_SIGNIN: _RequestShape("0800", "011", True),
    Kind.OPERATOR_SIGNOUT: _RequestShape("0800", "012", True),
    Kind.PASSWORD_CHANGE: _RequestShape("0800", "013", True),
    Kind.ECHO: _RequestShape("0820", "301", False),
    Kind.SIGNOFF: _RequestShape("0820", "002", False),
    Kind.PARAM_DOWNLOAD: _RequestShape("0800", "360", False),
    Kind.STATUS_UPLOAD: _RequestShape("0820", "362", False),
}


class TerminalProtocolError(Exception):
    """The caller asked for something the terminal's state does not allow (our fault)."""

    def __init__(self, state: State, event: str, reason: str) -> None:
        self.state = state
        self.event = event
        self.reason = reason
        super().__init__(f"{event} in state {state.value}: {reason}")


@dataclass(frozen=True, slots=True)
class TerminalProfile:
    """Who the terminal is and what it knows. Secrets are kept out of the repr."""

    merchant: str
    terminal: str
    tmk: bytes = field(repr=False)
    key_mode: KeyMode = KeyMode.DOUBLE
    operator: str = "01"
    password: str = field(default="0000", repr=False)
    tpdu: Tpdu = DEFAULT_TPDU
    header: CupHeader = DEFAULT_HEADER
    first_stan: int = 1
    batch: str = "000001"
    # Bench mode: a bare echo host bounces the request back unchanged (same MTI, no 39);
    # count such a frame as answered instead of as a protocol failure.
    accept_mirror: bool = False

    def __post_init__(self) -> None:
        if len(self.merchant) != 15 or not self.merchant.isascii() or not self.merchant.isprintable():
            raise ValueError("merchant id (42) must be 15 printable ASCII characters")
        if len(self.terminal) != 8 or not self.terminal.isascii() or not self.terminal.isprintable():
            raise ValueError("terminal id (41) must be 8 printable ASCII characters")
        if len(self.tmk) not in (8, 16, 24):
            raise ValueError("TMK must be 8, 16 or 24 bytes")
        if not (1 <= len(self.operator) <= 3 and self.operator.isdigit()):
            raise ValueError("operator id must be 1 to 3 digits")
        if not (4 <= len(self.password) <= 12 and self.password.isdigit()):
            raise ValueError("operator password must be 4 to 12 digits")
        if not 1 <= self.first_stan <= MAX_STAN:
            raise ValueError(f"first STAN must be 1..{MAX_STAN}")
        if len(self.batch) != 6 or not self.batch.isdigit():
            raise ValueError("batch number must be 6 digits")


@dataclass(frozen=True, slots=True)
class _Pending:
    kind: Kind
    mti: str
    stan: str
    code: str
    maced: bool
    key_mode: KeyMode | None
    new_password: str | None = field(default=None, repr=False)


class VirtualTerminal:
    """One UnionPay POS terminal's protocol state. Not thread-safe; one owner drives it."""

    __slots__ = (
        "_batch",
        "_codec",
        "_keys",
        "_password",
        "_pending",
        "_profile",
        "_stan",
        "_state",
        "parameters",
    )

    def __init__(self, profile: TerminalProfile) -> None:
        self._profile = profile
        self._codec = codec_for("cup-pos")
        self._state = State.SIGNED_OUT
        self._pending: _Pending | None = None
        self._stan = profile.first_stan - 1  # the last STAN used; 0 before the first request
        self._batch = profile.batch
        self._keys: WorkingKeys | None = None
        self._password = profile.password
        self.parameters: bytes = b""  # field 62 of the last parameter download

    def __repr__(self) -> str:
        return (
            f"VirtualTerminal({self._profile.merchant}/{self._profile.terminal} "
            f"state={self._state.value} stan={self._stan:06d} batch={self._batch})"
        )

    # -- what the owner may look at ------------------------------------------------------

    @property
    def profile(self) -> TerminalProfile:
        return self._profile

    @property
    def state(self) -> State:
        return self._state

    @property
    def signed_in(self) -> bool:
        return self._state is not State.SIGNED_OUT

    @property
    def operator_signed_in(self) -> bool:
        return self._state is State.OPERATOR_IN

    @property
    def awaiting(self) -> Kind | None:
        return self._pending.kind if self._pending else None

    @property
    def stan(self) -> int:
        """The STAN of the last request (0 before the first)."""
        return self._stan

    @property
    def batch(self) -> str:
        return self._batch

    @property
    def working_keys(self) -> WorkingKeys | None:
        """The clear working keys (the terminal's own business: never log them)."""
        return self._keys

    # -- requests ------------------------------------------------------------------------

    def start_signin(self, mode: KeyMode | None = None) -> bytes:
        """Terminal sign-in (0800, 60.3 = 001/003/004); ``mode`` overrides the profile's."""
        key_mode = mode or self._profile.key_mode
        return self._start(Kind.SIGNIN, {63: self._operator_code()}, key_mode=key_mode)

    def start_echo(self) -> bytes:
        return self._start(Kind.ECHO, {})

    def start_signoff(self) -> bytes:
        return self._start(Kind.SIGNOFF, {})

    def start_param_download(self) -> bytes:
        return self._start(Kind.PARAM_DOWNLOAD, {})

    def start_status_upload(self) -> bytes:
        return self._start(Kind.STATUS_UPLOAD, {})

    def start_operator_signin(self, password: str | None = None) -> bytes:
        """Operator sign-in (0800, 60.3 = 011): 52 the password block under the PIK, MACed.

        ``password`` overrides the one the terminal holds (to try a wrong one on purpose).
        """
        self._check_allowed(Kind.OPERATOR_SIGNIN)
        block = self._password_block(self._password if password is None else password)
        return self._start(Kind.OPERATOR_SIGNIN, {52: block, 53: self._security_control(),
                                                  63: self._operator_code()})

    def start_operator_signout(self) -> bytes:
        return self._start(Kind.OPERATOR_SIGNOUT, {63: self._operator_code()})

    def start_password_change(self, new_password: str) -> bytes:
        """Password change (0800, 60.3 = 013): 52 old block, 62 new block, both under the PIK."""
        self._check_allowed(Kind.PASSWORD_CHANGE)
        if not (4 <= len(new_password) <= 12 and new_password.isdigit()):
            raise ValueError("operator password must be 4 to 12 digits")
        fields = {
            52: self._password_block(self._password),
            53: self._security_control(),
            62: self._password_block(new_password),
            63: self._operator_code(),
        }
        return self._start(Kind.PASSWORD_CHANGE, fields, new_password=new_password)

    def start(self, kind: Kind) -> bytes:
        """The request for ``kind`` with what the terminal holds (scenario steps use this)."""
        if kind is Kind.PASSWORD_CHANGE:
            # Without a new password from the caller, "change" to the same one: the exchange
            # and its checks are the same, and the next run still knows the password.
            return self.start_password_change(self._password)
        starters = {
            Kind.SIGNIN: self.start_signin,
            Kind.OPERATOR_SIGNIN: self.start_operator_signin,
            Kind.OPERATOR_SIGNOUT: self.start_operator_signout,
            Kind.ECHO: self.start_echo,
            Kind.SIGNOFF: self.start_signoff,
            Kind.PARAM_DOWNLOAD: self.start_param_download,
            Kind.STATUS_UPLOAD: self.start_status_upload,
        }
        return starters[kind]()

    def _check_allowed(self, kind: Kind) -> _Transition:
        if self._pending is not None:
            raise TerminalProtocolError(
                self._state, kind.value, f"{self._pending.kind.value} is still outstanding"
            )
        transition = _TRANSITIONS.get((self._state, kind))
        if transition is None:
            raise TerminalProtocolError(self._state, kind.value, "not allowed in this state")
        return transition

    def _start(
        self,
        kind: Kind,
        extra: dict[int, str],
        *,
        key_mode: KeyMode | None = None,
        new_password: str | None = None,
    ) -> bytes:
        self._check_allowed(kind)
        shape = _SHAPES[kind]
        code = key_mode.value if key_mode is not None else shape.code
        stan = self._next_stan()
        fields = {
            11: stan,
            41: self._profile.terminal,
            42: self._profile.merchant,
            60: "00" + self._batch + code,
            **extra,
        }
        codec = self._codec
        if shape.maced:
            fields[64] = _MAC_PLACEHOLDER
            unsigned = codec.encode(codec.message(shape.mti, fields))
            fields[64] = cup_pos_mac(self._require_keys().mak, unsigned[:-_MAC_LEN]).hex().upper()
        # encode() normalises every value itself; codec.message() would do it a second time.
        body = codec.encode(Message.build(codec.dialect, shape.mti, fields))
        frame = encode_frame(
            codec.dialect.framing, body, tpdu=self._profile.tpdu, header=self._profile.header
        )
        self._pending = _Pending(kind, shape.mti, stan, code, shape.maced, key_mode, new_password)
        return frame

    def _next_stan(self) -> str:
        # 999999 wraps to 000001: 000000 is not a STAN terminals send.
        self._stan = 1 if self._stan >= MAX_STAN else self._stan + 1
        return f"{self._stan:06d}"

    def _operator_code(self) -> str:
        return self._profile.operator.zfill(3)

    def _security_control(self) -> str:
        # 53.1 = 1: PIN block without PAN; 53.2 = 6 double-length, 0 single-length PIK.
        single = len(self._require_keys().pik) == 8
        return "1000000000000000" if single else "1600000000000000"

    def _password_block(self, password: str) -> str:
        clear = build_pinblock(PinBlockFormat.ISO0, password, _NO_PAN)
        return tdes_ecb_encrypt(self._require_keys().pik, clear).hex().upper()

    def _require_keys(self) -> WorkingKeys:
        if self._keys is None:
            raise TerminalProtocolError(self._state, "use working keys", "the terminal is not signed in")
        return self._keys

    # -- answers -------------------------------------------------------------------------

    def fail_pending(self, failure: Failure, detail: str = "") -> Outcome:
        """The shell's report that the outstanding request got no answer (timeout, reset...)."""
        pending = self._take_pending("fail_pending")
        return Outcome(kind=pending.kind, response_code=None, failure=failure, detail=detail)

    def receive(self, data: bytes | Frame) -> Outcome:
        """Judge the answer to the outstanding request (a whole wire frame, or a decoded Frame)."""
        pending = self._take_pending("receive")
        try:
            frame = data if isinstance(data, Frame) else decode_frame(self._codec.dialect.framing, data)
            message = self._codec.decode(frame.body)
        except WireError as exc:
            return self._protocol(pending, f"undecodable answer: {exc.describe()}")
        if self._profile.accept_mirror and message.mti == pending.mti:
            return Outcome(kind=pending.kind, response_code=None, mirrored=True, detail="mirrored")
        problem = self._mismatch(pending, message)
        if problem:
            return self._protocol(pending, problem)
        code = message[39]
        transition = _TRANSITIONS[(self._state, pending.kind)]
        # A sign-in answer is never MACed: the keys it carries are the ones a MAC would need.
        if pending.maced or (64 in message and pending.kind is not Kind.SIGNIN):
            mac_problem = self._mac_problem(frame.body, message, required=pending.maced and code == "00")
            if mac_problem:
                return Outcome(kind=pending.kind, response_code=code, failure=Failure.BAD_MAC,
                               detail=mac_problem, follow_up=FollowUp.SIGNIN)
        follow_up = self._follow_up(code, frame.header)
        if code in _SIGN_IN_AGAIN:
            self._drop_keys()
            return Outcome(kind=pending.kind, response_code=code, follow_up=FollowUp.SIGNIN)
        if code != "00":
            self._enter(transition.declined)
            return Outcome(kind=pending.kind, response_code=code, follow_up=follow_up)
        if pending.kind is Kind.SIGNIN:
            failure = self._install_keys(pending, message)
            if failure is not None:
                return failure
        elif pending.kind is Kind.PARAM_DOWNLOAD:
            self.parameters = bytes.fromhex(message.get(62) or "")
        elif pending.kind is Kind.PASSWORD_CHANGE and pending.new_password is not None:
            self._password = pending.new_password
        self._enter(transition.approved)
        return Outcome(kind=pending.kind, response_code=code, follow_up=follow_up)

    def _take_pending(self, event: str) -> _Pending:
        pending = self._pending
        if pending is None:
            raise TerminalProtocolError(self._state, event, "no request is outstanding")
        self._pending = None
        return pending

    def _protocol(self, pending: _Pending, detail: str) -> Outcome:
        return Outcome(kind=pending.kind, response_code=None, failure=Failure.PROTOCOL, detail=detail)

    def _mismatch(self, pending: _Pending, message: Message) -> str:
        want_mti = pending.mti[:2] + str(int(pending.mti[2]) + 1) + pending.mti[3]
        if message.mti != want_mti:
            return f"answer MTI {message.mti}, expected {want_mti}"
        if message.get(11) != pending.stan:
            return "field 11 (STAN) not echoed"
        if message.get(41) != self._profile.terminal:
            return "field 41 (terminal id) not echoed"
        if message.get(42) != self._profile.merchant:
            return "field 42 (merchant id) not echoed"
        if message.sub("60.3") != pending.code:
            return f"60.3 answered {message.sub('60.3')}, expected {pending.code}"
        return ""

    def _mac_problem(self, body: bytes, message: Message, *, required: bool) -> str:
        sent = message.get(64)
        if sent is None:
            return "answer to a MACed request carries no field 64" if required else ""
        if self._keys is None:
            return "answer carries field 64 but the terminal holds no MAK"
        want = cup_pos_mac(self._keys.mak, body[:-_MAC_LEN]).hex().upper()
        return "" if sent == want else "field 64 MAC of the answer does not verify"

    def _follow_up(self, code: str, header: CupHeader | None) -> FollowUp:
        if code in _SIGN_IN_AGAIN:
            return FollowUp.SIGNIN
        if header is None:
            return FollowUp.NONE
        return _REQUIREMENT_FOLLOW_UP.get(header.processing_requirement, FollowUp.NONE)

    def _install_keys(self, pending: _Pending, message: Message) -> Outcome | None:
        mode = pending.key_mode or self._profile.key_mode
        raw = message.get(62)
        if raw is None:
            self._drop_keys()
            return self._protocol(pending, "approved sign-in without field 62")
        try:
            keys = unwrap_working_keys(mode, self._profile.tmk, bytes.fromhex(raw))
        except KeyCheckError as exc:
            self._drop_keys()
            failure = Failure.BAD_CHECK_VALUE if exc.check_value else Failure.PROTOCOL
            return Outcome(kind=pending.kind, response_code=message[39], failure=failure, detail=exc.reason)
        self._keys = keys
        batch = message.sub("60.2")
        if batch:
            self._batch = batch
        return None

    def _drop_keys(self) -> None:
        self._keys = None
        self._state = State.SIGNED_OUT

    def _enter(self, state: State) -> None:
        self._state = state
        if state is State.SIGNED_OUT:
            self._keys = None
