"""Dispatcher: routing, the wire answer for every failure class, and bug visibility."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from hsm_sim import dispatcher as dispatcher_module
from hsm_sim.dispatcher import COMMANDS, Dispatcher
from hsm_sim.errors import ErrorCode, HsmError
from hsm_sim.hostcmd import Command, CommandSpec, FieldCursor, Handler, HsmContext, Reply

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
