"""KQ (ARQC verify / verify + ARPC / ARPC only) in process and over TCP, and the MK-AC key type 109.

Expected values: /work/shared/vectors/emv.json (PBOC example B: IMK-AC, PAN, PSN, tags, ARQC
and ARPCs; pyemv's HSM-checked option A vectors), ARQCs and ARPCs computed by pyemv (a
test-only cross-check) for the Visa, M/Chip and EMV common schemes, and keys under the LMK
from the independent variant-LMK model (test_cmd_oracle). Nothing expected comes from hsm_sim.

What the KQ layout cannot carry stays with the crypto core's tests (test_emv.py): PBOC example
A publishes only the card key (KQ takes the issuer key), and pyemv's vectors with a free
diversification value R and its ARPC method 2 vectors (KQ derives R from the ATC and answers
method 1).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pyemv.ac
import pyemv.cvn
import pyemv.kd
import pytest

from hsm_sim.client import CryptogramCheck, HsmClient
from hsm_sim.dispatcher import COMMANDS, Dispatcher
from hsm_sim.emv import Scheme, arqc_data
from hsm_sim.errors import HsmError
from hsm_sim.reference import render_reference
from hsm_sim.server import HsmServerConfig, RunningHsm, serve_hsm
from hsm_sim.transports.tcp import TcpTransport
from specs import tlv
from specs.tlv import Tlv
from tests.hsm_sim.test_cmd_oracle import TDES_KEY, clear_from_field, kcv, lmk_field, odd_parity, with_odd_parity
from tests.vectorfiles import vector_path

pytestmark = pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")

H = bytes.fromhex
EMV = json.loads((vector_path("emv.json")).read_text())
B = EMV["pboc_cvn01_examples"][1]
HSM = Dispatcher(reraise_bugs=True)

# The PBOC B issuer key has even-parity bytes; under the LMK it is kept with parity forced odd
# (what ZK does), which DES cannot tell apart.
B_IMK = H(B["imk_ac"])
B_MK_AC = lmk_field("109", with_odd_parity(B_IMK))
B_Y = H("0622800010000101")  # rightmost 16 digits of PAN || PSN, emv.json pan_note
B_ATC = H(B["atc"])
B_UN = H(B["pboc_input_from_tags"]["9F37"])
B_DATA = H(B["arqc_input"])
B_ARQC = H(B["arqc"])
B_ARPCS = [(H(a["arc"]), H(a["arpc"])) for a in [*B["arpc"], *B["arpc_cross_checked"]]]


def kq(
    mode: str,
    scheme: str,
    mk_ac: str,
    y: bytes,
    atc: bytes,
    un: bytes,
    data: bytes | None,
    arqc: bytes,
    arc: bytes = b"",
) -> bytes:
    """A KQ request as the payShield layout in emv.json (payshield_emv.KQ_request) has it."""
    body = f"KQ{mode}{scheme}{mk_ac}".encode() + y + atc + un
    if data is not None:
        body += f"{len(data):02X}".encode() + data + b";"
    return body + arqc + arc


def call(message: bytes) -> bytes:
    answer = HSM.handle(message)
    declared = {str(code) for code in COMMANDS["KQ"].spec.errors}
    assert answer[:2] == b"KR" and answer[2:4].decode() in declared
    return answer


# --- PBOC CVN 01 (scheme P, the switchsim extension) ----------------------------------------


def test_pboc_b_verifies() -> None:
    assert call(kq("0", "P", B_MK_AC, B_Y, B_ATC, B_UN, B_DATA, B_ARQC)) == b"KR00"


@pytest.mark.parametrize(("arc", "arpc"), B_ARPCS, ids=lambda v: v.hex().upper())
def test_pboc_b_verify_and_arpc(arc: bytes, arpc: bytes) -> None:
    assert call(kq("1", "P", B_MK_AC, B_Y, B_ATC, B_UN, B_DATA, B_ARQC, arc)) == b"KR00" + arpc


@pytest.mark.parametrize(("arc", "arpc"), B_ARPCS, ids=lambda v: v.hex().upper())
def test_pboc_b_arpc_only(arc: bytes, arpc: bytes) -> None:
    assert call(kq("2", "P", B_MK_AC, B_Y, B_ATC, B_UN, None, B_ARQC, arc)) == b"KR00" + arpc


def test_pboc_b_rebuilt_from_field_55_verifies() -> None:
    objects = tlv.unique(tlv.parse(H(B["field55_tlv"])))
    data = arqc_data(Scheme.PBOC, objects)
    arqc = objects["9F26"].value
    assert call(kq("0", "P", B_MK_AC, B_Y, objects["9F36"].value, objects["9F37"].value, data, arqc)) == b"KR00"


@pytest.mark.parametrize("wrong", ["E", "0", "1"])
def test_the_same_pboc_card_under_another_scheme_fails(wrong: str) -> None:
    assert call(kq("0", wrong, B_MK_AC, B_Y, B_ATC, B_UN, B_DATA, B_ARQC)) == b"KR01"
    assert call(kq("1", wrong, B_MK_AC, B_Y, B_ATC, B_UN, B_DATA, B_ARQC, b"00")) == b"KR01"


def test_tampered_arqc_data_atc_or_card_fail() -> None:
    flipped = B_ARQC[:7] + bytes([B_ARQC[7] ^ 0x01])
    assert call(kq("1", "P", B_MK_AC, B_Y, B_ATC, B_UN, B_DATA, flipped, b"00")) == b"KR01"
    more = B_DATA[:5] + b"\x02" + B_DATA[6:]  # amount 0.02 instead of 0.01
    assert call(kq("0", "P", B_MK_AC, B_Y, B_ATC, B_UN, more, B_ARQC)) == b"KR01"
    assert call(kq("0", "P", B_MK_AC, B_Y, b"\x02\x41", B_UN, B_DATA, B_ARQC)) == b"KR01"
    assert call(kq("0", "P", B_MK_AC, H("0622800010000102"), B_ATC, B_UN, B_DATA, B_ARQC)) == b"KR01"


# --- pyemv's HSM-checked option A vectors: ARPC under the card key --------------------------

CARD_KEY_ARPCS = [v for v in EMV["emv_option_a_csk_vectors"] if v.get("arpc1_key") == "icc_mk"]


def y_of(pan: str, psn: str) -> bytes:
    return H((pan + psn).rjust(16, "0")[-16:])


@pytest.mark.parametrize("scheme", ["0", "1", "E"])
@pytest.mark.parametrize("vector", CARD_KEY_ARPCS, ids=lambda v: v["id"])
def test_arpc_under_the_card_key(vector: dict[str, Any], scheme: str) -> None:
    mk_ac = lmk_field("109", H(vector["imk"]))
    request = kq(
        "2",
        scheme,
        mk_ac,
        y_of(vector["pan"], vector["psn"]),
        b"\x00\x01",
        bytes(4),
        None,
        H(vector["arqc"]),
        H(vector["arc"]),
    )
    assert call(request) == b"KR00" + H(vector["arpc1"])


# --- Visa, M/Chip and EMV common cards, cryptograms by pyemv --------------------------------

IMK = TDES_KEY  # 0123456789ABCDEFFEDCBA9876543210, odd parity
PAN, PSN = "6212340000000001", "01"
TAGS = {tag: H(value) for tag, value in B["pboc_input_from_tags"].items()}
IADS = {"0": H("06010A03A00000"), "1": H("0110A0400000000000"), "E": H("06011203A00000")}


def card(scheme: str) -> tuple[dict[str, Tlv], bytes, bytes]:
    """(field 55 objects, ARQC by pyemv, ARPC for ARC '00' by pyemv) for a card of ``scheme``."""
    tags = {**TAGS, "9F10": IADS[scheme]}
    minimum = (
        tags["9F02"], tags["9F03"], tags["9F1A"], tags["95"], tags["5F2A"],
        tags["9A"], tags["9C"], tags["9F37"], tags["82"], tags["9F36"],
    )  # fmt: skip
    if scheme == "0":
        visa = pyemv.cvn.VisaCVN10(IMK, IMK, IMK, PAN, PSN)
        arqc = visa.generate_ac(*minimum, IADS["0"][3:7])
        arpc = visa.generate_arpc(arqc, b"00")
    elif scheme == "1":
        mchip = pyemv.cvn.MasterCardCVN16(IMK, IMK, IMK, PAN, PSN)
        arqc = mchip.generate_ac(*minimum, IADS["1"][2:8])
        arpc = mchip.generate_arpc(arqc, b"00")
    else:
        icc_mk = pyemv.kd.derive_icc_mk_a(IMK, PAN, PSN)
        sk = pyemv.kd.derive_common_sk(icc_mk, tags["9F36"] + bytes(6))
        arqc = pyemv.ac.generate_ac(sk, b"".join(minimum) + IADS["E"], pyemv.ac.PaddingType.EMV)
        arpc = pyemv.ac.generate_arpc_1(icc_mk, arqc, b"00")
    objects = {tag: Tlv(tag, value) for tag, value in tags.items()}
    return objects, arqc, arpc


@pytest.mark.parametrize("scheme", ["0", "1", "E"])
def test_other_schemes_verify_pyemv_cryptograms(scheme: str) -> None:
    objects, arqc, arpc = card(scheme)
    data = arqc_data(Scheme(scheme), objects)
    mk_ac = lmk_field("109", IMK)
    atc, un = objects["9F36"].value, objects["9F37"].value
    assert call(kq("1", scheme, mk_ac, y_of(PAN, PSN), atc, un, data, arqc, b"00")) == b"KR00" + arpc
    others = {"0", "1", "E", "P"} - {scheme}
    for other in others:
        assert call(kq("0", other, mk_ac, y_of(PAN, PSN), atc, un, data, arqc)) == b"KR01"


# --- malformed requests ---------------------------------------------------------------------

GOOD = kq("0", "P", B_MK_AC, B_Y, B_ATC, B_UN, B_DATA, B_ARQC)
HEAD = f"KQ0P{B_MK_AC}".encode() + B_Y + B_ATC + B_UN


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (b"KQ5" + GOOD[3:], b"04"),
        (b"KQ3" + GOOD[3:], b"04"),
        (b"KQ02" + GOOD[4:], b"05"),
        (kq("0", "P", lmk_field("109", B_IMK), B_Y, B_ATC, B_UN, B_DATA, B_ARQC), b"10"),  # parity
        (kq("0", "P", "0123456789ABCDEF", B_Y, B_ATC, B_UN, B_DATA, B_ARQC), b"26"),  # single length
        (kq("0", "P", "X" + B_MK_AC[1:], B_Y, B_ATC, B_UN, B_DATA, B_ARQC), b"26"),
        (HEAD + b"00;" + B_ARQC, b"81"),
        (HEAD + b"2Z" + B_DATA + b";" + B_ARQC, b"80"),
        (HEAD + b"FF" + B_DATA + b";" + B_ARQC, b"80"),  # fewer than 0xFF bytes follow
        (HEAD + b"24" + B_DATA + b";" + B_ARQC, b"80"),  # the data is 0x25 bytes: no ';' after 0x24
        (HEAD + b"25" + B_DATA + b"," + B_ARQC, b"80"),  # no ';'
        (GOOD[:-1], b"15"),  # ARQC cut short
        (GOOD + b"01", b"15"),  # an ARC in mode 0
        (kq("1", "P", B_MK_AC, B_Y, B_ATC, B_UN, B_DATA, B_ARQC, b"0"), b"15"),  # ARC cut short
        (HEAD[:-3], b"15"),
    ],
)
def test_malformed_requests_answer_the_payshield_codes(request_: bytes, error: bytes) -> None:
    assert call(request_) == b"KR" + error


def test_an_mk_ac_under_another_key_type_is_a_parity_error() -> None:
    # The same clear key stored as a TAK (003): decrypted as 109 it is another key, whose
    # parity is wrong.
    as_tak = lmk_field("003", with_odd_parity(B_IMK))
    assert not odd_parity(clear_from_field("109", as_tak))
    assert call(kq("0", "P", as_tak, B_Y, B_ATC, B_UN, B_DATA, B_ARQC)) == b"KR10"


def test_reference_lists_kq_with_its_schemes_and_meanings() -> None:
    text = render_reference()
    section = text.split("## KQ → KR: Verify an ARQC and/or Generate an ARPC\n", 1)[1].split("\n## ", 1)[0]
    assert "| PAN/PSN | 8B |" in section and "| MK-AC | U+32H |" in section
    assert "`P` extension: UnionPay PBOC CVN 01" in section
    assert "- `04` Invalid mode flag" in section and "- `01` ARQC/TC/AAC verification failed" in section


# --- key type 109 ---------------------------------------------------------------------------


def test_zk_imports_a_clear_imk_ac_as_key_type_109() -> None:
    answer = HSM.handle(b"ZK109U" + B["imk_ac"].encode()).decode()
    assert answer[:4] == "ZL01"  # parity forced odd: the published key has even-parity bytes
    assert answer[4:] == B_MK_AC + kcv(with_odd_parity(B_IMK))


def test_bu_check_value_of_an_mk_ac() -> None:
    expected = kcv(with_odd_parity(B_IMK), 16)
    assert HSM.handle(f"BU191{B_MK_AC}".encode()).decode() == "BV00" + expected
    assert HSM.handle(f"BUFF1{B_MK_AC};109".encode()).decode() == "BV00" + expected


def test_a0_generates_an_mk_ac() -> None:
    answer = HSM.handle(b"A00109U").decode()
    assert answer[:4] == "A100"
    field, check = answer[4:37], answer[37:]
    clear = clear_from_field("109", field)
    assert odd_parity(clear) and check == kcv(clear)


# --- over TCP: the server on a free port, the typed client ----------------------------------


@pytest.fixture
async def transport() -> AsyncIterator[TcpTransport]:
    running: RunningHsm = await serve_hsm(HsmServerConfig(port=0, shutdown_timeout=2.0))
    tcp = TcpTransport("127.0.0.1", running.port)
    try:
        yield tcp
    finally:
        await tcp.close()
        await running.close()


@pytest.fixture
def client(transport: TcpTransport) -> HsmClient:
    return HsmClient(transport)


async def test_tcp_import_then_every_pboc_b_answer(client: HsmClient) -> None:
    imported = await client.import_clear_key("109", B_IMK)
    assert imported.parity_fixed and imported.under_lmk == B_MK_AC and imported.kcv == kcv(with_odd_parity(B_IMK))
    mk = imported.under_lmk
    check = await client.verify_arqc(Scheme.PBOC, mk, B["pan"], B["psn"], B_ATC, B_UN, B_DATA, B_ARQC)
    assert check == CryptogramCheck(True, None)
    for arc, arpc in B_ARPCS:
        got = await client.verify_arqc(Scheme.PBOC, mk, B["pan"], B["psn"], B_ATC, B_UN, B_DATA, B_ARQC, arc=arc)
        assert got == CryptogramCheck(True, arpc)
        assert await client.generate_arpc(Scheme.PBOC, mk, B["pan"], B["psn"], B_ATC, B_UN, B_ARQC, arc) == arpc
    for wrong in (Scheme.EMV_COMMON, Scheme.VISA, Scheme.EUROPAY_MASTERCARD):
        got = await client.verify_arqc(wrong, mk, B["pan"], B["psn"], B_ATC, B_UN, B_DATA, B_ARQC, arc=b"00")
        assert got == CryptogramCheck(False, None)
    tampered = B_ARQC[:-1] + bytes([B_ARQC[-1] ^ 0x80])
    got = await client.verify_arqc(Scheme.PBOC, mk, B["pan"], B["psn"], B_ATC, B_UN, B_DATA, tampered, arc=b"00")
    assert got == CryptogramCheck(False, None)


async def test_tcp_card_key_arpc_vectors(client: HsmClient) -> None:
    for vector in CARD_KEY_ARPCS:
        mk = (await client.import_clear_key("109", H(vector["imk"]))).under_lmk
        arqc, arc = H(vector["arqc"]), H(vector["arc"])
        got = await client.generate_arpc(
            Scheme.EMV_COMMON, mk, vector["pan"], vector["psn"], b"\x00\x01", bytes(4), arqc, arc
        )
        assert got == H(vector["arpc1"]), vector["id"]


@pytest.mark.parametrize("scheme", ["0", "1", "E"])
async def test_tcp_other_schemes(client: HsmClient, scheme: str) -> None:
    objects, arqc, arpc = card(scheme)
    mk = (await client.import_clear_key("109", IMK)).under_lmk
    data = arqc_data(Scheme(scheme), objects)
    got = await client.verify_arqc(
        Scheme(scheme), mk, PAN, PSN, objects["9F36"].value, objects["9F37"].value, data, arqc, arc=b"00"
    )
    assert got == CryptogramCheck(True, arpc)


async def test_tcp_errors_reach_the_client_typed(client: HsmClient, transport: TcpTransport) -> None:
    not_mk = lmk_field("003", with_odd_parity(B_IMK))
    with pytest.raises(HsmError) as err:
        await client.verify_arqc(Scheme.PBOC, not_mk, B["pan"], B["psn"], B_ATC, B_UN, B_DATA, B_ARQC)
    assert err.value.code == "10"
    with pytest.raises(HsmError) as err:
        await client.verify_arqc(Scheme.PBOC, B_MK_AC, B["pan"], B["psn"], B_ATC, B_UN, b"", B_ARQC)
    assert err.value.code == "80"  # refused before it is sent
    assert await transport.request(b"KQ7" + GOOD[3:]) == b"KR04"
    assert await transport.request(HEAD + b"00;" + B_ARQC) == b"KR81"
    # the connection still serves after the errors
    assert await transport.request(GOOD) == b"KR00"
