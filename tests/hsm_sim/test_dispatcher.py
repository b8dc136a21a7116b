"""Dispatcher: routing, the wire answer for every failure class, and bug visibility."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from hsm_sim import dispatcher as dispatcher_module
from hsm_sim.cryptoerrors import KeyBlockAuthError, PinLengthError
from hsm_sim.dispatcher import COMMANDS, Dispatcher
from hsm_sim.errors import ErrorCode, HsmError
from hsm_sim.hostcmd import (
    Command,
    CommandSpec,
    FieldCursor,
    Handler,
    HsmContext,
    Reply,
    response_code,
)
from tests.hsm_sim.test_cmd_oracle import (
    SNOWCH_ZMK_LMK,
    SNOWCH_ZPK_LMK,
    SNOWCH_ZPK_ZMK,
    TDES_KEY,
    des3,
    lmk_field,
    lmk_pin,
)

# NC on the Thales test LMK: the LMK check value published in simulator walkthroughs.
TEST_LMK_CHECK = b"7B44AC1DDEE2A94B"


def test_nc_reports_lmk_check_value_and_firmware() -> None:
    d = Dispatcher(firmware="0007-E000")
    assert d.handle(b"NC") == b"ND00" + TEST_LMK_CHECK + b"0007-E000"


def test_nc_echoes_message_trailer() -> None:
    answer = Dispatcher().handle(b"NC\x19trace-7")
    assert answer == b"ND00" + TEST_LMK_CHECK + b"0007-E000\x19trace-7"


def test_nc_with_extra_data_is_input_error() -> None:
    assert Dispatcher().handle(b"NCXX") == b"ND15"


@pytest.mark.parametrize("code", [b"NC", b"nc", b"Nc", b"nC"])
def test_command_code_in_any_letter_case_is_the_command(code: bytes) -> None:
    assert Dispatcher().handle(code) == b"ND00" + TEST_LMK_CHECK + b"0007-E000"


def test_unknown_command_in_lower_case_answers_its_upper_case_response_with_67() -> None:
    assert Dispatcher().handle(b"zq") == b"ZR67"


def test_unknown_command_answers_next_code_with_67() -> None:
    assert Dispatcher().handle(b"ZQ1234") == b"ZR67"


def test_unknown_command_with_second_char_9_rolls_to_letter() -> None:
    assert Dispatcher().handle(b"Q9") == b"QA67"


@pytest.mark.parametrize("message", [b"", b"N", b"\x00\x01", b"N\xff"])
def test_message_without_command_code_answers_zz15(message: bytes) -> None:
    assert Dispatcher().handle(message) == b"ZZ15"


def test_registry_keys_match_their_specs() -> None:
    for code, command in COMMANDS.items():
        assert command.spec.code == code


def _boom(ctx: HsmContext, cur: FieldCursor) -> Reply:
    # Built at run time so the value cannot appear in the logged source lines.
    raise ZeroDivisionError(bytes(range(1, 9)).hex())


def _typed(ctx: HsmContext, cur: FieldCursor) -> Reply:
    raise HsmError(ErrorCode.KEY_SCHEME, "Key: bad scheme")


_BOOM_SPEC = CommandSpec(code="QQ", name="test bug", request=(), response=(), errors=())


Install = Callable[[Handler], None]


@pytest.fixture
def with_command(monkeypatch: pytest.MonkeyPatch) -> Install:
    def install(handler: Handler) -> None:
        table = dict(COMMANDS)
        table["QQ"] = Command(_BOOM_SPEC, handler)
        monkeypatch.setattr(dispatcher_module, "COMMANDS", table)

    return install


def test_hsm_error_from_handler_answers_its_code(with_command: Install) -> None:
    with_command(_typed)
    assert Dispatcher().handle(b"QQ") == b"QR26"


@pytest.mark.parametrize(("error", "answer"), [(PinLengthError, b"QR24"), (KeyBlockAuthError, b"QRA4")])
def test_crypto_error_from_the_core_answers_its_mapped_code_and_is_logged_once(
    with_command: Install, error: type[Exception], answer: bytes
) -> None:
    def handler(ctx: HsmContext, cur: FieldCursor) -> Reply:
        raise error("what was wrong")

    with_command(handler)
    with capture_logs() as logs:
        # reraise_bugs: a crypto error is an answer, not a bug
        assert Dispatcher(reraise_bugs=True).handle(b"QQ") == answer
    failed = [e for e in logs if e["event"] == "hsm_command_failed"]
    assert [(e["error"], e["reason"]) for e in failed] == [(answer[2:].decode(), "what was wrong")]


def test_bug_in_handler_answers_15_and_is_logged_without_message(with_command: Install) -> None:
    with_command(_boom)
    with capture_logs() as logs:
        assert Dispatcher().handle(b"QQ") == b"QR15"
    bugs = [e for e in logs if e["event"] == "hsm_command_bug"]
    assert len(bugs) == 1
    assert bugs[0]["error_type"] == "ZeroDivisionError"
    assert "_boom" in bugs[0]["stack"]
    assert "0102030405060708" not in repr(bugs[0])


def test_bug_in_handler_is_reraised_when_asked(with_command: Install) -> None:
    with_command(_boom)
    with pytest.raises(ZeroDivisionError):
        Dispatcher(reraise_bugs=True).handle(b"QQ")


def test_ng_answers_68_unless_test_mode() -> None:
    assert Dispatcher().handle(b"NG555555123456" + b"0" * 16) == b"NH68"
    assert Dispatcher(test_mode=True).handle(b"NG555555123456") == b"NH15"


@pytest.mark.parametrize("code", sorted(COMMANDS))
def test_every_command_answers_an_empty_body_without_a_bug(code: str) -> None:
    answer = Dispatcher(test_mode=True, reraise_bugs=True).handle(code.encode())
    if code == "NC":
        assert answer.startswith(b"ND00")
    else:
        assert answer == response_code(code).encode() + b"15"


def _valid_requests() -> list[bytes]:
    """One well-formed request per command family (each answers 00 or 01 unmutated)."""
    tmk = lmk_field("002", TDES_KEY)
    account = "555555123456"
    block = des3(TDES_KEY, bytes.fromhex("041261AAAAEDCBA9")).hex().upper()
    bdk = lmk_field("009", TDES_KEY)
    tak = lmk_field("003", TDES_KEY)
    # X9.24-1 A.4 transaction key for KSN ...E00001, PIN variant applied
    transaction_key = bytes.fromhex("042666B49184CFA368DE9628D0397BC9")
    pin_key = bytes(
        a ^ b for a, b in zip(transaction_key, bytes.fromhex("00000000000000FF") * 2, strict=True)
    )
    dukpt_block = des3(pin_key, bytes.fromhex("041261AAAAEDCBA9")).hex().upper()
    text = [
        f"A01001U;1{tmk}X",
        f"A6001{SNOWCH_ZMK_LMK}{SNOWCH_ZPK_ZMK}U",
        f"BUFF1{SNOWCH_ZPK_LMK};001;001",
        f"HA{tmk};ZZ0",
        f"CA{tmk}{SNOWCH_ZPK_LMK}12{block}0101{account}",
        f"BC{tmk}{block}01{account}{lmk_pin('1234', account)}",
        f"BA1234F{account}",
        f"DC{tmk}{tmk}{block}01{account}11234",
        f"G0{bdk}{SNOWCH_ZPK_LMK}A05FFFF9876543210E00001{dukpt_block}0101{account}",
        f"NG{account}{lmk_pin('1234', account)}",
        f"M600031003{tak}0018" + "Now is the time for all ",
        f"M800031003{tak}0018" + "Now is the time for all A1C72E74",
    ]
    return [t.encode() for t in text]


def test_mutated_requests_never_hit_a_bug() -> None:
    """Fuzz-style: every truncation and many one-byte substitutions of valid requests must be
    answered with a documented code, never an unexpected exception (reraise_bugs=True)."""
    hsm = Dispatcher(test_mode=True, reraise_bugs=True)
    replacements = b"0F;UXZ\x19\xff "
    for request in _valid_requests():
        assert hsm.handle(request)[2:4] in (b"00", b"01"), request[:2]
        code = request[:2].decode()
        declared = {str(e) for e in COMMANDS[code].spec.errors} | {"15"}
        variants = [request[:n] for n in range(2, len(request))]
        variants += [
            request[:i] + bytes([r]) + request[i + 1 :] for i in range(2, len(request)) for r in replacements
        ]
        for variant in variants:
            answer = hsm.handle(variant)
            assert answer[:2] == response_code(code).encode()
            assert answer[2:4].decode("latin-1") in declared, (code, answer[:4])
