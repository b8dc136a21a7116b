"""Chip (ICC) requests on the switch (docs/chip.md).

Field 55 is read against the tag list the kind's catalogue entry names (a mandatory tag missing
is 30, naming it). For a kind that carries an ARQC, the ARQC input is rebuilt from 55 by
``hsm_sim.emv.arqc_data`` for the scheme the card's IAD (9F10) names, and the HSM verifies the
ARQC and makes the ARPC for 39 = 00 in one KQ (mode 1). When the answer is another code, or the
ARQC failed, a second KQ (mode 2) makes the ARPC for that code: the answer's 55 is always
91 = ARPC || ARC where the ARC is the answer's 39. The switch never sees the card key.

The card's ATC must go up: a repeated or lower one is logged and named in the answer's reason,
and refused (with the ARQC failure code) under strict checks (``[checks] strict``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hsm_sim.cryptoerrors import CryptoError
from hsm_sim.emv import MINIMUM_AC_TAGS, Scheme, arqc_data, scheme_for_iad
from hsm_sim.errors import HsmError
from specs.catalogue import IccRules, MessageKind
from specs.catalogue_loader import catalogue_for
from specs.logs import get_logger
from specs.message import Message
from specs.response import ResponseCode
from specs.tlv import Tlv, TlvError, build, check_lengths, parse, require, unique
from specs.track2 import parse_track2
from switch.context import Result, Services
from switch.records import Card

_log = get_logger("switch")
_ARC_APPROVED = b"00"
_HSM_FAILED = ResponseCode.SECURITY_PROCESSING_FAILURE
_DATA_TAGS = " ".join(tag for tag, _ in MINIMUM_AC_TAGS)


def rules_for(message: Message) -> IccRules | None:
    return catalogue_for(message.dialect).icc


def read_icc(message: Message, kind: MessageKind) -> Mapping[str, Tlv] | Result:
    """Field 55 by tag, every mandatory tag of the kind's list present; else a 30 naming what."""
    icc = rules_for(message)
    assert icc is not None and kind.icc is not None  # the catalogue checked both
    tags = icc.lists[kind.icc]
    raw = message.get(icc.field)
    if raw is None:
        return Result(ResponseCode.FORMAT_ERROR, reason=f"field {icc.field} missing: a {kind.name} carries ICC data")
    where = str(icc.field)
    try:
        objects = unique(parse(bytes.fromhex(raw), field=where), field=where)
        require(objects, tags.mandatory, field=where)
        check_lengths(objects.values(), field=where)
    except TlvError as exc:
        return Result(ResponseCode.FORMAT_ERROR, reason=exc.describe())
    return objects


def swiped_chip_card(message: Message) -> str | None:
    """Why a magnetic request must be refused 45 ("use the chip"), or None: a chip card's
    service code (2xx, 6xx) in 35, read from the stripe (22 = 02x), without the fallback
    indicator (60.5 = 2) that says the chip could not be read."""
    icc = rules_for(message)
    track = message.get(35)
    if icc is None or track is None or (message.get(22) or "")[:2] != icc.swiped_entry_mode:
        return None
    parts = parse_track2(track)
    service = parts.service_code if parts is not None else None
    if not service or service[0] not in icc.chip_service_codes:
        return None
    if message.sub(icc.condition_field) == icc.fallback_value:
        return None
    return (
        f"a chip card (service code {service[0]}xx) was swiped without the fallback indicator "
        f"({icc.condition_field} = {icc.fallback_value}): use the chip"
    )


@dataclass(frozen=True, slots=True, repr=False)
class ChipCheck:
    """What the switch found out about one chip request's cryptogram."""

    card: Card
    pan: str
    scheme: Scheme
    psn: str
    atc: bytes
    un: bytes
    arqc: bytes
    verified: bool
    arpc_approved: bytes | None  # the ARPC for ARC 00, made with the verification
    atc_problem: str  # "" when the ATC went up
    described: str  # what was checked, for the reason of a refusal

    @property
    def refuse(self) -> bool:
        return not self.verified

    def __repr__(self) -> str:
        return f"ChipCheck({self.card.pan_masked}, {self.scheme.name}, verified={self.verified})"


