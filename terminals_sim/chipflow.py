"""A chip transaction on the virtual terminal (docs/chip.md): field 55 built for the card's
first cryptogram, the card's verdict on the host's answer, and the 55 of what follows (the
reversal, the script result advice, the IC batch upload records).

Which data objects each message carries, in which order, is the catalogue's ``[icc]`` lists
(specs/dialects/cup-pos.messages.toml, from emv.json ``field55``); the card itself is
terminals_sim/chipcard.py.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from specs.catalogue import IccRules, MessageKind
from specs.message import Message
from specs.tlv import Tlv, TlvError, build, parse
from terminals_sim.chipcard import ChipProfile, FirstAc, first_ac, run_scripts, second_ac
from terminals_sim.financial import CURRENCY, ChipRecord, Transaction
from terminals_sim.outcome import Failure, Kind, Outcome

READ_CAPABILITY = "6"  # 60.4: this terminal reads contact and contactless chips
CONDITION_NORMAL, CONDITION_FALLBACK = "0", "2"  # 60.5 (the catalogue's fallback_value is "2")
FALLBACK_CAPABILITY = "5"  # 60.4 of a fallback: a contact reader whose chip read failed
_COUNTRY = bytes.fromhex("0" + CURRENCY)  # 9F1A and 5F2A: 0156, China and CNY
_CAPABILITIES = bytes.fromhex("E0E1C8")  # 9F33: IC + stripe + keyed; online PIN, signature; SDA DDA CDA
_TERMINAL_TYPE = b"\x22"  # 9F35: attended, online only, merchant-operated
_VERSION = bytes.fromhex("0020")  # 9F09
_CVM_ONLINE_PIN = bytes.fromhex("420300")  # 9F34: enciphered PIN online, successful
_CVM_NONE = bytes.fromhex("1F0302")  # 9F34: no CVM required, successful
# 9C, the EMV transaction type, of each family.
_TRANSACTION_TYPE = {
    Kind.PURCHASE: b"\x00",
    Kind.BALANCE: b"\x31",
    Kind.VOID: b"\x20",
    Kind.REFUND: b"\x20",
    Kind.PREAUTH: b"\x03",
}


def read_subfields(icc: IccRules) -> dict[str, str]:
    return {icc.read_capability_field: READ_CAPABILITY, icc.condition_field: CONDITION_NORMAL}


def fallback_subfields(icc: IccRules) -> dict[str, str]:
    return {icc.read_capability_field: FALLBACK_CAPABILITY, icc.condition_field: icc.fallback_value}


def sale(
    icc: IccRules,
    entry: MessageKind,
    family: Kind,
    chip: ChipProfile,
    amount_cents: int,
    with_pin: bool,
    terminal_id: str,
    stan: str,
) -> tuple[str, FirstAc, dict[str, Tlv]]:
    """Field 55 (hex) of a chip request, the card's first AC, and every object it carries."""
    terminal_data = {
        "9F02": bytes.fromhex(f"{amount_cents:012d}"),
        "9F03": bytes(6),
        "9F1A": _COUNTRY,
        "95": bytes(5),  # TVR: nothing the terminal found wrong
        "5F2A": _COUNTRY,
        "9A": bytes.fromhex(time.strftime("%y%m%d")),
        "9C": _TRANSACTION_TYPE.get(family, b"\x00"),
        "9F37": secrets.token_bytes(4),
    }
    first = first_ac(chip, terminal_data)
    objects: dict[str, Tlv] = {tag: Tlv(tag, value) for tag, value in terminal_data.items()}
    objects |= dict(first.objects)
    objects |= {
        "9F33": Tlv("9F33", _CAPABILITIES),
        "9F34": Tlv("9F34", _CVM_ONLINE_PIN if with_pin else _CVM_NONE),
        "9F35": Tlv("9F35", _TERMINAL_TYPE),
        "9F1E": Tlv("9F1E", terminal_id.encode("ascii")[:8].ljust(8, b" ")),
        "84": Tlv("84", chip.aid),
        "9F09": Tlv("9F09", _VERSION),
        "9F41": Tlv("9F41", bytes.fromhex("00" + stan)),
    }
    assert entry.icc is not None
    return field55(icc, entry.icc, objects.get), first, objects


def field55(icc: IccRules, list_name: str, get: Callable[[str], Tlv | None]) -> str:
    """The objects of the catalogue's list ``list_name``, in its order, those ``get`` has."""
    found = [obj for tag in icc.lists[list_name].tags if (obj := get(tag)) is not None]
    return build(found).hex().upper()


def complete(
    card: ChipProfile, first: FirstAc, outcome: Outcome, message: Message | None
) -> tuple[Outcome, ChipRecord | None, bytes]:
    """The card's second GENERATE AC on the host's answer: the outcome the terminal reports
    (an approval whose ARPC failed is the host's fault, and the card declined it), the
    cryptogram objects it made, and the results of any issuer scripts (DF31)."""
    if message is None or outcome.failure is not None or outcome.response_code is None:
        return outcome, None, b""
    try:
        objects = parse(bytes.fromhex(message.get(55) or ""), field="55")
    except TlvError as exc:
        return _broken(outcome, f"answer's 55: {exc.describe()}"), None, b""
    tag91 = next((o.value for o in objects if o.tag == "91"), None)
    decision = second_ac(card, first, tag91, outcome.response_code)
    scripts = run_scripts([o for o in objects if o.tag in ("71", "72")])
    final = {"9F26": decision.cryptogram, "9F27": decision.cid}
    record = ChipRecord(objects={}, subfields={}, entry_mode="", final=final, scripts=scripts)
    if outcome.response_code == "00" and not decision.approved:
        detail = f"{decision.problem}: the card declined the host's approval (AAC) and the terminal reverses it"
        return _broken(outcome, detail), record, scripts
    return outcome, record, scripts


def _broken(outcome: Outcome, detail: str) -> Outcome:
    return Outcome(kind=outcome.kind, response_code=outcome.response_code, failure=Failure.PROTOCOL, detail=detail)


def reversal_55(icc: IccRules, txn: Transaction) -> str:
    assert txn.chip is not None
    return field55(icc, "reversal", txn.chip.data)


def advice_55(icc: IccRules, txn: Transaction) -> str:
    assert txn.chip is not None
    return field55(icc, "script_advice", txn.chip.data)


def upload_55(icc: IccRules, txn: Transaction) -> str:
    assert txn.chip is not None
    return field55(icc, "tc_upload", txn.chip.data)


def upload_62(txn: Transaction) -> str:
    """62 of an IC record (emv.json cup_ic_messages.0320_ic_batch_upload): usage '61', '00' a
    UnionPay card, '00', the amount (12 digits) and the currency."""
    return f"610000{txn.amount_cents:012d}{CURRENCY}".encode("ascii").hex().upper()
