"""The virtual terminal speaking iso87-binary against hand-built answers, no sockets: what the
iso87 catalogue says (docs/iso87.md) and nothing of the UnionPay session."""

from __future__ import annotations

import pytest

from specs.codec import codec_for
from specs.framing import decode_frame, encode_frame
from specs.message import Message
from specs.testcards import GOOD_CARD
from terminals_sim.financial import CardProfile
from terminals_sim.outcome import Failure, Kind
from terminals_sim.terminal import TerminalProfile, TerminalProtocolError, VirtualTerminal
from terminals_sim.transitions import State

CODEC = codec_for("iso87-binary")
FMT = CODEC.dialect.framing
MERCHANT, TERMINAL = "848100058126002", "00000764"
CARD = CardProfile.of(GOOD_CARD)


def terminal() -> VirtualTerminal:
    return VirtualTerminal(TerminalProfile(MERCHANT, TERMINAL, bytes(16), card=CARD, dialect="iso87-binary"))


def request_of(frame: bytes) -> Message:
    return CODEC.decode(decode_frame(FMT, frame).body)


def answer(mti: str, fields: dict[int, str]) -> bytes:
    return encode_frame(FMT, CODEC.encode(CODEC.message(mti, fields)))


def signed_on() -> VirtualTerminal:
    t = terminal()
    req = request_of(t.start_signin())
    assert t.receive(answer("0810", {11: req[11], 39: "00", 70: "001"})).ok
    return t


def test_sign_on_is_0800_with_70_001_and_no_unionpay_fields() -> None:
    t = terminal()
    frame = t.start_signin()
    assert len(frame) == int.from_bytes(frame[:2], "big") + 2  # 2-byte length, no TPDU or header
    req = request_of(frame)
    assert req.mti == "0800"
    assert req.unmasked_fields() == {11: "000001", 41: TERMINAL, 42: MERCHANT, 70: "001"}
    outcome = t.receive(answer("0810", {11: "000001", 39: "00", 70: "001"}))
    assert outcome.ok and t.state is State.SIGNED_IN and t.working_keys is None


def test_an_answer_naming_another_function_is_refused() -> None:
    t = terminal()
    t.start_signin()
    outcome = t.receive(answer("0810", {11: "000001", 39: "00", 70: "301"}))
    assert outcome.failure is Failure.PROTOCOL and "70" in outcome.detail


def test_echo_and_sign_off() -> None:
    t = signed_on()
    req = request_of(t.start_echo())
    assert (req.mti, req[70]) == ("0800", "301")
    assert t.receive(answer("0810", {11: req[11], 39: "00", 70: "301"})).ok
    req = request_of(t.start_signoff())
    assert req[70] == "002"
    assert t.receive(answer("0810", {11: req[11], 39: "00", 70: "002"})).ok
    assert t.state is State.SIGNED_OUT


def test_authorisation_request_carries_the_card_and_no_pin_mac_or_60() -> None:
    t = signed_on()
    req = request_of(t.start_transaction(Kind.AUTHORISATION, 8800))
    assert req.mti == "0100"
    assert req.unmasked_fields() == {
        2: "6222021234567890123",
        3: "000000",
        4: "000000008800",
        11: "000002",
        14: "3012",
        22: "022",
        25: "00",
        35: "6222021234567890123=301210100000",  # ASCII track 2: '=' separates
        41: TERMINAL,
        42: MERCHANT,
        49: "156",
    }


def test_an_approved_authorisation_is_not_kept_and_a_lost_one_owes_nothing() -> None:
    t = signed_on()
    req = request_of(t.start_transaction(Kind.AUTHORISATION, 8800))
    echoed = {n: req[n] for n in (3, 4, 11, 41, 42)}
    outcome = t.receive(answer("0110", {**echoed, 38: "123456", 39: "00"}))
    assert outcome.ok and len(t.ledger) == 0
    assert t.last_transaction is not None and t.last_transaction.auth_code == "123456"
    t.start_transaction(Kind.AUTHORISATION, 100)
    t.fail_pending(Failure.TIMEOUT)
    assert t.reversal_due is None and len(t.ledger) == 0


def test_an_authorisation_answered_for_another_amount_is_a_protocol_failure() -> None:
    t = signed_on()
    req = request_of(t.start_transaction(Kind.AUTHORISATION, 8800))
    echoed = {n: req[n] for n in (3, 11, 41, 42)}
    outcome = t.receive(answer("0110", {**echoed, 4: "000000008900", 39: "00"}))
    assert outcome.failure is Failure.PROTOCOL and "4 (amount)" in outcome.detail


@pytest.mark.parametrize("kind", [Kind.OPERATOR_SIGNIN, Kind.PURCHASE, Kind.PARAM_DOWNLOAD])
def test_what_the_iso87_catalogue_lacks_is_a_named_protocol_error(kind: Kind) -> None:
    t = signed_on()
    with pytest.raises(TerminalProtocolError, match="not a request of the iso87 message catalogue"):
        t.start(kind)
