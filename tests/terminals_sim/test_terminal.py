"""The virtual terminal against hand-built answers and the in-memory fake host, no sockets.

Field 62 ciphertexts were worked out with openssl (TMK 1111... so 3DES reduces to DES):
``echo 2222222222222222 | xxd -r -p | openssl enc -des-ede3 -nopad -K 1111...11`` ->
950973182317F80B; 3333333333333333 -> F679786E2411E3DE; 4444444444444444 -> A0C45C59F1E549BB.
Check values are the published ones (docs/cup-pos.md, "Field 62").
"""

from __future__ import annotations

import pytest

from specs.codec import codec_for
from specs.framing import CupHeader, Tpdu, decode_frame, encode_frame
from specs.message import Message
from terminals_sim.outcome import Failure, FollowUp, Kind
from terminals_sim.terminal import TerminalProfile, TerminalProtocolError, VirtualTerminal
from terminals_sim.transitions import State
from terminals_sim.workingkeys import KeyMode
from tests.switch.independent import cup_pos_mac
from tests.terminals_sim.fakehost import ANSWER_MTI, MERCHANT, TERMINAL, TMK, FakeHost

CODEC = codec_for("cup-pos")
FMT = CODEC.dialect.framing
PIK_ENC = "950973182317F80B"
MAK_ENC = "F679786E2411E3DE"
TDK_ENC = "A0C45C59F1E549BB"
F62 = {
    KeyMode.SINGLE: PIK_ENC + "00962B60" + MAK_ENC + "ADC67D84",
    KeyMode.DOUBLE: PIK_ENC * 2 + "00962B60" + MAK_ENC + "0" * 16 + "ADC67D84",
    KeyMode.DOUBLE_TDK: PIK_ENC * 2 + "00962B60" + MAK_ENC + "0" * 16 + "ADC67D84" + TDK_ENC * 2 + "E2F24340",
}
# Password 0000, ISO 9564 format 0, PAN field all zeros: 040000FFFFFFFFFF; under PIK 2222...
# (openssl enc -des-ede3 -nopad -K 2222...22):
PASSWORD_0000_UNDER_PIK = "A0525B62F2755827"


def profile(**kw: object) -> TerminalProfile:
    args: dict[str, object] = {"merchant": MERCHANT, "terminal": TERMINAL, "tmk": TMK}
    args.update(kw)
    return TerminalProfile(**args)  # type: ignore[arg-type]


def state_of(t: VirtualTerminal) -> State:
    # A function, so mypy does not carry a narrowed property value across calls that change it.
    return t.state


def request_of(frame: bytes) -> Message:
    return CODEC.decode(decode_frame(FMT, frame).body)


def answer(request: Message, requirement: int = 0, **fields: str) -> bytes:
    out = {11: request[11], 41: request[41], 42: request[42], 60: request[60], 39: "00"}
    out.update({int(k.removeprefix("f")): v for k, v in fields.items()})
    mti = ANSWER_MTI[request.mti]
    body = CODEC.encode(CODEC.message(mti, out))
    return encode_frame(FMT, body, tpdu=Tpdu.from_hex("6000000000"),
                        header=CupHeader().with_requirement(requirement))


def via(host: FakeHost, frame: bytes) -> bytes:
    out = host.handle_frame(decode_frame(FMT, frame))
    assert out is not None
    return out


def signed_in(mode: KeyMode = KeyMode.DOUBLE, **kw: object) -> VirtualTerminal:
    t = VirtualTerminal(profile(key_mode=mode, **kw))
    req = request_of(t.start_signin())
    assert t.receive(answer(req, f62=F62[mode])).ok
    return t


def test_signin_request_carries_the_contract_fields() -> None:
    t = VirtualTerminal(profile())
    req = request_of(t.start_signin())
    assert req.mti == "0800"
    assert req.unmasked_fields() == {11: "000001", 41: TERMINAL, 42: MERCHANT, 60: "00000001003", 63: "001"}


