"""HsmClient over InProcTransport: typed results, the one place errors are sorted (answer,
transport, argument), and the switch's sign-in flows with the terminal side played by the
independent oracle (test_cmd_oracle)."""

from __future__ import annotations

import pickle

import pytest

from hsm_sim.client import (
    Answer,
    Diagnostics,
    GeneratedKey,
    HsmAnswerError,
    HsmClient,
    MacAlgorithm,
    TranslatedPin,
)
from hsm_sim.dispatcher import Dispatcher
from hsm_sim.emv import Scheme
from hsm_sim.errors import ErrorCode, HsmError
from hsm_sim.transports.inproc import InProcTransport
from hsm_sim.transports.interface import HsmProtocolError, HsmTimeout, HsmUnavailable
from tests.hsm_sim.test_cmd_mac import SIGN_IN, X919_DATA, X919_MAC, cup_mac_reference
from tests.hsm_sim.test_cmd_oracle import (
    SNOWCH_ZMK_LMK,
    SNOWCH_ZPK_LMK,
    TDES_KEY,
    clear_from_field,
    des3,
    field_bytes,
    iso0_block,
    kcv,
    lmk_field,
    lmk_pin,
)

H = bytes.fromhex
TMK_FIELD = lmk_field("002", TDES_KEY)
ACCOUNT = "555555123456"
TPK_BLOCK = des3(TDES_KEY, H("041261AAAAEDCBA9")).hex().upper()


@pytest.fixture
def client() -> HsmClient:
    return HsmClient(InProcTransport(Dispatcher(reraise_bugs=True)))


class FixedAnswer:
    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.sent: list[bytes] = []
        self.closed = False

    async def request(self, message: bytes) -> bytes:
        self.sent.append(message)
        return self.answer

    async def close(self) -> None:
        self.closed = True


