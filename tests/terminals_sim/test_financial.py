"""The virtual terminal's financial requests against hand-built answers, no sockets.

Expected values are worked out independently of hsm_sim:

- PIN blocks, ISO 9564 format 0 by hand: PIN 123456 with PAN 6222021234567890123 (12 digits
  before the check digit: 123456789012) is 06123456FFFFFFFF xor 0000123456789012 =
  06122662A9876FED; under PIK 2222... (``openssl enc -des-ede3 -nopad -K 2222...22``) that is
  0B1099C8B3051753. PIN 111111 with PAN 6212340000000001 (234000000000) is 06111111FFFFFFFF
  xor 0000234000000000 = 06113251FFFFFFFF.
- MACs with ``cryptography`` directly, following the UnionPay POS ECB MAC as
  docs/cup-pos.md describes it.
- Settlement totals for the sample in ``test_settlement_totals_from_a_hand_worked_batch``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from specs.codec import codec_for
from specs.framing import CupHeader, Tpdu, decode_frame, encode_frame
from specs.message import Message
from specs.testcards import (
    BLOCKED_CARD,
    DEFAULT_TEST_CARDS,
    EXPIRED_CARD,
    GOOD_CARD,
    LOW_BALANCE_CARD,
    SHORT_PIN_CARD,
    SIXTEEN_DIGIT_CARD,
    CardStatus,
    TestCard,
    card_by_pan,
)
from terminals_sim.financial import (
    CardProfile,
    EntryMode,
    ReversalReason,
    Totals,
    TxnStatus,
    next_batch,
    parse_amount,
    parse_balance,
    parse_field48,
)
from terminals_sim.outcome import Failure, Kind
from terminals_sim.terminal import TerminalProtocolError, VirtualTerminal
from terminals_sim.workingkeys import KeyMode
from tests.terminals_sim.fakehost import ANSWER_MTI, FakeHost
from tests.terminals_sim.test_terminal import F62, profile, request_of

CODEC = codec_for("cup-pos")
FMT = CODEC.dialect.framing
PIK = bytes.fromhex("22" * 16)
MAK = bytes.fromhex("33" * 8)
CARD = CardProfile.of(GOOD_CARD)
PIN_BLOCK_123456 = "0B1099C8B3051753"


def _tdes(key: bytes, block: bytes, *, decrypt: bool = False) -> bytes:
    key24 = key * 3 if len(key) == 8 else key + key[:8]
    cipher = Cipher(TripleDES(key24), modes.ECB())
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(block) + ctx.finalize()


def cup_mac(mak: bytes, data: bytes) -> str:
    """Field 64 as docs/cup-pos.md ("The MAC") describes it, written again here from that text."""
    data += bytes(-len(data) % 8)
    acc = bytes(8)
    for i in range(0, len(data), 8):
        acc = bytes(a ^ b for a, b in zip(acc, data[i:i + 8], strict=True))
    text = acc.hex().upper().encode()
    first = _tdes(mak, text[:8])
    second = _tdes(mak, bytes(a ^ b for a, b in zip(first, text[8:], strict=True)))
    return second.hex().upper().encode()[:8].hex().upper()


def signed_in(mode: KeyMode = KeyMode.DOUBLE, **kw: object) -> VirtualTerminal:
    t = VirtualTerminal(profile(key_mode=mode, **{"card": CARD, **kw}))
    req = request_of(t.start_signin())
    body = CODEC.encode(CODEC.message("0810", {11: req[11], 41: req[41], 42: req[42], 39: "00",
                                                60: "00000123" + mode.value, 62: F62[mode]}))
    assert t.receive(encode_frame(FMT, body, tpdu=Tpdu.from_hex("6000000000"), header=CupHeader())).ok
    return t


def reply(request: Message, code: str = "00", *, mac: str | None = None, **fields: str) -> bytes:
    """The host's answer: 3/4/11/41/42/60 echoed, 39, the given fields, and a right MAC."""
    out = {n: request[n] for n in (3, 4, 11, 41, 42, 60) if n in request}
    out[39] = code
    out.update({int(k.removeprefix("f")): v for k, v in fields.items()})
    out[64] = "0" * 16
    mti = ANSWER_MTI[request.mti]
    body = CODEC.encode(CODEC.message(mti, out))
    out[64] = mac or cup_mac(MAK, body[:-8])
    body = CODEC.encode(CODEC.message(mti, out))
    return encode_frame(FMT, body, tpdu=Tpdu.from_hex("6000000000"), header=CupHeader())