def test_signin_request_matches_the_published_frame_body() -> None:
    # The published sign-in (docs/cup-pos.md): STAN 000105, batch 000001, 60.3 = 003, operator 001.
    t = VirtualTerminal(profile(first_stan=105))
    frame = decode_frame(FMT, t.start_signin())
    assert frame.body.hex().upper() == (
        "08000020000000C00012000105303030303037363438343831303030353831323630303200110000000100300003303031"
    )
    assert frame.tpdu == Tpdu.from_hex("6000000000")
    assert frame.header == CupHeader.from_hex("603100000000")


@pytest.mark.parametrize("mode", list(KeyMode))
def test_signin_decrypts_field62_and_verifies_published_check_values(mode: KeyMode) -> None:
    t = VirtualTerminal(profile(key_mode=mode))
    req = request_of(t.start_signin())
    assert req.sub("60.3") == mode.value
    outcome = t.receive(answer(req, f62=F62[mode], f60="00" + "000123" + mode.value))
    assert outcome.ok and outcome.failure is None and outcome.kind is Kind.SIGNIN
    keys = t.working_keys
    assert keys is not None
    pik_len = 8 if mode is KeyMode.SINGLE else 16
    assert keys.pik == bytes.fromhex("22" * pik_len)
    assert keys.mak == bytes.fromhex("33" * 8)
    assert keys.tdk == (bytes.fromhex("44" * 16) if mode is KeyMode.DOUBLE_TDK else None)
    assert t.state is State.SIGNED_IN
    assert t.batch == "000123"


@pytest.mark.parametrize("mode", list(KeyMode))
def test_signin_with_a_wrong_check_value_is_refused(mode: KeyMode) -> None:
    t = VirtualTerminal(profile(key_mode=mode))
    req = request_of(t.start_signin())
    bad = F62[mode][:-8] + "ADC67D85"  # last CV off by one bit
    outcome = t.receive(answer(req, f62=bad))
    assert outcome.failure is Failure.BAD_CHECK_VALUE
    assert not outcome.ok
    assert t.state is State.SIGNED_OUT and t.working_keys is None


def test_signin_with_a_short_field62_is_a_protocol_failure() -> None:
    t = VirtualTerminal(profile(key_mode=KeyMode.DOUBLE_TDK))
    req = request_of(t.start_signin())
    outcome = t.receive(answer(req, f62=F62[KeyMode.DOUBLE]))
    assert outcome.failure is Failure.PROTOCOL
    assert "40 bytes" in outcome.detail and "60" in outcome.detail


def test_signin_against_the_fake_host_with_a_wrong_cv() -> None:
    host = FakeHost(wrong_cv=True)
    t = VirtualTerminal(profile())
    outcome = t.receive(via(host, t.start_signin()))
    assert outcome.failure is Failure.BAD_CHECK_VALUE
    assert "PIK" in outcome.detail


def test_declined_signin_for_unknown_terminal_keeps_the_terminal_signed_out() -> None:
    t = VirtualTerminal(profile(terminal="99999999"))
    outcome = t.receive(via(FakeHost(), t.start_signin()))
    assert outcome.response_code == "97" and outcome.failure is None and not outcome.ok
    assert t.state is State.SIGNED_OUT


def test_stan_increases_per_request_and_wraps_to_000001() -> None:
    t = VirtualTerminal(profile(first_stan=999_998))
    host = FakeHost()
    stans = []
    for _ in range(3):
        frame = t.start_echo()
        stans.append(request_of(frame)[11])
        assert t.receive(via(host, frame)).ok
    assert stans == ["999998", "999999", "000001"]


def test_answer_with_another_stan_is_a_protocol_failure() -> None:
    t = VirtualTerminal(profile())
    req = request_of(t.start_echo())
    outcome = t.receive(answer(req, f11="000777"))
    assert outcome.failure is Failure.PROTOCOL and "11" in outcome.detail


