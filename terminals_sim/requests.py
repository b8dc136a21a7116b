"""Building a virtual terminal's request frames.

What each request is on the wire (MTI, 3, 60 or 70, MAC, the fields its answer must echo and
the field 62 layouts) is the dialect's message catalogue (specs/catalogue.py); this module adds
what the terminal knows: its ids and STAN, the operator's password block, the card's fields
and PIN block, the original a void, refund, completion, reversal or batch upload refers to.
Every function records the request as the state's ``pending`` one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from hsm_sim.ciphers import tdes_ecb_encrypt
from hsm_sim.mac import cup_pos_mac
from hsm_sim.pinblock import PinBlockFormat, build_pinblock
from specs.catalogue import Skeleton, echo_value, mac_input
from specs.framing import encode_frame
from specs.message import Message
from terminals_sim import chipflow
from terminals_sim.chipcard import FirstAc
from terminals_sim.financial import (
    CURRENCY,
    FAMILY,
    PIN_CAPTURE,
    POS_CONDITION,
    SHAPES,
    TRANSACTION_KINDS,
    CardProfile,
    ChipRecord,
    OriginalRef,
    ReversalReason,
    Transaction,
    card_fields,
    encrypted_pin_block,
    original_fields,
    security_control,
)
from terminals_sim.outcome import Kind
from terminals_sim.terminalstate import MAX_STAN, Pending, Reusable, TerminalState
from terminals_sim.transitions import TerminalProtocolError
from terminals_sim.workingkeys import KeyMode

# The account-number field of an operator password block: the PAN field all zeros.
_NO_PAN = "000000000000"


def build(
    st: TerminalState,
    kind: Kind,
    extra: dict[int, str],
    *,
    key_mode: KeyMode | None = None,
    new_password: str | None = None,
    stan: str | None = None,
    original: Skeleton | None = None,
    code: str | None = None,
    subfields: Mapping[str, str] | None = None,
    batch: str | None = None,
) -> bytes:
    """The frame of one request. ``stan`` repeats an earlier request's 11 and ``original`` its
    skeleton (reversal, upload); ``code`` picks one of the kind's network codes, ``subfields``
    adds 60.4/60.5 (how a chip card was read), ``batch`` is another batch's 60.2."""
    st.check_allowed(kind)
    entry = st.entry(kind)
    if key_mode is not None:
        code = key_mode.value
    reusable = not (entry.maced or extra or stan or original or new_password or subfields or batch)
    if reusable and (cached := st.reusable.get((kind, st.batch, code))) is not None:
        return _restart(st, cached)
    skeleton = st.catalogue.request(
        kind.value, batch=batch or st.batch, code=code, original=original, subfields=subfields
    )
    stan = stan or st.next_stan()
    profile = st.profile
    fields = {11: stan, 41: profile.terminal, 42: profile.merchant, **skeleton.fields, **extra}
    codec = st.codec
    # encode() normalises every value itself; codec.message() would do it a second time.
    message = Message.build(codec.dialect, skeleton.mti, fields)
    if entry.maced:
        mac = cup_pos_mac(st.require_keys().mak, mac_input(codec, message))
        message = message.replace(f64=mac.hex().upper())
    body = codec.encode(message)
    frame = encode_frame_for(st, body)
    echo = {item: value for item in entry.echo if (value := echo_value(message, item)) is not None}
    layout = entry.layout(code) if key_mode is not None and code is not None else None
    st.pending = Pending(
        kind, skeleton.mti, entry.response_mti, stan, echo, entry.maced, key_mode, layout, new_password, body=body
    )
    if reusable:
        head = frame[: len(frame) - len(body)]
        st.reusable[(kind, st.batch, code)] = Reusable(codec.slot(message, 11), head, st.pending)
    return frame


def _restart(st: TerminalState, cached: Reusable) -> bytes:
    """The cached request with the next STAN (``build`` made the first of them)."""
    stan = st.next_stan()
    body = cached.slot.fill(stan)
    p = cached.pending
    echo = {**p.echo, "11": stan} if "11" in p.echo else p.echo
    st.pending = Pending(p.kind, p.mti, p.answer_mti, stan, echo, p.maced, p.key_mode, p.layout, body=body)
    return cached.frame_head + body