def approve(t: VirtualTerminal, frame: bytes, n: int, **fields: str) -> Message:
    """Answer ``frame`` 00 with RRN/auth code/date derived from ``n``; returns the request."""
    req = request_of(frame)
    outcome = t.receive(reply(req, f37=f"{n:012d}", f38=f"AUTH{n:02d}", f13="0612", **fields))
    assert outcome.ok, outcome
    return req


def request_mac_verifies(frame: bytes) -> bool:
    body = decode_frame(FMT, frame).body
    return request_of(frame)[64] == cup_mac(MAK, body[:-8])


# -- requests -----------------------------------------------------------------------------


def test_purchase_request_carries_the_contract_fields_pin_block_and_mac() -> None:
    t = signed_in()
    frame = t.start_purchase(8800)
    req = request_of(frame)
    assert req.mti == "0200"
    assert req.unmasked_fields() == {
        2: "6222021234567890123",
        3: "000000",
        4: "000000008800",
        11: "000002",
        14: "3012",
        22: "021",
        25: "00",
        26: "12",
        35: "6222021234567890123D301210100000",
        41: "00000764",
        42: "848100058126002",
        49: "156",
        52: PIN_BLOCK_123456,
        53: "2600000000000000",
        60: "22000123000",
        64: req[64],
    }
    assert request_mac_verifies(frame)


def test_single_length_keys_say_so_in_53() -> None:
    t = signed_in(KeyMode.SINGLE)
    req = request_of(t.start_purchase(100))
    # PIK 2222222222222222 single DES gives the same ciphertext as the double key 2222...22.
    assert req[52] == PIN_BLOCK_123456
    assert req[53] == "2000000000000000"


def test_pin_block_of_a_16_digit_card_decrypts_to_the_hand_worked_block() -> None:
    t = signed_in()
    req = request_of(t.start_purchase(100, CardProfile.of(SIXTEEN_DIGIT_CARD)))
    assert _tdes(PIK, bytes.fromhex(req[52]), decrypt=True).hex().upper() == "06113251FFFFFFFF"
    assert req[35] == "6212340000000001D301210100000"


def test_manual_entry_sends_no_track_and_no_pin_says_22_ends_in_2() -> None:
    t = signed_in()
    manual = CardProfile(CARD.pan, CARD.expiry, entry=EntryMode.MANUAL)
    req = request_of(t.start_purchase(100, manual, with_pin=False))
    assert req[22] == "012"
    assert {2, 14} <= set(req) and not {35, 52, 53, 26} & set(req)


def test_balance_inquiry_has_no_amount_and_reads_54() -> None:
    t = signed_in()
    req = request_of(t.start_balance())
    assert (req[3], req.sub("60.1"), 4 in req, req[52]) == ("310000", "01", False, PIN_BLOCK_123456)
    outcome = t.receive(reply(req, f54="1002156C000000123456"))
    assert outcome.ok and outcome.balance_cents == 123456
    assert len(t.ledger) == 0  # an inquiry is not part of the batch


def test_balance_inquiry_without_54_is_a_protocol_failure() -> None:
    t = signed_in()
    outcome = t.receive(reply(request_of(t.start_balance())))
    assert outcome.failure is Failure.PROTOCOL and "54" in outcome.detail


def test_void_repeats_the_original_amount_rrn_batch_and_stan() -> None:
    t = signed_in()
    purchase = approve(t, t.start_purchase(1250), 7)
    frame = t.start_void()
    req = request_of(frame)
    assert (req.mti, req[3], req.sub("60.1")) == ("0200", "200000", "23")
    assert req[4] == "000000001250"
    assert req[37] == "000000000007"
    assert req[61] == "000123" + purchase[11]
    assert 52 not in req and req[22] == "022"
    assert request_mac_verifies(frame)
    approve(t, frame, 8)
    assert [x.status for x in t.ledger] == [TxnStatus.VOIDED, TxnStatus.APPROVED]


def test_void_without_a_purchase_is_a_named_protocol_error() -> None:
    t = signed_in()
    with pytest.raises(TerminalProtocolError, match="no approved purchase"):
        t.start_void()
    assert t.awaiting is None