def test_answer_with_the_wrong_mti_is_a_protocol_failure() -> None:
    t = VirtualTerminal(profile())
    frame = t.start_echo()
    outcome = t.receive(frame)  # our own 0820 comes back
    assert outcome.failure is Failure.PROTOCOL and "0830" in outcome.detail


def test_mirrored_answer_counts_as_answered_only_in_bench_mode() -> None:
    t = VirtualTerminal(profile(accept_mirror=True))
    outcome = t.receive(t.start_echo())
    assert outcome.mirrored and outcome.ok


def test_mirror_in_bench_mode_is_judged_when_it_is_not_the_request_itself() -> None:
    t = VirtualTerminal(profile(accept_mirror=True))
    t.start_echo()
    # Not a mirror of what was sent: decoded and judged as any answer (it fails to decode).
    assert t.receive(b"\x00\x0dgarbage-bytes").failure is Failure.PROTOCOL
    req = request_of(t.start_echo())
    assert t.receive(answer(req)).ok  # a real 0830 is still judged in bench mode


def test_repeated_requests_differ_only_in_the_stan() -> None:
    t = VirtualTerminal(profile(first_stan=41))
    host = FakeHost()
    frames = []
    for _ in range(3):
        frame = t.start_echo()
        frames.append(frame)
        assert t.receive(via(host, frame)).ok
    # LEN 2 + TPDU 5 + header 6 + MTI 2 + bitmap 8: field 11 (n6 BCD) is bytes 23..25.
    assert [f[23:26].hex() for f in frames] == ["000041", "000042", "000043"]
    assert {f[:23] + f[26:] for f in frames} == {frames[0][:23] + frames[0][26:]}
    assert request_of(frames[2]).fields == {11: "000043", 41: TERMINAL, 42: MERCHANT, 60: "00000001301"}
    # An answer that echoes the first STAN is not taken for the third's.
    t.start_echo()
    stale = t.receive(answer(request_of(frames[0])))
    assert stale.failure is Failure.PROTOCOL and "11" in stale.detail


def test_garbage_answer_is_a_protocol_failure() -> None:
    t = VirtualTerminal(profile())
    t.start_echo()
    outcome = t.receive(b"\x00\x0dgarbage-bytes")
    assert outcome.failure is Failure.PROTOCOL


def test_operator_signin_block_mac_and_security_control() -> None:
    t = signed_in()
    frame = t.start_operator_signin()
    req = request_of(frame)
    assert req.sub("60.3") == "011"
    assert req[63] == "001"
    assert req[52] == PASSWORD_0000_UNDER_PIK
    assert req[53] == "1600000000000000"
    body = decode_frame(FMT, frame).body
    assert req[64] == cup_pos_mac(bytes.fromhex("33" * 8), body[:-8]).hex().upper()
    assert body[-8:] == bytes.fromhex(req[64])


def test_operator_signin_accepted_and_wrong_password_refused_by_the_fake_host() -> None:
    host = FakeHost()
    t = VirtualTerminal(profile())
    assert t.receive(via(host, t.start_signin())).ok
    wrong = t.receive(via(host, t.start_operator_signin(password="9999")))
    assert wrong.response_code == "55" and wrong.failure is None
    assert t.state is State.SIGNED_IN
    right = t.receive(via(host, t.start_operator_signin()))
    assert right.ok and state_of(t) is State.OPERATOR_IN


def test_operator_locked_after_three_wrong_passwords() -> None:
    host = FakeHost()
    t = VirtualTerminal(profile())
    t.receive(via(host, t.start_signin()))
    codes = [t.receive(via(host, t.start_operator_signin(password="1111"))).response_code for _ in range(4)]
    assert codes == ["55", "55", "55", "75"]


def test_password_change_then_sign_in_with_the_new_password() -> None:
    host = FakeHost()
    t = VirtualTerminal(profile())
    t.receive(via(host, t.start_signin()))
    assert t.receive(via(host, t.start_operator_signin())).ok
    assert t.receive(via(host, t.start_password_change("123456"))).ok
    assert t.receive(via(host, t.start_operator_signin(password="0000"))).response_code == "55"
    assert t.receive(via(host, t.start_operator_signin())).ok


