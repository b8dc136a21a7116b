"""The virtual terminal playing a chip card (docs/chip.md), no sockets: its ARQC against the
published PBOC vector B of ../shared/vectors/emv.json, its field 55 recomputed with the
independent helpers of tests/switch/independent.py, and what it does with the host's answer
(TC on a good ARPC; on a bad one it declines and reverses with 06 and uploads an ARPC-error
record; issuer scripts and their 0620 advice; the IC downloads and their checksums)."""

from __future__ import annotations

import json

import pytest

from specs.message import Message
from terminals_sim.chipcard import AtcCounter, CardType, ChipProfile, first_ac
from terminals_sim.financial import CardProfile
from terminals_sim.outcome import Failure, Kind
from terminals_sim.terminal import TerminalProtocolError, VirtualTerminal
from tests.switch import independent as ind
from tests.terminals_sim.test_financial import CODEC, reply, signed_in
from tests.terminals_sim.test_terminal import request_of
from tests.vectorfiles import vector_path

VECTORS = json.loads(vector_path("emv.json").read_text())
B = VECTORS["pboc_cvn01_examples"][1]
IMK = bytes.fromhex(B["imk_ac"])
SALE_ORDER = VECTORS["field55"]["sale_0200_order"]
CHIP = CardProfile("6228000100001", "3012", "220", "123456", chip=ChipProfile.of_imk(IMK, "6228000100001", "01"))


def chip_terminal() -> VirtualTerminal:
    return signed_in(card=CHIP)


def objects(message: Message) -> dict[str, bytes]:
    return dict(ind.tlv_objects(bytes.fromhex(message[55])))


def session_key(atc: bytes) -> bytes:
    return ind.pboc_session_key(ind.card_key_option_a(IMK, B["pan"], B["psn"]), atc)


def tag91(sent: dict[str, bytes], arc: bytes, *, wrong: bool = False) -> str:
    arpc = ind.arpc_method1(session_key(sent["9F36"]), sent["9F26"], arc)
    if wrong:
        arpc = bytes([arpc[0] ^ 0x80]) + arpc[1:]
    return (ind.tlv("91", arpc + arc)).hex().upper()


def test_the_card_computes_the_published_arqc() -> None:
    card = ChipProfile.of_imk(IMK, B["pan"], B["psn"], CardType.PBOC)
    assert card.card_key == bytes.fromhex(B["udk_no_parity"])  # DES ignores parity: the unadjusted UDK
    published = {k: bytes.fromhex(v) for k, v in B["pboc_input_from_tags"].items()}
    chip = ChipProfile(card.card_key, "01", aip=published["82"], issuer_data=published["9F10"], atc=AtcCounter(0x023F))
    terminal = {t: published[t] for t in ("9F02", "9F03", "9F1A", "95", "5F2A", "9A", "9C", "9F37")}
    first = first_ac(chip, terminal)
    assert first.data.hex().upper() == B["arqc_input"]
    assert first.arqc.hex().upper() == B["arqc"] and first.atc == bytes.fromhex(B["atc"])


def test_a_chip_purchase_carries_55_in_the_sale_order_with_an_arqc_that_verifies() -> None:
    t = chip_terminal()
    req = request_of(t.start_transaction(Kind.CHIP_PURCHASE, 1234))
    assert (req.mti, req[3], req[22], req[23], req[2]) == ("0200", "000000", "051", "001", CHIP.pan)
    assert req.sub("60.1") == "22" and (req.sub("60.4"), req.sub("60.5")) == ("6", "0")
    sent = ind.tlv_objects(bytes.fromhex(req[55]))
    tags = [tag for tag, _ in sent]
    assert tags == [tag for tag in SALE_ORDER if tag in tags] and len(tags) == 20  # all but 9F63
    values = dict(sent)
    assert values["9F02"] == bytes.fromhex("000000001234") and values["9F27"] == b"\x80"
    assert values["9F26"] == ind.mac_algorithm3(session_key(values["9F36"]), ind.pboc_arqc_input(values))