def test_refund_is_0220_with_the_original_date_and_defaults_to_what_is_left() -> None:
    t = signed_in()
    purchase = approve(t, t.start_purchase(8800), 1)
    approve(t, t.start_refund(2000), 2)
    req = request_of(t.start_refund())
    assert (req.mti, req[3], req.sub("60.1")) == ("0220", "200000", "25")
    assert req[4] == "000000006800"
    assert req[61] == "000123" + purchase[11] + "0612"
    assert req[37] == "000000000001"


def test_completion_carries_the_preauth_auth_code() -> None:
    t = signed_in()
    pre = request_of(t.start_preauth(30000))
    assert (pre.mti, pre[3], pre.sub("60.1")) == ("0100", "030000", "10")
    t.receive(reply(pre, f37="000000000003", f38="AUTH03", f13="0611"))
    req = request_of(t.start_completion(28000))
    assert (req.mti, req[3], req.sub("60.1"), req[4]) == ("0200", "000000", "20", "000000028000")
    assert req[38] == "AUTH03"
    assert req[61] == "000123" + pre[11] + "0611"


# -- reversals ----------------------------------------------------------------------------


def test_a_timed_out_purchase_is_reversed_before_anything_else() -> None:
    t = signed_in()
    purchase = request_of(t.start_purchase(4500))
    outcome = t.fail_pending(Failure.TIMEOUT, "no answer within 5 s")
    assert outcome.failure is Failure.TIMEOUT
    due = t.reversal_due
    assert due is not None and due.stan == purchase[11] and due.status is TxnStatus.UNKNOWN
    with pytest.raises(TerminalProtocolError, match="reversal of STAN"):
        t.start_purchase(100)
    with pytest.raises(TerminalProtocolError, match="reversal of STAN"):
        t.start_balance()
    with pytest.raises(TerminalProtocolError, match="reversal of STAN"):
        t.start_settlement()
    frame = t.start_reversal()
    req = request_of(frame)
    assert req.mti == "0400"
    # the original's 2/35, 3, 4, 11, 22, 25, 49, 60; 39 = 98 for no answer
    for n in (2, 3, 4, 11, 22, 25, 35, 49, 60):
        assert req[n] == purchase[n], n
    assert req[39] == "98"
    assert not {14, 26, 52, 53} & set(req)
    assert request_mac_verifies(frame)
    assert t.receive(reply(req)).ok
    assert t.reversal_due is None
    assert [x.status for x in t.ledger] == [TxnStatus.REVERSED]
    t.start_balance()  # allowed again


def test_a_reversal_is_retried_until_answered() -> None:
    t = signed_in()
    t.start_purchase(4500)
    t.fail_pending(Failure.RESET)
    t.start_reversal()
    t.fail_pending(Failure.TIMEOUT)
    assert t.reversal_due is not None
    req = request_of(t.start_reversal())
    assert t.receive(reply(req, "96")).response_code == "96"
    assert t.reversal_due is not None  # a system error is no answer to a reversal
    req = request_of(t.start_reversal())
    assert t.receive(reply(req, "25")).response_code == "25"  # the host has nothing to undo
    assert t.reversal_due is None


def test_an_answer_with_a_bad_mac_is_reversed_with_reason_06() -> None:
    t = signed_in()
    req = request_of(t.start_purchase(4500))
    outcome = t.receive(reply(req, mac="0000000000000000", f37="000000000001"))
    assert outcome.failure is Failure.BAD_MAC
    rev = request_of(t.start_reversal())
    assert rev[39] == ReversalReason.OTHER.value == "06"


def test_an_answer_for_another_amount_is_not_trusted() -> None:
    t = signed_in()
    req = request_of(t.start_purchase(4500))
    outcome = t.receive(reply(req, f4="000000004600"))
    assert outcome.failure is Failure.PROTOCOL and "4 (amount)" in outcome.detail
    assert t.reversal_due is not None


def test_nothing_is_reversed_when_nothing_left_or_nothing_moved() -> None:
    t = signed_in()
    t.start_purchase(4500)
    t.fail_pending(Failure.REFUSED)  # the connection never opened
    t.start_balance()
    t.fail_pending(Failure.TIMEOUT)  # a balance inquiry moves no money
    req = request_of(t.start_purchase(4500))
    t.receive(reply(req, "55"))  # a decline is an answer
    assert t.reversal_due is None and len(t.ledger) == 0


