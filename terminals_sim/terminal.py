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

This class is the terminal's public face over one ``TerminalState`` (terminals_sim/
terminalstate.py); the work is done by terminals_sim/requests.py (building requests),
terminals_sim/answers.py (judging answers) and terminals_sim/batchbook.py (the batch).
"""

from __future__ import annotations

from specs.framing import Frame
from terminals_sim import answers, batchbook, requests
from terminals_sim.financial import (
    MAX_BATCH_COUNT,
    TRANSACTION_KINDS,
    CardProfile,
    Ledger,
    OriginalRef,
    ReversalReason,
    Transaction,
)
from terminals_sim.icload import IcData
from terminals_sim.outcome import Failure, Kind, Outcome
from terminals_sim.terminalstate import DEFAULT_HEADER, DEFAULT_TPDU, MAX_STAN, TerminalProfile, TerminalState
from terminals_sim.transitions import State, TerminalProtocolError
from terminals_sim.workingkeys import KeyMode, WorkingKeys

__all__ = [
    "DEFAULT_HEADER",
    "DEFAULT_TPDU",
    "MAX_STAN",
    "TerminalProfile",
    "TerminalProtocolError",
    "VirtualTerminal",
]


class VirtualTerminal:
    """One UnionPay POS terminal's protocol state. Not thread-safe; one owner drives it."""

    __slots__ = ("_st",)

    def __init__(self, profile: TerminalProfile) -> None:
        self._st = TerminalState(profile)

    def __repr__(self) -> str:
        st = self._st
        return (
            f"VirtualTerminal({st.profile.merchant}/{st.profile.terminal} "
            f"state={st.state.value} stan={st.stan:06d} batch={st.batch})"
        )

    # -- what the owner may look at ------------------------------------------------------

    @property
    def profile(self) -> TerminalProfile:
        return self._st.profile

    @property
    def state(self) -> State:
        return self._st.state

    @property
    def signed_in(self) -> bool:
        return self._st.state is not State.SIGNED_OUT

    @property
    def operator_signed_in(self) -> bool:
        return self._st.state is State.OPERATOR_IN

    @property
    def awaiting(self) -> Kind | None:
        pending = self._st.pending
        return pending.kind if pending else None

    @property
    def stan(self) -> int:
        """The STAN of the last request (0 before the first)."""
        return self._st.stan

    @property
    def batch(self) -> str:
        return self._st.batch

    @property
    def working_keys(self) -> WorkingKeys | None:
        """The clear working keys (the terminal's own business: never log them)."""
        return self._st.keys

    @property
    def parameters(self) -> bytes:
        """Field 62 of the last parameter download."""
        return self._st.parameters

    @property
    def last_transaction(self) -> Transaction | None:
        """The record of the last financial request answered or given up on."""
        return self._st.last_transaction

    @property
    def ledger(self) -> Ledger:
        """The open batch: read it, do not change it."""
        return self._st.ledger

    @property
    def reversal_due(self) -> Transaction | None:
        """The transaction a reversal is owed for; no financial request goes before it."""
        due = self._st.ledger.reversal_due
        return due[0] if due else None

    @property
    def uploading(self) -> bool:
        """A settlement was answered and batch-upload items are left to send."""
        return self._st.ledger.next_upload_item is not None

    @property
    def batch_full(self) -> bool:
        """Settle before the next transaction: field 48 counts at most 999 of each."""
        return len(self._st.ledger) >= MAX_BATCH_COUNT

    # -- requests ------------------------------------------------------------------------

    def start_signin(self, mode: KeyMode | None = None) -> bytes:
        """Terminal sign-in (UnionPay 0800, 60.3 = 001/003/004); ``mode`` overrides the profile's.
        A sign-in without field 62 layouts (iso87 sign-on) carries no key mode and no operator."""
        return requests.signin(self._st, mode)

    def start_echo(self) -> bytes:
        return requests.build(self._st, Kind.ECHO, {})

    def start_signoff(self) -> bytes:
        return requests.build(self._st, Kind.SIGNOFF, {})

    def start_param_download(self) -> bytes:
        return requests.build(self._st, Kind.PARAM_DOWNLOAD, {})

    def start_status_upload(self) -> bytes:
        return requests.build(self._st, Kind.STATUS_UPLOAD, {})

    def start_operator_signin(self, password: str | None = None) -> bytes:
        """Operator sign-in (0800, 60.3 = 011): 52 the password block under the PIK, MACed.

        ``password`` overrides the one the terminal holds (to try a wrong one on purpose).
        """
        return requests.operator_signin(self._st, password)

    def start_operator_signout(self) -> bytes:
        return requests.operator_signout(self._st)

    def start_password_change(self, new_password: str) -> bytes:
        """Password change (0800, 60.3 = 013): 52 old block, 62 new block, both under the PIK."""
        return requests.password_change(self._st, new_password)

    def start(self, kind: Kind) -> bytes:
        """The request for ``kind`` with what the terminal holds (scenario steps use this)."""
        if kind is Kind.PASSWORD_CHANGE:
            # Without a new password from the caller, "change" to the same one: the exchange
            # and its checks are the same, and the next run still knows the password.
            return self.start_password_change(self._st.password)
        starters = {
            Kind.SIGNIN: self.start_signin,
            Kind.OPERATOR_SIGNIN: self.start_operator_signin,
            Kind.OPERATOR_SIGNOUT: self.start_operator_signout,
            Kind.ECHO: self.start_echo,
            Kind.SIGNOFF: self.start_signoff,
            Kind.PARAM_DOWNLOAD: self.start_param_download,
            Kind.STATUS_UPLOAD: self.start_status_upload,
            Kind.REVERSAL: self.start_reversal,
            Kind.CHIP_REVERSAL: self.start_reversal,
            Kind.SETTLEMENT: self.start_settlement,
            Kind.BATCH_UPLOAD: self.start_batch_upload,
            Kind.IC_UPLOAD: self.start_batch_upload,
            Kind.IC_UPLOAD_END: self.start_batch_upload,
            Kind.SCRIPT_ADVICE: self.start_script_advice,
        }
        if kind in TRANSACTION_KINDS:
            return self.start_transaction(kind)
        if kind in answers.DOWNLOAD_KINDS:
            return requests.download(self._st, kind)
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
        return requests.transaction(
            self._st, kind, amount_cents, card, original=original, with_pin=with_pin, pin=pin, stan=stan
        )

    def start_reversal(self, txn: Transaction | None = None, reason: ReversalReason | None = None) -> bytes:
        """0400 for the reversal that is due, or (``txn``) of any transaction on purpose.

        It repeats the original's 2/35, 3, 4, 11, 22, 25, 49 and 60, with 39 = the reason.
        """
        return requests.reversal(self._st, txn, reason)

    def start_settlement(self) -> bytes:
        """0500/201 with the open batch's totals in 48 (flag 0)."""
        return requests.settlement(self._st)

    def start_batch_upload(self) -> bytes:
        """0320/201 for the next transaction of the batch, after a settlement answered 95."""
        return requests.batch_upload(self._st)

    def start_script_advice(self) -> bytes:
        """0620/951 with the results of the issuer scripts an answer carried (docs/chip.md)."""
        return requests.script_advice(self._st)

    # -- IC downloads (docs/chip.md) ------------------------------------------------------

    def begin_download(self, which: Kind) -> None:
        """Start a download (Kind.CAPK_DOWNLOAD, AID_DOWNLOAD, BLACKLIST_DOWNLOAD); then send
        ``start(next_download)`` until ``next_download`` is None."""
        if self._st.pending is not None:
            outstanding = self._st.pending.kind.value
            raise TerminalProtocolError(self._st.state, which.value, f"{outstanding} is still outstanding")
        self._st.ic.begin(which)

    def abandon_download(self) -> None:
        """Give up the download under way (its request failed); what was downloaded before stays."""
        self._st.ic.abandon()

    @property
    def next_download(self) -> Kind | None:
        """The next request of the download under way (None: none under way)."""
        return self._st.ic.next_kind

    @property
    def ic(self) -> IcData:
        """The CA keys, IC parameters and blacklist downloaded: read them, do not change them."""
        return self._st.ic

    @property
    def advice_due(self) -> Transaction | None:
        """The transaction whose script result advice (0620) is owed."""
        return self._st.ledger.advice_due

    # -- answers -------------------------------------------------------------------------

    def fail_pending(self, failure: Failure, detail: str = "") -> Outcome:
        """The shell's report that the outstanding request got no answer (timeout, reset...)."""
        st = self._st
        pending = st.take_pending("fail_pending")
        if pending.kind in answers.DOWNLOAD_KINDS:
            st.ic.abandon()
        if pending.seq is not None:
            batchbook.book_no_answer(st, pending, failure)
        return Outcome(kind=pending.kind, response_code=None, failure=failure, detail=detail)

    def receive(self, data: bytes | Frame) -> Outcome:
        """Judge the answer to the outstanding request (a whole wire frame, or a decoded Frame)."""
        st = self._st
        pending = st.take_pending("receive")
        outcome, message = answers.judge(st, pending, data)
        if pending.chip is not None and pending.seq is not None:
            return batchbook.book_chip(st, pending, outcome, message)
        if pending.seq is not None or pending.kind in (Kind.SETTLEMENT, Kind.IC_UPLOAD_END):
            outcome = batchbook.book(st, pending, outcome, message)
        return outcome
