"""What a virtual terminal holds between exchanges, and the small moves of its state.

``VirtualTerminal`` (terminals_sim/terminal.py) is the public face; building requests
(terminals_sim/requests.py), judging answers (terminals_sim/answers.py) and keeping the batch
(terminals_sim/batchbook.py) all work on one ``TerminalState``. The state table itself is
terminals_sim/transitions.py. Keys and the password never appear in a repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from specs.catalogue import DEFAULT_DIALECT, Catalogue, MessageKind
from specs.catalogue_loader import catalogue_for
from specs.codec import Codec, FieldSlot, codec_for
from specs.framing import CupHeader, Tpdu
from specs.keylayout import KeyLayout
from terminals_sim.chipcard import FirstAc
from terminals_sim.financial import CardProfile, Ledger, ReversalReason, Transaction
from terminals_sim.icload import IcData
from terminals_sim.outcome import Kind
from terminals_sim.transitions import TRANSITIONS, State, TerminalProtocolError, Transition
from terminals_sim.workingkeys import KeyMode, WorkingKeys

DEFAULT_TPDU = Tpdu.from_hex("6000000000")
DEFAULT_HEADER = CupHeader.from_hex("603100000000")
MAX_STAN = 999_999


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
class Pending:
    """The one request outstanding: what its answer must look like and what it concerns."""

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
    chip: FirstAc | None = None  # a chip transaction: what the card said before the host answered
    body: bytes = b""  # the request's body as sent (a mirrored answer is the same bytes)


@dataclass(frozen=True, slots=True)
class Reusable:
    """A request that differs from the last of its kind only in its STAN (no MAC, nothing
    added): the codec's output kept, field 11 filled in afresh by the codec each time."""

    slot: FieldSlot
    frame_head: bytes  # length header, TPDU and UnionPay header
    pending: Pending


class TerminalState:
    """One terminal's protocol state. Mutable; one owner drives it (through VirtualTerminal)."""

    __slots__ = (
        "batch",
        "catalogue",
        "codec",
        "ic",
        "keys",
        "last_transaction",
        "ledger",
        "parameters",
        "password",
        "pending",
        "profile",
        "reusable",
        "stan",
        "state",
    )

    def __init__(self, profile: TerminalProfile) -> None:
        self.profile = profile
        self.codec: Codec = codec_for(profile.dialect)
        self.catalogue: Catalogue = catalogue_for(self.codec.dialect)
        self.state = State.SIGNED_OUT
        self.pending: Pending | None = None
        self.stan = profile.first_stan - 1  # the last STAN used; 0 before the first request
        self.batch = profile.batch
        self.keys: WorkingKeys | None = None
        self.password = profile.password
        self.parameters: bytes = b""  # field 62 of the last parameter download
        self.ledger = Ledger()
        # The record of the last financial request answered or given up on.
        self.last_transaction: Transaction | None = None
        self.ic = IcData()  # CA keys, IC parameters and blacklist downloaded, and a download under way
        # Requests that differ from the last of their kind only in the STAN (terminals_sim/requests.py).
        self.reusable: dict[tuple[Kind, str, str | None], Reusable] = {}

    def __repr__(self) -> str:
        return f"TerminalState({self.profile.merchant}/{self.profile.terminal} state={self.state.value})"

    def entry(self, kind: Kind) -> MessageKind:
        """The catalogue's entry for ``kind``; a kind it lacks is our caller's mistake."""
        entry = self.catalogue.get(kind.value)
        if entry is None:
            raise TerminalProtocolError(
                self.state, kind.value, f"not a request of the {self.catalogue.name} message catalogue"
            )
        return entry

    def check_allowed(self, kind: Kind) -> Transition:
        self.entry(kind)
        if self.pending is not None:
            raise TerminalProtocolError(self.state, kind.value, f"{self.pending.kind.value} is still outstanding")
        transition = TRANSITIONS.get((self.state, kind))
        if transition is None:
            raise TerminalProtocolError(self.state, kind.value, "not allowed in this state")
        return transition

    def require_keys(self) -> WorkingKeys:
        if self.keys is None:
            raise TerminalProtocolError(self.state, "use working keys", "the terminal holds no working keys")
        return self.keys

    def next_stan(self) -> str:
        # 999999 wraps to 000001: 000000 is not a STAN terminals send.
        self.stan = 1 if self.stan >= MAX_STAN else self.stan + 1
        return f"{self.stan:06d}"

    def take_pending(self, event: str) -> Pending:
        pending = self.pending
        if pending is None:
            raise TerminalProtocolError(self.state, event, "no request is outstanding")
        self.pending = None
        return pending

    def drop_keys(self) -> None:
        self.keys = None
        self.state = State.SIGNED_OUT

    def enter(self, state: State) -> None:
        self.state = state
        if state is State.SIGNED_OUT:
            self.keys = None