def test_bad_mac_on_an_operator_answer_is_reported() -> None:
    host = FakeHost(wrong_response_mac=True)
    t = VirtualTerminal(profile())
    t.receive(via(host, t.start_signin()))
    outcome = t.receive(via(host, t.start_operator_signin()))
    assert outcome.failure is Failure.BAD_MAC
    assert outcome.follow_up is FollowUp.SIGNIN


def test_a0_drops_the_keys_and_asks_for_a_new_signin() -> None:
    host = FakeHost(force_code={"011": "A0"})
    t = VirtualTerminal(profile())
    t.receive(via(host, t.start_signin()))
    outcome = t.receive(via(host, t.start_operator_signin()))
    assert outcome.response_code == "A0" and outcome.follow_up is FollowUp.SIGNIN
    assert t.state is State.SIGNED_OUT and t.working_keys is None
    again = t.receive(via(host, t.start(outcome.follow_up.kind or Kind.ECHO)))
    assert again.ok and state_of(t) is State.SIGNED_IN


@pytest.mark.parametrize(
    ("requirement", "follow_up"),
    [(3, FollowUp.SIGNIN), (1, FollowUp.PARAM_DOWNLOAD), (2, FollowUp.STATUS_UPLOAD), (0, FollowUp.NONE)],
)
def test_header_processing_requirement_asks_for_a_follow_up(requirement: int, follow_up: FollowUp) -> None:
    t = signed_in()
    req = request_of(t.start_echo())
    assert t.receive(answer(req, requirement=requirement)).follow_up is follow_up


def test_parameter_download_keeps_field62() -> None:
    t = signed_in()
    req = request_of(t.start_param_download())
    assert req.mti == "0800" and req.sub("60.3") == "360"
    assert t.receive(answer(req, f62="0102")).ok
    assert t.parameters == b"\x01\x02"


def test_signoff_and_status_upload_codes() -> None:
    t = signed_in()
    req = request_of(t.start_status_upload())
    assert (req.mti, req.sub("60.3")) == ("0820", "362")
    t.receive(answer(req))
    req = request_of(t.start_signoff())
    assert (req.mti, req.sub("60.3")) == ("0820", "002")
    assert t.receive(answer(req)).ok
    assert t.state is State.SIGNED_OUT and t.working_keys is None


def test_operator_signin_before_terminal_signin_is_a_named_protocol_error() -> None:
    t = VirtualTerminal(profile())
    with pytest.raises(TerminalProtocolError, match="operator_signin in state signed_out"):
        t.start_operator_signin()


def test_second_request_while_one_is_outstanding_is_refused() -> None:
    t = VirtualTerminal(profile())
    t.start_echo()
    with pytest.raises(TerminalProtocolError, match="echo is still outstanding"):
        t.start_echo()


def test_answer_without_a_request_is_a_named_protocol_error() -> None:
    t = VirtualTerminal(profile())
    with pytest.raises(TerminalProtocolError, match="no request is outstanding"):
        t.receive(b"\x00\x00")


def test_timeout_returns_the_terminal_to_where_it_was() -> None:
    t = signed_in()
    t.start_echo()
    outcome = t.fail_pending(Failure.TIMEOUT, "no answer in 1 s")
    assert outcome.failure is Failure.TIMEOUT and outcome.kind is Kind.ECHO
    assert t.state is State.SIGNED_IN and t.awaiting is None


def test_secrets_stay_out_of_reprs() -> None:
    t = signed_in(password="4321")
    texts = [repr(t.profile), repr(t), repr(t.working_keys)]
    for text in texts:
        for secret in ("1111", "2222", "3333", "4321"):
            assert secret not in text


def test_profile_rejects_a_bad_merchant_without_quoting_secrets() -> None:
    with pytest.raises(ValueError, match="merchant id"):
        profile(merchant="short")
    with pytest.raises(ValueError, match="password") as info:
        profile(password="12ab")
    assert "12ab" not in str(info.value)