def test_a_good_arpc_completes_with_a_tc_and_the_tc_is_uploaded_after_settlement() -> None:
    t = chip_terminal()
    req = request_of(t.start_transaction(Kind.CHIP_PURCHASE, 5000))
    sent = objects(req)
    outcome = t.receive(reply(req, f37="000000000007", f38="AUTH07", f13="0612", f55=tag91(sent, b"00")))
    assert outcome.ok, outcome
    txn = t.last_transaction
    assert txn is not None and txn.chip is not None and txn.chip.final["9F27"].value == b"\x40"  # a TC
    settle = request_of(t.start_settlement())
    assert settle[48] == "0000000050000010000000000000000"  # one debit of 50.00, flag 0
    assert t.receive(reply(settle, f48="0000000050000010000000000000001")).ok
    upload = request_of(t.start_batch_upload())
    assert (upload.mti, upload.sub("60.3"), upload[11], upload[4]) == ("0320", "203", req[11], "000000005000")
    assert bytes.fromhex(upload[62]) == b"610000000000005000156"
    record = objects(upload)
    assert record["9F27"] == b"\x40" and record["9F36"] == sent["9F36"]
    assert t.receive(reply(upload)).ok
    end = request_of(t.start_batch_upload())
    assert (end.mti, end.sub("60.3")) == ("0320", "202")
    assert t.receive(reply(end)).ok and not t.uploading and t.batch == "000124"


def test_a_bad_arpc_declines_reverses_with_06_and_is_uploaded_as_an_arpc_error() -> None:
    t = chip_terminal()
    req = request_of(t.start_transaction(Kind.CHIP_PURCHASE, 700))
    sent = objects(req)
    outcome = t.receive(reply(req, f37="000000000008", f13="0612", f55=tag91(sent, b"00", wrong=True)))
    assert outcome.failure is Failure.PROTOCOL and "ARPC in 91 does not verify" in outcome.detail
    assert t.reversal_due is not None
    reversal = request_of(t.start_reversal())
    assert (reversal.mti, reversal[39], reversal[11], reversal[22], reversal[23]) == ("0400", "06", req[11], "051",
                                                                                    "001")
    assert [tag for tag, _ in ind.tlv_objects(bytes.fromhex(reversal[55]))] == ["95", "9F1E", "9F10", "9F36"]
    assert reversal[60] == req[60]
    assert t.receive(reply(reversal)).ok and t.reversal_due is None
    settle = request_of(t.start_settlement())
    assert t.receive(reply(settle, f48="0" * 30 + "1")).ok
    upload = request_of(t.start_batch_upload())
    assert upload.sub("60.3") == "204" and objects(upload)["9F27"] == b"\x00"  # the card's AAC
    assert t.receive(reply(upload)).ok
    assert request_of(t.start_batch_upload()).sub("60.3") == "202"


def test_a_decline_needs_no_good_arpc_and_a_missing_91_on_approval_is_refused() -> None:
    t = chip_terminal()
    req = request_of(t.start_transaction(Kind.CHIP_PURCHASE, 700))
    assert t.receive(reply(req, "59", f55=tag91(objects(req), b"59"))).response_code == "59"
    assert t.reversal_due is None
    req = request_of(t.start_transaction(Kind.CHIP_PURCHASE, 700))
    outcome = t.receive(reply(req, f37="000000000009", f13="0612"))
    assert outcome.failure is Failure.PROTOCOL and "no 91" in outcome.detail and t.reversal_due is not None


def test_issuer_scripts_are_run_and_their_results_advised_in_a_0620() -> None:
    t = chip_terminal()
    req = request_of(t.start_transaction(Kind.CHIP_PURCHASE, 300))
    sent = objects(req)
    script = ind.tlv("72", ind.tlv("9F18", bytes.fromhex("11223344")) + ind.tlv("86", bytes.fromhex("8424000000")))
    answer = tag91(sent, b"00") + script.hex().upper()
    assert t.receive(reply(req, f37="000000000010", f38="AUTH10", f13="0612", f55=answer)).ok
    assert t.advice_due is not None
    advice = request_of(t.start(Kind.SCRIPT_ADVICE))
    assert (advice.mti, advice.sub("60.3"), advice[3], advice[37], advice[38]) == ("0620", "951", "000000",
                                                                                "000000000010", "AUTH10")
    assert advice[61] == t.batch + req[11] + "0612" and advice[11] != req[11]
    assert (advice.sub("60.4"), advice.sub("60.5")) == ("6", "0")
    tags = [tag for tag, _ in ind.tlv_objects(bytes.fromhex(advice[55]))]
    assert tags == [t_ for t_ in VECTORS["field55"]["script_advice_0620_951"] if t_ in tags] and "DF31" in tags
    assert objects(advice)["DF31"] == bytes.fromhex("2011223344")  # result 2 (successful), the script's 9F18
    assert t.receive(reply(advice)).ok and t.advice_due is None


