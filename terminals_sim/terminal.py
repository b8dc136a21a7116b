"""The virtual UnionPay POS terminal: a sans-I/O state machine.

It builds request frames (``start_*``) and judges answer frames (``receive``); an asyncio
shell moves the bytes. One request is outstanding at a time, as on a real terminal. Every
allowed (state, request) pair is in ``TRANSITIONS``; a request the table does not allow, or a
second request while one is outstanding, raises ``TerminalProtocolError`` (our fault). A bad
answer is the host's fault and comes back as an ``Outcome`` with a ``Failure``.

It speaks the dialect its profile names (``specs.catalogue.DEFAULT_DIALECT`` unless told): what
each request is on the wire (MTI, 3, 60 or 70, MAC), the answer's MTI, the fields the answer
must echo and the field 62 layouts come from that dialect's message catalogue
(specs/catalogue.py). A request the catalogue does not have is a ``TerminalProtocolError``.

Financial requests (docs/financial.md) are booked in the terminal's own batch (``ledger``).
When one gets no trustworthy answer the terminal owes a reversal, and, as real terminals do,
refuses every further financial request until ``start_reversal()`` has been answered.

The terminal holds its TMK and working keys in clear, as a PIN pad does; they never appear in
a repr, an outcome or an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hsm_sim.ciphers import tdes_ecb_encrypt
from hsm_sim.mac import cup_pos_mac
from hsm_sim.pinblock import PinBlockFormat, build_pinblock
from specs.catalogue import DEFAULT_DIALECT, MessageKind, Skeleton, echo_value, mac_input
from specs.catalogue_loader import catalogue_for
from specs.codec import FieldSlot, codec_for
from specs.errors import WireError
from specs.framing import CupHeader, Frame, Tpdu, decode_frame, encode_frame
from specs.keylayout import KeyLayout
from specs.message import Message
from terminals_sim.financial import (
    CURRENCY,
    MAX_BATCH_COUNT,
    MOVES_NO_MONEY,
    PIN_CAPTURE,
    POS_CONDITION,
    REVERSIBLE_KINDS,
    SHAPES,
    TRANSACTION_KINDS,
    CardProfile,
    Ledger,
    OriginalRef,
    ReversalReason,
    Transaction,
    card_fields,
    encrypted_pin_block,
    next_batch,
    original_fields,
    parse_balance,
    parse_field48,
    security_control,
)
from terminals_sim.outcome import Failure, FollowUp, Kind, Outcome
from terminals_sim.transitions import ANSWERED, TRANSITIONS, State, Transition
from terminals_sim.workingkeys import KeyCheckError, KeyMode, WorkingKeys, unwrap_working_keys

DEFAULT_TPDU = Tpdu.from_hex("6000000000")
DEFAULT_HEADER = CupHeader.from_hex("603100000000")
MAX_STAN = 999_999
# The account-number field of an operator password block: the PAN field all zeros.
_NO_PAN = "000000000000"
# Codes that tell the terminal its working keys are no good (docs/cup-pos.md, response codes).
_SIGN_IN_AGAIN = frozenset({"A0", "99"})
# How an echo problem names the fields a person looks for first.
_LABELS = {"3": "processing code", "4": "amount", "11": "STAN", "41": "terminal id", "42": "merchant id"}
_REQUIREMENT_FOLLOW_UP = {3: FollowUp.SIGNIN, 1: FollowUp.PARAM_DOWNLOAD, 2: FollowUp.STATUS_UPLOAD}


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
    card: CardProfile | None = None  # the card financial requests use when given none
    dialect: str = DEFAULT_DIALECT  # the dialect (and so the message catalogue) it speaks

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
    answer_mti: str
    stan: str
    echo: dict[str, str]  # what the answer must give back: echo item -> the request's value
    maced: bool
    key_mode: KeyMode | None
    layout: KeyLayout | None  # field 62 of a sign-in answer
    new_password: str | None = field(default=None, repr=False)
    seq: int | None = None  # the ledger record this request made or concerns
    reason: ReversalReason | None = None  # of a reversal
    body: bytes = b""  # the request's body as sent (a mirrored answer is the same bytes)


@dataclass(frozen=True, slots=True)
class _Reusable:
    """A request that differs from the last of its kind only in its STAN (no MAC, nothing
    added): the codec's output kept, field 11 filled in afresh by the codec each time."""

    slot: FieldSlot
    frame_head: bytes  # length header, TPDU and UnionPay header
    pending: _Pending