class Failing:
    """A transport that is not one of ours: it raises what a socket raises."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def request(self, message: bytes) -> bytes:
        raise self.exc

    async def close(self) -> None:
        pass


async def test_diagnostics(client: HsmClient) -> None:
    assert await client.diagnostics() == Diagnostics("7B44AC1DDEE2A94B", "0007-E000")


@pytest.mark.parametrize(("length", "tag"), [(8, ""), (16, "X"), (24, "Y")])
async def test_generate_key_under_lmk_and_tmk(client: HsmClient, length: int, tag: str) -> None:
    result = await client.generate_key("002", length, ("002", TMK_FIELD))
    assert isinstance(result, GeneratedKey)
    key = clear_from_field("002", result.under_lmk)
    assert len(key) == length
    assert result.under_export is not None
    assert result.under_export[: len(tag)] == tag
    assert des3(TDES_KEY, field_bytes(result.under_export), decrypt=True) == key
    assert result.kcv == kcv(key)


async def test_generated_key_export_ciphertext_is_the_field_without_its_tag(client: HsmClient) -> None:
    result = await client.generate_key("003", 16, ("002", TMK_FIELD))
    assert result.under_export is not None and result.under_export[0] == "X"
    assert result.export_ciphertext == H(result.under_export[1:])
    assert (await client.generate_key("003", 16)).export_ciphertext is None


async def test_generate_key_without_export(client: HsmClient) -> None:
    result = await client.generate_key("00B", 16)
    assert result.under_export is None
    assert result.kcv == kcv(clear_from_field("00B", result.under_lmk))


async def test_generate_key_variant_export_under_zmk(client: HsmClient) -> None:
    result = await client.generate_key("001", 16, ("000", SNOWCH_ZMK_LMK), export_variant=True)
    assert result.under_export is not None and result.under_export[0] == "U"


async def test_generate_key_refuses_non_kek_export_type(client: HsmClient) -> None:
    with pytest.raises(HsmError) as err:
        await client.generate_key("001", 16, ("001", SNOWCH_ZPK_LMK))
    assert err.value.code is ErrorCode.INVALID_KEY_TYPE


async def test_check_value_is_16h(client: HsmClient) -> None:
    assert (await client.check_value("002", TMK_FIELD))[:6] == "08D7B4"
    value = await client.check_value("000", SNOWCH_ZMK_LMK)
    assert len(value) == 16 and value.startswith("BA0FC3")


async def test_translate_pin_tpk_to_zpk(client: HsmClient) -> None:
    zpk = clear_from_field("001", SNOWCH_ZPK_LMK)
    expected = des3(zpk, H("041261AAAAEDCBA9")).hex().upper()
    result = await client.translate_pin_tpk_to_zpk(TMK_FIELD, SNOWCH_ZPK_LMK, TPK_BLOCK, ACCOUNT)
    assert result == TranslatedPin(4, expected, "01")


async def test_translate_pin_zpk_to_zpk(client: HsmClient) -> None:
    zpk_block = des3(clear_from_field("001", SNOWCH_ZPK_LMK), H("041261AAAAEDCBA9")).hex().upper()
    dest = lmk_field("001", TDES_KEY)
    result = await client.translate_pin_zpk_to_zpk(SNOWCH_ZPK_LMK, dest, zpk_block, ACCOUNT)
    assert result == TranslatedPin(4, TPK_BLOCK, "01")


async def test_pin_to_lmk_and_comparison(client: HsmClient) -> None:
    stored = await client.encrypt_clear_pin("1234", ACCOUNT)
    assert stored == lmk_pin("1234", ACCOUNT)
    assert await client.translate_pin_tpk_to_lmk(TMK_FIELD, TPK_BLOCK, "01", ACCOUNT) == stored
    assert await client.verify_terminal_pin_comparison(TMK_FIELD, TPK_BLOCK, "01", ACCOUNT, stored)
    other = lmk_pin("9999", ACCOUNT)
    assert not await client.verify_terminal_pin_comparison(TMK_FIELD, TPK_BLOCK, "01", ACCOUNT, other)


async def test_mac_x919_published(client: HsmClient) -> None:
    tak = lmk_field("003", TDES_KEY)
    mac = await client.generate_mac("003", tak, X919_DATA, MacAlgorithm.ISO9797_ALG3, long_mac=True)
    assert mac == X919_MAC
    assert await client.verify_mac("003", tak, X919_DATA, X919_MAC[:8], MacAlgorithm.ISO9797_ALG3)


async def test_hsm_error_code_is_an_answer_error_naming_the_command(client: HsmClient) -> None:
    with pytest.raises(HsmAnswerError) as err:
        await client.translate_pin_tpk_to_zpk(TMK_FIELD, SNOWCH_ZPK_LMK, TPK_BLOCK, ACCOUNT, dest_format="02")
    assert err.value.code is ErrorCode.PIN_BLOCK_FORMAT
    assert err.value.command == "CA"
    assert str(err.value) == "23 CA: HSM answered 23 (Invalid PIN block format code)"


async def test_verification_01_is_a_decision_other_codes_are_answer_errors() -> None:
    assert await HsmClient(FixedAnswer(b"BD01")).verify_terminal_pin_comparison(
        TMK_FIELD, TPK_BLOCK, "01", ACCOUNT, "0" * 16
    ) is False
    with pytest.raises(HsmAnswerError) as err:
        await HsmClient(FixedAnswer(b"BD20")).verify_terminal_pin_comparison(
            TMK_FIELD, TPK_BLOCK, "01", ACCOUNT, "0" * 16
        )
    assert err.value.code is ErrorCode.PIN_BLOCK_INVALID
    with pytest.raises(HsmAnswerError):  # 01 is a failure, not a verdict, for a generation
        await HsmClient(FixedAnswer(b"BB01")).encrypt_clear_pin("1234", ACCOUNT)


def test_answer_error_pickles_with_its_command() -> None:
    copy = pickle.loads(pickle.dumps(HsmAnswerError("M8", ErrorCode.KEY_SCHEME)))
    assert (type(copy), copy.command, copy.code) == (HsmAnswerError, "M8", ErrorCode.KEY_SCHEME)


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (b"XX00", "response code 'XX', expected ND"),
        (b"ND0", "3 bytes is too short"),
        (b"ND", "2 bytes is too short"),
    ],
)
async def test_an_answer_to_another_command_or_too_short_is_a_protocol_error(answer: bytes, says: str) -> None:
    with pytest.raises(HsmProtocolError, match=says):
        await HsmClient(FixedAnswer(answer)).diagnostics()


async def test_unknown_error_code_is_a_protocol_error_naming_it() -> None:
    client = HsmClient(FixedAnswer(b"BD14"))
    with pytest.raises(HsmProtocolError, match="unknown error code '14'"):
        await client.verify_terminal_pin_comparison(TMK_FIELD, TPK_BLOCK, "01", ACCOUNT, "0" * 16)


async def test_truncated_fields_are_a_protocol_error_naming_the_field() -> None:
    client = HsmClient(FixedAnswer(b"JD00ABC"))
    with pytest.raises(HsmProtocolError, match=r"JC: malformed answer from the HSM: PIN \(LMK\)"):
        await client.translate_pin_tpk_to_lmk(TMK_FIELD, TPK_BLOCK, "01", ACCOUNT)


async def test_extra_fields_after_a_verdict_are_a_protocol_error() -> None:
    with pytest.raises(HsmProtocolError, match="unexpected characters"):
        await HsmClient(FixedAnswer(b"BD00XYZ")).verify_terminal_pin_comparison(
            TMK_FIELD, TPK_BLOCK, "01", ACCOUNT, "0" * 16
        )


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (ConnectionResetError(104, "reset"), HsmUnavailable),
        (OSError(113, "no route"), HsmUnavailable),
        (TimeoutError(), HsmTimeout),
    ],
)
async def test_socket_errors_of_a_foreign_transport_become_transport_errors(
    raised: Exception, expected: type[Exception]
) -> None:
    with pytest.raises(expected, match=r"^NC: ") as info:
        await HsmClient(Failing(raised)).diagnostics()
    assert info.value.__cause__ is raised


async def test_transport_errors_pass_through_unchanged() -> None:
    error = HsmUnavailable("connection to tcp://127.0.0.1:9 lost")
    with pytest.raises(HsmUnavailable) as info:
        await HsmClient(Failing(error)).diagnostics()
    assert info.value is error


async def test_send_returns_the_answer_unjudged(client: HsmClient) -> None:
    answer = await client.send(b"NCXX")
    assert (answer.response_code, answer.error_code, answer.fields) == ("ND", "15", b"")
    assert answer.error_description == "Error in input data"
    unknown = await HsmClient(FixedAnswer(b"NDQQ")).send(b"NC")
    assert unknown.error_description == "unknown error code"


async def test_send_lower_case_command_matches_the_upper_case_answer(client: HsmClient) -> None:
    assert (await client.send(b"nc")).response_code == "ND"


async def test_send_refuses_what_is_no_command_code_before_sending() -> None:
    transport = FixedAnswer(b"ZZ15")
    with pytest.raises(HsmError, match="not a host command code"):
        await HsmClient(transport).send(b"?!")
    assert transport.sent == []


async def test_an_argument_the_core_refuses_is_an_hsm_error_before_sending() -> None:
    transport = FixedAnswer(b"KR00")
    with pytest.raises(HsmError) as err:
        client = HsmClient(transport)
        await client.generate_arpc(Scheme.PBOC, TMK_FIELD, "62280001A", "01", bytes(2), bytes(4), bytes(8), b"00")
    assert err.value.code is ErrorCode.INPUT_DATA and err.value.reason.startswith("KQ: ")
    assert not isinstance(err.value, HsmAnswerError) and transport.sent == []


def test_answer_repr_hides_the_fields() -> None:
    answer = Answer("NH", "00", b"1234")  # NG/NH would carry a clear PIN
    assert repr(answer) == "Answer(NH, 00, 4 bytes of fields)"


async def test_close_closes_the_transport() -> None:
    transport = FixedAnswer(b"ND00")
    await HsmClient(transport).close()
    assert transport.closed


# --- the switch's flows, terminal side played by the oracle -----------------------------------


async def test_sign_in_then_terminal_pin_verifies(client: HsmClient) -> None:
    tpk = await client.generate_key("002", 16, ("002", TMK_FIELD))
    assert tpk.under_export is not None
    # terminal: decrypt its PIK with the clear TMK, encrypt the customer's PIN block
    pik = des3(TDES_KEY, field_bytes(tpk.under_export), decrypt=True)
    assert kcv(pik) == tpk.kcv
    block = des3(pik, iso0_block("4321", ACCOUNT)).hex().upper()
    # switch: compare with the PIN on file
    stored = lmk_pin("4321", ACCOUNT)
    assert await client.verify_terminal_pin_comparison(tpk.under_lmk, block, "01", ACCOUNT, stored)


async def test_sign_in_then_terminal_mac_verifies(client: HsmClient) -> None:
    mak = await client.generate_key("003", 8, ("002", TMK_FIELD))
    assert mak.under_export is not None
    clear_mak = des3(TDES_KEY, field_bytes(mak.under_export), decrypt=True)
    mac = cup_mac_reference(clear_mak, SIGN_IN)
    assert await client.verify_mac("003", mak.under_lmk, SIGN_IN, mac, MacAlgorithm.CUP_POS)
    assert await client.generate_mac("003", mak.under_lmk, SIGN_IN, MacAlgorithm.CUP_POS) == mac
    tampered = SIGN_IN[:-1] + b"2"  # operator code 001 -> 002
    assert not await client.verify_mac("003", mak.under_lmk, tampered, mac, MacAlgorithm.CUP_POS)