async def check_arqc(
    services: Services, message: Message, card: Card, pan: str, objects: Mapping[str, Tlv]
) -> ChipCheck | Result:
    """Verify the ARQC of a chip request (KQ mode 1); a Result when it cannot be checked at all."""
    failure = ResponseCode(services.config.arqc_failure_code)
    try:
        scheme = scheme_for_iad(objects["9F10"].value)
    except CryptoError as exc:
        return Result(failure, reason=f"ARQC not checked: {exc.reason}")
    try:
        data = arqc_data(scheme, objects)
    except TlvError as exc:
        return Result(ResponseCode.FORMAT_ERROR, reason=exc.describe())
    given_psn = message.get(23)
    psn = given_psn[-2:] if given_psn else (card.psn or "00")
    atc, un, arqc = objects["9F36"].value, objects["9F37"].value, objects["9F26"].value
    if len(arqc) != 8:
        return Result(ResponseCode.FORMAT_ERROR, reason=f"field 55 tag 9F26: {len(arqc)} bytes, an ARQC is 8")
    iad = objects["9F10"].value
    described = (
        f"{scheme.name} rules (9F10 format {iad[0]:02X}, CVN {iad[2]:02X}), card key from the IMK-AC, the PAN and "
        f"PSN {psn} ({'field 23' if given_psn else 'the registered card'}), session key from ATC {atc.hex().upper()}, "
        f"MAC over {len(data)} bytes of 55 ({_DATA_TAGS} and the IAD's {_iad_part(scheme)})"
    )
    try:
        result = await services.keys.hsm.verify_arqc(
            scheme, card.imk_ac_lmk, pan, psn, atc, un, data, arqc, arc=_ARC_APPROVED
        )
    except HsmError as exc:
        return Result(_HSM_FAILED, reason=f"the HSM could not check the ARQC: {exc.reason}")
    atc_value = int.from_bytes(atc, "big")
    atc_problem = ""
    if card.atc >= 0 and atc_value <= card.atc:
        atc_problem = f"ATC {atc_value:04X} is not above the card's last {card.atc:04X}"
        _log.warning("atc_not_increasing", card=card.pan_masked, atc=f"{atc_value:04X}", last=f"{card.atc:04X}")
    if result.verified and not (atc_problem and services.config.strict_checks):
        await services.store.set_card_atc(card.pan_ref, atc_value)
    return ChipCheck(card, pan, scheme, psn, atc, un, arqc, result.verified, result.arpc, atc_problem, described)


def refusal(services: Services, check: ChipCheck) -> tuple[ResponseCode, str] | None:
    """The code and reason to decline a chip request with before its business is looked at,
    or None to serve it."""
    failure = ResponseCode(services.config.arqc_failure_code)
    if not check.verified:
        return failure, f"ARQC did not verify: checked with {check.described}"
    if check.atc_problem and services.config.strict_checks:
        return failure, f"{check.atc_problem} ([checks] strict)"
    return None


async def with_arpc(services: Services, check: ChipCheck, result: Result) -> Result:
    """The answer with 55 = 91 (ARPC || ARC), the ARC being the answer's 39."""
    arc = str(result.code).encode("ascii")
    reason = result.reason
    if check.atc_problem and check.atc_problem not in reason:
        reason = f"{reason}; warning: {check.atc_problem}"
    if arc == _ARC_APPROVED and check.arpc_approved is not None:
        arpc = check.arpc_approved
    else:
        try:
            arpc = await services.keys.hsm.generate_arpc(
                check.scheme, check.card.imk_ac_lmk, check.pan, check.psn, check.atc, check.un, check.arqc, arc
            )
        except HsmError as exc:
            return Result(_HSM_FAILED, reason=f"the HSM could not make the ARPC: {exc.reason}")
    fields = {**result.fields, 55: build((Tlv("91", arpc + arc),)).hex().upper()}
    return result._replace(fields=fields, reason=reason)


def with_script(result: Result, script: bytes) -> Result:
    """An answer that carries 55 (a chip answer) with an issuer script template (71/72) added
    after what it holds; any other answer unchanged."""
    current = result.fields.get(55)
    if current is None:
        return result
    fields = {**result.fields, 55: current + script.hex().upper()}
    return result._replace(fields=fields, reason=f"{result.reason}; issuer script added")


def script_results(objects: Mapping[str, Tlv]) -> list[str]:
    """DF31 (5 bytes a script, as EMV's 9F5B): result nibble, sequence, script identifier."""
    raw = objects["DF31"].value if "DF31" in objects else b""
    meanings = {0: "not performed", 1: "failed", 2: "successful"}
    out = []
    for i in range(0, len(raw) - len(raw) % 5, 5):
        first, ident = raw[i], raw[i + 1 : i + 5]
        result = meanings.get(first >> 4, f"result {first >> 4:X}")
        if first >> 4 == 1 and first & 0x0F:
            result += f" at command {first & 0x0F}"
        out.append(f"script {ident.hex().upper()}: {result}")
    if len(raw) % 5:
        out.append(f"{len(raw) % 5} bytes left over (DF31 is 5 bytes a script)")
    return out


def _iad_part(scheme: Scheme) -> str:
    part = scheme.rules.iad_part
    if part.stop is None:
        return "whole IAD"
    return f"bytes {part.start + 1}-{part.stop} (CVR)"