class VirtualTerminal:
    """One UnionPay POS terminal's protocol state. Not thread-safe; one owner drives it."""

    __slots__ = (
        "_batch",
        "_catalogue",
        "_codec",
        "_keys",
        "_ledger",
        "_password",
        "_pending",
        "_profile",
        "_reusable",
        "_stan",
        "_state",
        "last_transaction",
        "parameters",
    )

    def __init__(self, profile: TerminalProfile) -> None:
        self._profile = profile
        self._codec = codec_for(profile.dialect)
        self._catalogue = catalogue_for(self._codec.dialect)
        self._state = State.SIGNED_OUT
        self._pending: _Pending | None = None
        self._stan = profile.first_stan - 1  # the last STAN used; 0 before the first request
        self._batch = profile.batch
        self._keys: WorkingKeys | None = None
        self._password = profile.password
        self.parameters: bytes = b""  # field 62 of the last parameter download
        self._ledger = Ledger()
        self._reusable: dict[tuple[Kind, str, str | None], _Reusable] = {}
        # The record of the last financial request answered or given up on.
        self.last_transaction: Transaction | None = None

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

    @property
    def ledger(self) -> Ledger:
        """The open batch: read it, do not change it."""
        return self._ledger

    @property
    def reversal_due(self) -> Transaction | None:
        """The transaction a reversal is owed for; no financial request goes before it."""
        due = self._ledger.reversal_due
        return due[0] if due else None

    @property
    def uploading(self) -> bool:
        """A settlement answered 95 and batch-upload items are left to send."""
        return self._ledger.next_upload is not None

    @property
    def batch_full(self) -> bool:
        """Settle before the next transaction: field 48 counts at most 999 of each."""
        return len(self._ledger) >= MAX_BATCH_COUNT

    # -- requests ------------------------------------------------------------------------

    def start_signin(self, mode: KeyMode | None = None) -> bytes:
        """Terminal sign-in (UnionPay 0800, 60.3 = 001/003/004); ``mode`` overrides the profile's.
        A sign-in without field 62 layouts (iso87 sign-on) carries no key mode and no operator."""
        exchanges_keys = bool(self._entry(Kind.SIGNIN).key_layouts)
        extra = {63: self._operator_code()} if exchanges_keys else {}
        return self._start(Kind.SIGNIN, extra, key_mode=(mode or self._profile.key_mode) if exchanges_keys else None)

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
        return self._start(Kind.OPERATOR_SIGNIN, {52: block, 53: self._security_control(), 63: self._operator_code()})

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
            Kind.REVERSAL: self.start_reversal,
            Kind.SETTLEMENT: self.start_settlement,
            Kind.BATCH_UPLOAD: self.start_batch_upload,
        }
        if kind in TRANSACTION_KINDS:
            return self.start_transaction(kind)
        return starters[kind]()

    # -- financial requests (docs/financial.md) ---------------------------------------------

    def start_purchase(
        self,
        amount_cents: int,
        card: CardProfile | None = None,
        *,
        with_pin: bool = True,
        pin: str | None = None,
        stan: int | None = None,
    ) -> bytes:
        """Purchase 0200/000000/22. ``pin`` is what the cardholder types (default: the card's
        PIN); ``stan`` reuses a STAN on purpose (a host must answer 94)."""
        return self.start_transaction(Kind.PURCHASE, amount_cents, card, with_pin=with_pin, pin=pin, stan=stan)

    def start_balance(self, card: CardProfile | None = None, *, pin: str | None = None) -> bytes:
        """Balance inquiry 0200/310000/01; the balance comes back in ``Outcome.balance_cents``."""
        return self.start_transaction(Kind.BALANCE, None, card, pin=pin)

    def start_void(
        self,
        original: Transaction | OriginalRef | None = None,
        card: CardProfile | None = None,
        *,
        with_pin: bool = False,
    ) -> bytes:
        """Void 0200/200000/23 of a purchase (default: the last one approved and not voided)."""
        return self.start_transaction(Kind.VOID, None, card, original=original, with_pin=with_pin)

    def start_refund(
        self,
        amount_cents: int | None = None,
        original: Transaction | OriginalRef | None = None,
        card: CardProfile | None = None,
        *,
        with_pin: bool = False,
    ) -> bytes:
        """Refund 0220/200000/25 (default: all that is left of the last approved purchase)."""
        return self.start_transaction(Kind.REFUND, amount_cents, card, original=original, with_pin=with_pin)

    def start_preauth(
        self, amount_cents: int, card: CardProfile | None = None, *, with_pin: bool = True, pin: str | None = None
    ) -> bytes:
        """Pre-authorisation 0100/030000/10."""
        return self.start_transaction(Kind.PREAUTH, amount_cents, card, with_pin=with_pin, pin=pin)

    def start_completion(
        self,
        amount_cents: int | None = None,
        original: Transaction | OriginalRef | None = None,
        card: CardProfile | None = None,
        *,
        with_pin: bool = False,
    ) -> bytes:
        """Completion 0200/000000/20 of a pre-authorisation (default: the last one approved,
        for its whole amount)."""
        return self.start_transaction(Kind.COMPLETION, amount_cents, card, original=original, with_pin=with_pin)

    def start_transaction(
        self,
        kind: Kind,
        amount_cents: int | None = None,
        card: CardProfile | None = None,
        *,
        original: Transaction | OriginalRef | None = None,
        with_pin: bool | None = None,
        pin: str | None = None,
        stan: int | None = None,
    ) -> bytes:
        """Any of purchase, balance, void, refund, preauth, completion."""
        shape = SHAPES.get(kind)
        if shape is None:
            raise ValueError(f"{kind.value} is not a card transaction")
        self._check_financial(kind)
        ref = self._original(kind, original) if shape.original is not None else None
        in_batch = self._ledger_record(ref)
        card = card or (in_batch.card if in_batch else None) or self._profile.card
        if card is None:
            raise TerminalProtocolError(self._state, kind.value, "no card given and the profile has none")
        amount = self._amount(kind, amount_cents, ref, in_batch)
        with_pin = shape.pin_by_default if with_pin is None else with_pin
        separator = self._codec.dialect.track_separator
        fields = {25: POS_CONDITION, 49: CURRENCY, **card_fields(card, with_pin, separator)}
        if amount:
            fields[4] = f"{amount:012d}"
        if with_pin:
            typed = card.pin if pin is None else pin
            if not typed:
                raise ValueError(f"card {card.masked_pan} has no PIN to enter")
            pik = self._require_keys().pik
            fields.update({26: PIN_CAPTURE, 52: encrypted_pin_block(pik, typed, card.pan), 53: security_control(pik)})
        if ref is not None:
            fields.update(original_fields(kind, ref))
        if stan is not None and not 1 <= stan <= MAX_STAN:
            raise ValueError(f"STAN must be 1..{MAX_STAN}")
        frame = self._start(kind, fields, stan=None if stan is None else f"{stan:06d}")
        assert self._pending is not None
        txn = self._ledger.add(
            kind=kind,
            stan=self._pending.stan,
            batch=self._batch,
            amount_cents=amount,
            card=card,
            with_pin=with_pin,
            original=ref,
        )
        self._pending = replace(self._pending, seq=txn.seq)
        return frame

    def start_reversal(self, txn: Transaction | None = None, reason: ReversalReason | None = None) -> bytes:
        """0400 for the reversal that is due, or (``txn``) of any transaction on purpose.

        It repeats the original's 2/35, 3, 4, 11, 22, 25, 49 and 60, with 39 = the reason.
        """
        if txn is None:
            due = self._ledger.reversal_due
            if due is None:
                raise TerminalProtocolError(self._state, Kind.REVERSAL.value, "no reversal is due")
            txn, due_reason = due
            reason = reason or due_reason
        reason = reason or ReversalReason.OTHER
        self._check_allowed(Kind.REVERSAL)
        card = card_fields(txn.card, txn.with_pin, self._codec.dialect.track_separator)
        card.pop(14)
        fields = {25: POS_CONDITION, 49: CURRENCY, 39: reason.value, **card}
        if txn.amount_cents:
            fields[4] = f"{txn.amount_cents:012d}"
        frame = self._start(Kind.REVERSAL, fields, stan=txn.stan, original=self._skeleton_of(txn))
        assert self._pending is not None
        self._pending = replace(self._pending, seq=txn.seq, reason=reason)
        return frame

    def start_settlement(self) -> bytes:
        """0500/201 with the open batch's totals in 48 (flag 0)."""
        self._check_financial(Kind.SETTLEMENT)
        totals = self._ledger.totals(self._batch)
        return self._start(Kind.SETTLEMENT, {48: totals.field48("0"), 49: CURRENCY})

    def start_batch_upload(self) -> bytes:
        """0320/201 for the next transaction of the batch, after a settlement answered 95."""
        txn = self._ledger.next_upload
        if txn is None:
            raise TerminalProtocolError(self._state, Kind.BATCH_UPLOAD.value, "no batch upload is under way")
        self._check_financial(Kind.BATCH_UPLOAD)
        fields = {2: txn.card.pan, 4: f"{txn.amount_cents:012d}", 48: "00"}
        frame = self._start(Kind.BATCH_UPLOAD, fields, stan=txn.stan, original=self._skeleton_of(txn))
        assert self._pending is not None
        self._pending = replace(self._pending, seq=txn.seq)
        return frame

    def _skeleton_of(self, txn: Transaction) -> Skeleton:
        """What the request that made ``txn`` started as (its MTI, 3 and 60)."""
        return self._catalogue.request(txn.kind.value, batch=txn.batch)

    def _check_financial(self, kind: Kind) -> None:
        self._check_allowed(kind)
        due = self.reversal_due
        if due is not None:
            raise TerminalProtocolError(
                self._state, kind.value, f"the reversal of STAN {due.stan} is due: send start_reversal() first"
            )
        if kind in TRANSACTION_KINDS and self.uploading:
            raise TerminalProtocolError(
                self._state, kind.value, "a batch upload is under way: finish it (start_batch_upload()) first"
            )

    def _original(self, kind: Kind, given: Transaction | OriginalRef | None) -> OriginalRef:
        if isinstance(given, OriginalRef):
            return given
        if isinstance(given, Transaction):
            return given.as_original()
        found = self._ledger.latest_original(kind)
        if found is None:
            want = SHAPES[kind].original
            assert want is not None
            raise TerminalProtocolError(self._state, kind.value, f"no approved {want.value} in the batch to refer to")
        return found.as_original()

    def _ledger_record(self, ref: OriginalRef | None) -> Transaction | None:
        if ref is None or ref.seq is None:
            return None
        try:
            return self._ledger.get(ref.seq)
        except KeyError:
            return None

    def _amount(self, kind: Kind, given: int | None, ref: OriginalRef | None, record: Transaction | None) -> int:
        if kind is Kind.BALANCE:
            if given:
                raise ValueError("a balance inquiry carries no amount")
            return 0
        if kind is Kind.VOID:
            assert ref is not None
            if given is not None and given != ref.amount_cents:
                raise ValueError("a void carries the original amount")
            return ref.amount_cents
        if given is None:
            if ref is None:
                raise ValueError(f"{kind.value} needs an amount")
            given = record.left_cents if record is not None else ref.amount_cents
        if not 0 < given <= 999_999_999_999:
            raise ValueError("amount must be 1 to 999999999999 cents")
        return given

    def _entry(self, kind: Kind) -> MessageKind:
        entry = self._catalogue.get(kind.value)
        if entry is None:
            raise TerminalProtocolError(
                self._state, kind.value, f"not a request of the {self._catalogue.name} message catalogue"
            )
        return entry

    def _check_allowed(self, kind: Kind) -> Transition:
        self._entry(kind)
        if self._pending is not None:
            raise TerminalProtocolError(self._state, kind.value, f"{self._pending.kind.value} is still outstanding")
        transition = TRANSITIONS.get((self._state, kind))
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
        stan: str | None = None,
        original: Skeleton | None = None,
    ) -> bytes:
        """``stan`` repeats an earlier request's 11 and ``original`` its skeleton (reversal, upload)."""
        self._check_allowed(kind)
        entry = self._entry(kind)
        code = key_mode.value if key_mode is not None else None
        reusable = not (entry.maced or extra or stan or original or new_password)
        if reusable and (cached := self._reusable.get((kind, self._batch, code))) is not None:
            return self._restart(cached)
        skeleton = self._catalogue.request(kind.value, batch=self._batch, code=code, original=original)
        stan = stan or self._next_stan()
        fields = {11: stan, 41: self._profile.terminal, 42: self._profile.merchant, **skeleton.fields, **extra}
        codec = self._codec
        # encode() normalises every value itself; codec.message() would do it a second time.
        message = Message.build(codec.dialect, skeleton.mti, fields)
        if entry.maced:
            mac = cup_pos_mac(self._require_keys().mak, mac_input(codec, message))
            message = message.replace(f64=mac.hex().upper())
        body = codec.encode(message)
        frame = encode_frame(codec.dialect.framing, body, tpdu=self._profile.tpdu, header=self._profile.header)
        echo = {item: value for item in entry.echo if (value := echo_value(message, item)) is not None}
        layout = entry.layout(code) if code is not None else None
        self._pending = _Pending(
            kind, skeleton.mti, entry.response_mti, stan, echo, entry.maced, key_mode, layout, new_password,
            body=body,
        )
        if reusable:
            head = frame[: len(frame) - len(body)]
            self._reusable[(kind, self._batch, code)] = _Reusable(codec.slot(message, 11), head, self._pending)
        return frame

    def _restart(self, cached: _Reusable) -> bytes:
        """The cached request with the next STAN (``_start`` made the first of them)."""
        stan = self._next_stan()
        body = cached.slot.fill(stan)
        p = cached.pending
        echo = {**p.echo, "11": stan} if "11" in p.echo else p.echo
        self._pending = _Pending(p.kind, p.mti, p.answer_mti, stan, echo, p.maced, p.key_mode, p.layout, body=body)
        return cached.frame_head + body

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
            raise TerminalProtocolError(self._state, "use working keys", "the terminal holds no working keys")
        return self._keys

    # -- answers -------------------------------------------------------------------------

    def fail_pending(self, failure: Failure, detail: str = "") -> Outcome:
        """The shell's report that the outstanding request got no answer (timeout, reset...)."""
        pending = self._take_pending("fail_pending")
        if pending.seq is not None:
            self._book_no_answer(pending, failure)
        return Outcome(kind=pending.kind, response_code=None, failure=failure, detail=detail)

    def receive(self, data: bytes | Frame) -> Outcome:
        """Judge the answer to the outstanding request (a whole wire frame, or a decoded Frame)."""
        pending = self._take_pending("receive")
        outcome, message = self._judge(pending, data)
        if pending.seq is not None or pending.kind is Kind.SETTLEMENT:
            outcome = self._book(pending, outcome, message)
        return outcome

    def _judge(self, pending: _Pending, data: bytes | Frame) -> tuple[Outcome, Message | None]:
        """The outcome, and the answer when it is trustworthy (well formed, MAC verified)."""
        try:
            frame = data if isinstance(data, Frame) else decode_frame(self._codec.dialect.framing, data)
            if self._profile.accept_mirror and frame.body == pending.body:
                # The very request bounced back: nothing in it to judge, so nothing to decode.
                return Outcome(kind=pending.kind, response_code=None, mirrored=True, detail="mirrored"), None
            message = self._codec.decode(frame.body)
        except WireError as exc:
            return self._protocol(pending, f"undecodable answer: {exc.describe()}"), None
        if self._profile.accept_mirror and message.mti == pending.mti:
            return Outcome(kind=pending.kind, response_code=None, mirrored=True, detail="mirrored"), None
        problem = self._mismatch(pending, message)
        if problem:
            return self._protocol(pending, problem), None
        code = message[39]
        transition = TRANSITIONS[(self._state, pending.kind)]
        # A sign-in answer is never MACed: the keys it carries are the ones a MAC would need.
        if pending.maced or (64 in message and pending.kind is not Kind.SIGNIN):
            mac_problem = self._mac_problem(message, required=pending.maced and code == "00")
            if mac_problem:
                return Outcome(
                    kind=pending.kind,
                    response_code=code,
                    failure=Failure.BAD_MAC,
                    detail=mac_problem,
                    follow_up=FollowUp.SIGNIN,
                ), None
        follow_up = self._follow_up(code, frame.header)
        if code in _SIGN_IN_AGAIN:
            self._drop_keys()
            return Outcome(kind=pending.kind, response_code=code, follow_up=FollowUp.SIGNIN), message
        if code != "00":
            self._enter(transition.declined)
            return Outcome(kind=pending.kind, response_code=code, follow_up=follow_up), message
        if pending.kind is Kind.SIGNIN:
            failure = self._install_keys(pending, message)
            if failure is not None:
                return failure, None
        elif pending.kind is Kind.PARAM_DOWNLOAD:
            self.parameters = bytes.fromhex(message.get(62) or "")
        elif pending.kind is Kind.PASSWORD_CHANGE and pending.new_password is not None:
            self._password = pending.new_password
        self._enter(transition.approved)
        return Outcome(kind=pending.kind, response_code=code, follow_up=follow_up), message

    # -- booking financial answers in the batch -------------------------------------------

    def _book_no_answer(self, pending: _Pending, failure: Failure) -> None:
        """No trustworthy answer came (timeout, reset, bad MAC, unusable answer)."""
        seq = pending.seq
        assert seq is not None
        ledger = self._ledger
        if pending.kind is Kind.REVERSAL:
            ledger.owe_reversal(seq, pending.reason or ReversalReason.OTHER)
        elif pending.kind in REVERSIBLE_KINDS and failure is not Failure.REFUSED:
            silent = failure in (Failure.TIMEOUT, Failure.RESET)
            reason = ReversalReason.NO_ANSWER if silent else ReversalReason.OTHER
            self.last_transaction = ledger.lose(seq, reason)
        elif pending.kind in TRANSACTION_KINDS:
            # A refused connection sent nothing; a lost balance inquiry moved no money.
            self.last_transaction = ledger.get(seq)
            ledger.forget(seq)

    def _book(self, pending: _Pending, outcome: Outcome, message: Message | None) -> Outcome:
        kind = pending.kind
        if kind is Kind.SETTLEMENT:
            return self._book_settlement(outcome, message)
        seq = pending.seq
        assert seq is not None
        ledger = self._ledger
        if outcome.mirrored:
            if kind in TRANSACTION_KINDS:
                ledger.forget(seq)
            return outcome
        if message is None:
            self._book_no_answer(pending, outcome.failure or Failure.PROTOCOL)
            return outcome
        code = outcome.response_code
        if kind is Kind.REVERSAL:
            if code in ANSWERED:
                self.last_transaction = ledger.reversed(seq) or self.last_transaction
            return outcome
        if kind is Kind.BATCH_UPLOAD:
            if code in ANSWERED:
                ledger.uploaded()
                if ledger.next_upload is None:
                    self._close_batch()
            return outcome
        if code != "00":
            self.last_transaction = ledger.decline(seq, code or "")
            ledger.forget(seq)
            return outcome
        balance = None
        if kind is Kind.BALANCE:
            try:
                balance = parse_balance(message.get(54) or "")
            except ValueError as exc:
                ledger.forget(seq)
                return replace(outcome, failure=Failure.PROTOCOL, detail=f"approved balance inquiry: {exc}")
        self.last_transaction = ledger.approve(
            seq, code=code, rrn=message.get(37) or "", auth_code=message.get(38) or "", date=message.get(13) or ""
        )
        if kind in MOVES_NO_MONEY:
            ledger.forget(seq)
            return replace(outcome, balance_cents=balance)
        return outcome

    def _book_settlement(self, outcome: Outcome, message: Message | None) -> Outcome:
        code = outcome.response_code
        if message is None or outcome.failure is not None or code not in ("00", "95"):
            return outcome
        try:
            _totals, flag = parse_field48(message.get(48) or "")
        except ValueError as exc:
            return replace(outcome, failure=Failure.PROTOCOL, detail=f"settlement answer: {exc}")
        want = "1" if code == "00" else "2"
        if flag != want:
            return replace(
                outcome, failure=Failure.PROTOCOL, detail=f"48 settlement flag {flag} with 39 = {code}, expected {want}"
            )
        if code == "00":
            self._close_batch()
        else:
            self._ledger.start_uploads(self._batch)
            if self._ledger.next_upload is None:
                self._close_batch()
        return outcome

    def _close_batch(self) -> None:
        self._ledger.close(self._batch)
        self._batch = next_batch(self._batch)

    def _take_pending(self, event: str) -> _Pending:
        pending = self._pending
        if pending is None:
            raise TerminalProtocolError(self._state, event, "no request is outstanding")
        self._pending = None
        return pending

    def _protocol(self, pending: _Pending, detail: str) -> Outcome:
        return Outcome(kind=pending.kind, response_code=None, failure=Failure.PROTOCOL, detail=detail)

    def _mismatch(self, pending: _Pending, message: Message) -> str:
        if message.mti != pending.answer_mti:
            return f"answer MTI {message.mti}, expected {pending.answer_mti}"
        for item, want in pending.echo.items():
            got = echo_value(message, item)
            if got == want:
                continue
            label = f"field {item} ({_LABELS.get(item) or self._name_of(item)})"
            if got is None:
                return f"{label} not echoed"
            return f"{label} answered differs from the request's"
        return ""

    def _name_of(self, item: str) -> str:
        dialect = self._codec.dialect
        if "." in item:
            found = dialect.subfield_spec(item)
            return found[0].subfields[found[1]].name if found else item
        spec = dialect.field_spec(int(item))
        return spec.name if spec else item

    def _mac_problem(self, message: Message, *, required: bool) -> str:
        sent = message.get(64)
        if sent is None:
            return "answer to a MACed request carries no field 64" if required else ""
        if self._keys is None:
            return "answer carries field 64 but the terminal holds no MAK"
        want = cup_pos_mac(self._keys.mak, mac_input(self._codec, message)).hex().upper()
        return "" if sent == want else "field 64 MAC of the answer does not verify"

    def _follow_up(self, code: str, header: CupHeader | None) -> FollowUp:
        if code in _SIGN_IN_AGAIN:
            return FollowUp.SIGNIN
        if header is None:
            return FollowUp.NONE
        return _REQUIREMENT_FOLLOW_UP.get(header.processing_requirement, FollowUp.NONE)

    def _install_keys(self, pending: _Pending, message: Message) -> Outcome | None:
        if pending.layout is not None:
            raw = message.get(62)
            if raw is None:
                self._drop_keys()
                return self._protocol(pending, "approved sign-in without field 62")
            try:
                keys = unwrap_working_keys(pending.layout, self._profile.tmk, bytes.fromhex(raw))
            except KeyCheckError as exc:
                self._drop_keys()
                failure = Failure.BAD_CHECK_VALUE if exc.check_value else Failure.PROTOCOL
                return Outcome(kind=pending.kind, response_code=message[39], failure=failure, detail=exc.reason)
            self._keys = keys
        batch_field = self._catalogue.batch_field
        batch = message.sub(batch_field) if batch_field else None
        # The host's batch number, unless this terminal has transactions in its open batch.
        if batch and not any(t.batch == self._batch for t in self._ledger):
            self._batch = batch
        return None

    def _drop_keys(self) -> None:
        self._keys = None
        self._state = State.SIGNED_OUT

    def _enter(self, state: State) -> None:
        self._state = state
        if state is State.SIGNED_OUT:
            self._keys = None