def _download_answer(req: Message, field62: bytes) -> bytes:
    return reply(req, f62=field62.hex().upper())


def test_the_ca_key_download_checks_every_checksum() -> None:
    t = chip_terminal()
    t.begin_download(Kind.CAPK_DOWNLOAD)
    listing = request_of(t.start(Kind.CAPK_LIST))
    assert (listing.mti, listing.sub("60.3"), bytes.fromhex(listing[62])) == ("0820", "372", b"100")
    keys = VECTORS["capk"]
    entry = [ind.tlv("9F06", bytes.fromhex(k["rid"])) + ind.tlv("9F22", bytes.fromhex(k["index"]))
             + ind.tlv("DF05", b"20301231") for k in keys]
    assert t.receive(_download_answer(listing, b"2" + entry[0] + entry[1])).ok
    more = request_of(t.start(Kind.CAPK_LIST))
    assert bytes.fromhex(more[62]) == b"102"
    assert t.receive(_download_answer(more, b"3" + entry[2] + entry[3])).ok
    for key in keys:
        record = request_of(t.start(Kind.CAPK_RECORD))
        assert bytes.fromhex(record[62]) == entry[keys.index(key)][:12]
        assert t.receive(_download_answer(record, b"1" + bytes.fromhex(key["tlv"]))).ok
    assert t.next_download is Kind.CAPK_DONE
    done = request_of(t.start(Kind.CAPK_DONE))
    assert (done.mti, done.sub("60.3")) == ("0800", "371") and t.receive(reply(done)).ok
    assert t.next_download is None and len(t.ic.capks) == 4
    # a record whose DF03 is not the SHA-1 of RID, index, modulus, exponent
    t.begin_download(Kind.CAPK_DOWNLOAD)
    listing = request_of(t.start(Kind.CAPK_LIST))
    assert t.receive(_download_answer(listing, b"1" + entry[0])).ok
    record = request_of(t.start(Kind.CAPK_RECORD))
    tampered = bytes.fromhex(keys[0]["tlv"].replace(keys[0]["checksum"], "00" * 20))
    outcome = t.receive(_download_answer(record, b"1" + tampered))
    assert outcome.failure is Failure.BAD_CHECK_VALUE and "checksum" in outcome.detail
    assert t.next_download is None and len(t.ic.capks) == 4  # what it had stays


def test_the_aid_download_keeps_each_record() -> None:
    t = chip_terminal()
    t.begin_download(Kind.AID_DOWNLOAD)
    listing = request_of(t.start(Kind.AID_LIST))
    example = bytes.fromhex(VECTORS["aid_param_tags"]["example"])
    aid = ind.tlv("9F06", bytes.fromhex("A000000333010101"))
    assert t.receive(_download_answer(listing, b"1" + aid)).ok
    record = request_of(t.start(Kind.AID_RECORD))
    assert bytes.fromhex(record[62]) == aid
    assert t.receive(_download_answer(record, b"1" + example)).ok
    assert t.receive(reply(request_of(t.start(Kind.AID_DONE)))).ok
    kept = t.ic.aids[bytes.fromhex("A000000333010101")]
    assert kept.value("DF11") == bytes.fromhex("D84000A800") and kept.amount("DF21") == 100000000000


def test_a_chip_step_refuses_a_card_without_chip() -> None:
    t = signed_in()
    with pytest.raises(TerminalProtocolError, match="has no chip"):
        t.start_transaction(Kind.CHIP_PURCHASE, 100)
    assert CODEC.dialect.name == "cup-pos"