def test_reversing_an_approved_void_restores_the_purchase() -> None:
    t = signed_in()
    approve(t, t.start_purchase(1250), 1)
    approve(t, t.start_void(), 2)
    void = t.last_transaction
    assert void is not None and void.kind is Kind.VOID
    req = request_of(t.start_reversal(void))
    assert req[39] == "06" and req[11] == void.stan and req[3] == "200000"
    t.receive(reply(req))
    assert [x.status for x in t.ledger] == [TxnStatus.APPROVED, TxnStatus.REVERSED]


# -- settlement and batch upload ------------------------------------------------------------


def _sample_batch(t: VirtualTerminal) -> None:
    """Purchases 88.00 and 12.50 (voided) and 45.00 (reversed), a refund of 20.00 of the
    88.00, a pre-auth of 300.00 completed for 280.00, a declined purchase of 9.00."""
    approve(t, t.start_purchase(8800), 1)
    approve(t, t.start_purchase(1250), 2)
    approve(t, t.start_void(), 3)
    approve(t, t.start_refund(2000), 4)
    approve(t, t.start_preauth(30000), 5)
    approve(t, t.start_completion(28000), 6)
    t.receive(reply(request_of(t.start_purchase(900)), "51"))
    t.start_purchase(4500)
    t.fail_pending(Failure.TIMEOUT)
    t.receive(reply(request_of(t.start_reversal())))


def test_settlement_totals_from_a_hand_worked_batch() -> None:
    t = signed_in()
    _sample_batch(t)
    frame = t.start_settlement()
    req = request_of(frame)
    # debits: purchase 88.00 + completion 280.00 = 368.00 in 2; credits: refund 20.00 in 1
    assert req[48] == "000000036800" + "002" + "000000002000" + "001" + "0"
    assert (req.mti, req[49], req[60]) == ("0500", "156", "00000123201")
    assert request_mac_verifies(frame)
    assert t.receive(reply(req, f48=req[48][:30] + "1")).ok
    assert t.batch == "000124" and len(t.ledger) == 0
    assert request_of(t.start_settlement())[48] == "0" * 30 + "0"


def test_settlement_answered_95_uploads_each_transaction_then_closes_the_batch() -> None:
    t = signed_in()
    _sample_batch(t)
    req = request_of(t.start_settlement())
    assert t.receive(reply(req, "95", f48=req[48][:30] + "2")).response_code == "95"
    assert t.uploading and t.batch == "000123"
    with pytest.raises(TerminalProtocolError, match="batch upload is under way"):
        t.start_purchase(100)
    uploads = []
    while t.uploading:
        frame = t.start_batch_upload()
        up = request_of(frame)
        assert request_mac_verifies(frame)
        uploads.append((up.mti, up[2], up[3], up[4], up[48], up[60]))
        t.receive(reply(up))
    pan = CARD.pan
    assert uploads == [
        ("0320", pan, "000000", "000000008800", "00", "00000123201"),
        ("0320", pan, "200000", "000000002000", "00", "00000123201"),
        ("0320", pan, "000000", "000000028000", "00", "00000123201"),
    ]
    assert t.batch == "000124" and len(t.ledger) == 0


def test_a_settlement_flag_that_contradicts_39_is_a_protocol_failure() -> None:
    t = signed_in()
    req = request_of(t.start_settlement())
    outcome = t.receive(reply(req, f48=req[48][:30] + "2"))
    assert outcome.failure is Failure.PROTOCOL and "flag 2" in outcome.detail
    assert t.batch == "000123"


# -- against the contract-built fake host ---------------------------------------------------


def _via(host: FakeHost, t: VirtualTerminal, frame: bytes) -> str | None:
    out = host.handle_frame(decode_frame(FMT, frame))
    assert out
    outcome = t.receive(out)
    assert outcome.failure is None, outcome
    return outcome.response_code


def test_against_the_fake_host_wrong_pin_55_right_pin_00_duplicate_stan_94() -> None:
    host = FakeHost()
    t = VirtualTerminal(profile(card=CARD))
    assert _via(host, t, t.start_signin()) == "00"
    assert _via(host, t, t.start_purchase(100, pin="654321")) == "55"
    assert _via(host, t, t.start_purchase(100)) == "00"
    assert _via(host, t, t.start_purchase(200, stan=t.stan)) == "94"
    assert _via(host, t, t.start_void()) == "58"  # operator 01 is no supervisor