def encode_frame_for(st: TerminalState, body: bytes) -> bytes:
    profile = st.profile
    return encode_frame(st.codec.dialect.framing, body, tpdu=profile.tpdu, header=profile.header)


# -- network management and operators ---------------------------------------------------------


def signin(st: TerminalState, mode: KeyMode | None) -> bytes:
    """Terminal sign-in (UnionPay 0800, 60.3 = 001/003/004); ``mode`` overrides the profile's.
    A sign-in without field 62 layouts (iso87 sign-on) carries no key mode and no operator."""
    exchanges_keys = bool(st.entry(Kind.SIGNIN).key_layouts)
    extra = {63: _operator_code(st)} if exchanges_keys else {}
    return build(st, Kind.SIGNIN, extra, key_mode=(mode or st.profile.key_mode) if exchanges_keys else None)


def operator_signin(st: TerminalState, password: str | None) -> bytes:
    st.check_allowed(Kind.OPERATOR_SIGNIN)
    block = _password_block(st, st.password if password is None else password)
    return build(st, Kind.OPERATOR_SIGNIN, {52: block, 53: _security_control(st), 63: _operator_code(st)})


def operator_signout(st: TerminalState) -> bytes:
    return build(st, Kind.OPERATOR_SIGNOUT, {63: _operator_code(st)})


def password_change(st: TerminalState, new_password: str) -> bytes:
    st.check_allowed(Kind.PASSWORD_CHANGE)
    if not (4 <= len(new_password) <= 12 and new_password.isdigit()):
        raise ValueError("operator password must be 4 to 12 digits")
    fields = {
        52: _password_block(st, st.password),
        53: _security_control(st),
        62: _password_block(st, new_password),
        63: _operator_code(st),
    }
    return build(st, Kind.PASSWORD_CHANGE, fields, new_password=new_password)


def _operator_code(st: TerminalState) -> str:
    return st.profile.operator.zfill(3)


def _security_control(st: TerminalState) -> str:
    # 53.1 = 1: PIN block without PAN; 53.2 = 6 double-length, 0 single-length PIK.
    single = len(st.require_keys().pik) == 8
    return "1000000000000000" if single else "1600000000000000"


def _password_block(st: TerminalState, password: str) -> str:
    clear = build_pinblock(PinBlockFormat.ISO0, password, _NO_PAN)
    return tdes_ecb_encrypt(st.require_keys().pik, clear).hex().upper()


# -- financial requests (docs/financial.md) -----------------------------------------------------