def test_a_wrong_request_mac_is_answered_a0_and_the_terminal_signs_in_again() -> None:
    host = FakeHost()
    t = VirtualTerminal(profile(card=CARD))
    _via(host, t, t.start_signin())
    frame = decode_frame(FMT, t.start_balance())
    req = CODEC.decode(frame.body)
    bad = CODEC.encode(req.replace(f64="0123456789ABCDEF"))
    outcome = t.receive(host.handle_frame(replace(frame, body=bad)) or b"")
    assert outcome.response_code == "A0" and outcome.failure is None
    assert not t.signed_in


# -- small parts ----------------------------------------------------------------------------


def test_field_parsers_and_batch_numbers() -> None:
    assert parse_amount("12.34") == 1234 and parse_amount("12.3") == 1230 and parse_amount("7") == 700
    for bad in ("", "1.234", "-1", "1e3", "12.", "x"):
        with pytest.raises(ValueError):
            parse_amount(bad)
    assert parse_balance("1002156D000000000150") == -150
    with pytest.raises(ValueError):
        parse_balance("1002840C000000000150")  # not CNY
    assert parse_field48("000000036800002000000002000001" + "1") == (Totals(36800, 2, 2000, 1), "1")
    assert next_batch("000009") == "000010" and next_batch("999999") == "000001"
    with pytest.raises(ValueError, match="at most 999"):
        Totals(debit_count=1000).field48()


def test_cards_and_transactions_keep_pan_and_pin_out_of_reprs() -> None:
    t = signed_in()
    t.start_purchase(100)
    txn = next(iter(t.ledger))
    for text in (repr(CARD), repr(txn), repr(DEFAULT_TEST_CARDS)):
        assert GOOD_CARD.pan not in text and "123456" not in text.replace("622202...0123", "")


def test_shared_test_cards_are_the_ones_both_sides_agree_on() -> None:
    assert DEFAULT_TEST_CARDS[0] is GOOD_CARD and len(DEFAULT_TEST_CARDS) == 8
    assert (GOOD_CARD.pan, GOOD_CARD.expiry, GOOD_CARD.pin) == ("6222021234567890123", "3012", "123456")
    assert (GOOD_CARD.balance_cents, GOOD_CARD.limit_cents) == (100_000_000, 5_000_000)  # 1,000,000.00 / 50,000.00
    assert LOW_BALANCE_CARD.balance_cents == 1_000
    assert EXPIRED_CARD.expiry == "2001"
    assert BLOCKED_CARD.status is CardStatus.BLOCKED
    assert SHORT_PIN_CARD.pin == "1234"
    assert (SIXTEEN_DIGIT_CARD.pan, SIXTEEN_DIGIT_CARD.pin) == ("6212340000000001", "111111")
    assert len({c.pan for c in DEFAULT_TEST_CARDS}) == 8
    # the chip cards (docs/chip.md): IC service codes, PSN 01 and 00
    chips = [(c.service_code, c.psn) for c in DEFAULT_TEST_CARDS if c.chip]
    assert chips == [("220", "01"), ("620", "00")]
    assert card_by_pan(SHORT_PIN_CARD.pan) is SHORT_PIN_CARD and card_by_pan("6200000000000000004") is None
    with pytest.raises(ValueError, match="expiry must be YYMM") as info:
        TestCard("6200000000000000004", "3013", "101", "1234", 0, 0)
    assert "6200000000000000004" not in str(info.value)


def test_a_new_signin_keeps_the_batch_while_it_holds_transactions() -> None:
    t = signed_in()
    approve(t, t.start_purchase(100), 1)
    req = request_of(t.start_signin())
    body = CODEC.encode(CODEC.message("0810", {11: req[11], 41: req[41], 42: req[42], 39: "00",
                                                60: "00000777003", 62: F62[KeyMode.DOUBLE]}))
    assert t.receive(encode_frame(FMT, body, tpdu=Tpdu.from_hex("6000000000"), header=CupHeader())).ok
    assert t.batch == "000123"  # the host's 000777 would orphan the purchase in the open batch