def transaction(
    st: TerminalState,
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
    check_financial(st, kind)
    ref = _original(st, kind, original) if shape.original is not None else None
    in_batch = _ledger_record(st, ref)
    card = card or (in_batch.card if in_batch else None) or st.profile.card
    if card is None:
        raise TerminalProtocolError(st.state, kind.value, "no card given and the profile has none")
    amount = _amount(FAMILY[kind], amount_cents, ref, in_batch)
    with_pin = shape.pin_by_default if with_pin is None else with_pin
    separator = st.codec.dialect.track_separator
    fields = {25: POS_CONDITION, 49: CURRENCY, **card_fields(card, with_pin, separator)}
    if amount:
        fields[4] = f"{amount:012d}"
    if with_pin:
        typed = card.pin if pin is None else pin
        if not typed:
            raise ValueError(f"card {card.masked_pan} has no PIN to enter")
        pik = st.require_keys().pik
        fields.update({26: PIN_CAPTURE, 52: encrypted_pin_block(pik, typed, card.pan), 53: security_control(pik)})
    if ref is not None:
        fields.update(original_fields(FAMILY[kind], ref))
    if stan is not None and not 1 <= stan <= MAX_STAN:
        raise ValueError(f"STAN must be 1..{MAX_STAN}")
    entry = st.entry(kind)
    icc = st.catalogue.icc
    if entry.icc is not None and card.chip is None:
        raise TerminalProtocolError(st.state, kind.value, f"card {card.masked_pan} has no chip")
    stan_text = f"{stan:06d}" if stan is not None else st.next_stan()
    subfields: dict[str, str] | None = None
    first: FirstAc | None = None
    chip: ChipRecord | None = None
    if entry.icc is not None and icc is not None and card.chip is not None:
        subfields = chipflow.read_subfields(icc)
        fields[22] = f"{entry.entry_modes[0]}{1 if with_pin else 2}"
        fields[23] = card.chip.pan_sequence
        fields[55], first, objects = chipflow.sale(
            icc, entry, FAMILY[kind], card.chip, amount, with_pin, st.profile.terminal, stan_text
        )
        chip = ChipRecord(objects=objects, subfields=subfields, entry_mode=fields[22])
    elif card.fallback and icc is not None:
        subfields = chipflow.fallback_subfields(icc)
    frame = build(st, kind, fields, stan=stan_text, subfields=subfields)
    assert st.pending is not None
    txn = st.ledger.add(
        kind=kind,
        stan=st.pending.stan,
        batch=st.batch,
        amount_cents=amount,
        card=card,
        with_pin=with_pin,
        original=ref,
        chip=chip,
    )
    st.pending = replace(st.pending, seq=txn.seq, chip=first)
    return frame


def reversal(st: TerminalState, txn: Transaction | None = None, reason: ReversalReason | None = None) -> bytes:
    """0400 for the reversal that is due, or (``txn``) of any transaction on purpose.

    It repeats the original's 2/35, 3, 4, 11, 22, 25, 49 and 60, with 39 = the reason.
    """
    if txn is None:
        due = st.ledger.reversal_due
        if due is None:
            raise TerminalProtocolError(st.state, Kind.REVERSAL.value, "no reversal is due")
        txn, due_reason = due
        reason = reason or due_reason
    reason = reason or ReversalReason.OTHER
    kind = Kind.CHIP_REVERSAL if txn.chip is not None else Kind.REVERSAL
    st.check_allowed(kind)
    card = card_fields(txn.card, txn.with_pin, st.codec.dialect.track_separator)
    card.pop(14)
    fields = {25: POS_CONDITION, 49: CURRENCY, 39: reason.value, **card}
    if txn.amount_cents:
        fields[4] = f"{txn.amount_cents:012d}"
    icc = st.catalogue.icc
    if txn.chip is not None and icc is not None:
        assert txn.card.chip is not None
        fields |= {22: txn.chip.entry_mode, 23: txn.card.chip.pan_sequence, 55: chipflow.reversal_55(icc, txn)}
    frame = build(st, kind, fields, stan=txn.stan, original=skeleton_of(st, txn))
    assert st.pending is not None
    st.pending = replace(st.pending, seq=txn.seq, reason=reason)
    return frame


def settlement(st: TerminalState) -> bytes:
    """0500/201 with the open batch's totals in 48 (flag 0)."""
    check_financial(st, Kind.SETTLEMENT)
    totals = st.ledger.totals(st.batch)
    return build(st, Kind.SETTLEMENT, {48: totals.field48("0"), 49: CURRENCY})


def batch_upload(st: TerminalState) -> bytes:
    """The next batch upload item: 0320/201 for a transaction after a settlement answered 95;
    for a chip one its IC record (203/205 TC, 204/206 after a failed ARPC); then the end (202/207)."""
    item = st.ledger.next_upload_item
    if item is None:
        raise TerminalProtocolError(st.state, Kind.BATCH_UPLOAD.value, "no batch upload is under way")
    txn, code = item
    icc = st.catalogue.icc
    if txn is None:
        check_financial(st, Kind.IC_UPLOAD_END)
        return build(st, Kind.IC_UPLOAD_END, {}, code=code)
    if code == "201" or txn.chip is None or icc is None:
        check_financial(st, Kind.BATCH_UPLOAD)
        fields = {2: txn.card.pan, 4: f"{txn.amount_cents:012d}", 48: "00"}
        frame = build(st, Kind.BATCH_UPLOAD, fields, stan=txn.stan, original=skeleton_of(st, txn))
    else:
        check_financial(st, Kind.IC_UPLOAD)
        assert txn.card.chip is not None
        fields = {
            2: txn.card.pan,
            4: f"{txn.amount_cents:012d}",
            22: txn.chip.entry_mode,
            23: txn.card.chip.pan_sequence,
            55: chipflow.upload_55(icc, txn),
            62: chipflow.upload_62(txn),
        }
        subfields = chipflow.read_subfields(icc)
        frame = build(st, Kind.IC_UPLOAD, fields, stan=txn.stan, code=code, subfields=subfields, batch=txn.batch)
    assert st.pending is not None
    st.pending = replace(st.pending, seq=txn.seq)
    return frame


def script_advice(st: TerminalState) -> bytes:
    """0620/951 with the results (DF31) of the issuer scripts an answer carried (docs/chip.md)."""
    txn = st.ledger.advice_due
    icc = st.catalogue.icc
    if txn is None or txn.chip is None or icc is None or txn.card.chip is None:
        raise TerminalProtocolError(st.state, Kind.SCRIPT_ADVICE.value, "no script result advice is owed")
    check_financial(st, Kind.SCRIPT_ADVICE)
    fields = {
        2: txn.card.pan,
        4: f"{txn.amount_cents:012d}",
        22: txn.chip.entry_mode,
        23: txn.card.chip.pan_sequence,
        25: POS_CONDITION,
        49: CURRENCY,
        55: chipflow.advice_55(icc, txn),
        61: txn.batch + txn.stan + txn.date,
    }
    if txn.rrn:
        fields[37] = txn.rrn
    if txn.auth_code:
        fields[38] = txn.auth_code
    frame = build(st, Kind.SCRIPT_ADVICE, fields, original=skeleton_of(st, txn), subfields=txn.chip.subfields)
    assert st.pending is not None
    st.pending = replace(st.pending, seq=txn.seq)
    return frame


def download(st: TerminalState, kind: Kind) -> bytes:
    """The next request of the IC download under way (terminals_sim/icload.py)."""
    if st.ic.next_kind is not kind:
        raise TerminalProtocolError(st.state, kind.value, f"the download under way asks for {st.ic.next_kind}")
    field62 = st.ic.request_62()
    return build(st, kind, {62: field62.hex().upper()} if field62 is not None else {})


def skeleton_of(st: TerminalState, txn: Transaction) -> Skeleton:
    """What the request that made ``txn`` started as (its MTI, 3 and 60)."""
    subfields = txn.chip.subfields if txn.chip is not None else None
    return st.catalogue.request(txn.kind.value, batch=txn.batch, subfields=subfields)


def check_financial(st: TerminalState, kind: Kind) -> None:
    st.check_allowed(kind)
    due = st.ledger.reversal_due
    if due is not None:
        raise TerminalProtocolError(
            st.state, kind.value, f"the reversal of STAN {due[0].stan} is due: send start_reversal() first"
        )
    if kind in TRANSACTION_KINDS and st.ledger.next_upload_item is not None:
        raise TerminalProtocolError(
            st.state, kind.value, "a batch upload is under way: finish it (start_batch_upload()) first"
        )


def _original(st: TerminalState, kind: Kind, given: Transaction | OriginalRef | None) -> OriginalRef:
    if isinstance(given, OriginalRef):
        return given
    if isinstance(given, Transaction):
        return given.as_original()
    found = st.ledger.latest_original(kind)
    if found is None:
        want = SHAPES[kind].original
        assert want is not None
        raise TerminalProtocolError(st.state, kind.value, f"no approved {want.value} in the batch to refer to")
    return found.as_original()


def _ledger_record(st: TerminalState, ref: OriginalRef | None) -> Transaction | None:
    if ref is None or ref.seq is None:
        return None
    try:
        return st.ledger.get(ref.seq)
    except KeyError:
        return None


def _amount(kind: Kind, given: int | None, ref: OriginalRef | None, record: Transaction | None) -> int:
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
