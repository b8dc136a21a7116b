"""KQ: verify an ARQC and/or generate an ARPC (payShield layout, plus two switchsim schemes).

Request: mode flag, scheme ID, MK-AC (the issuer master key, key type 109 = LMK pair 28-29
variant 1), PAN/PSN (8 bytes), ATC (2), UN (4), then for modes 0 and 1 the transaction data
(its length as 2 hex characters, the data, ';'), the ARQC (8) and for modes 1 and 2 the ARC
(2). Answer KR with error 00 and, for modes 1 and 2, the ARPC (8 bytes); 01 when the ARQC
does not verify (no ARPC then). The layout and codes are those ../shared/vectors/emv.json
(``payshield_emv``) gives from public payShield clients; the schemes' rules are in
``hsm_sim.emv``:

* 0 Visa (CVN 10): the card key MACs (no session key), zero padding, ARPC under the card key;
* 1 Europay/MasterCard (M/Chip, CVN 16): the MasterCard session key from ATC and UN, ARPC
  under the card key;
* P (switchsim extension) UnionPay PBOC CVN 01: the PBOC session key from the ATC, ARPC under
  the session key;
* E (switchsim extension) EMV common session key (R = ATC || 000000000000), ARPC under the
  card key.

The HSM pads the transaction data itself (method 1 for scheme 0, method 2 otherwise). Modes 3
and 4 (a discretionary MAC under an MK-SMI) are not served and answer 04, like an unknown
mode. Error 03 (modes 3/4 with a scheme other than 0) therefore never occurs.
"""

from __future__ import annotations

from hsm_sim.commands.keyfields import KEY_TYPE_MK_AC, from_lmk
from hsm_sim.emv import Cryptograms, Scheme, icc_master_key
from hsm_sim.errors import ErrorCode, HsmError
from hsm_sim.hostcmd import Command, CommandSpec, FieldCursor, FieldKind, FieldSpec, HsmContext, Reply, ok

_E = ErrorCode

VERIFY, VERIFY_AND_ARPC, ARPC_ONLY = "0", "1", "2"
MAX_TRANSACTION_DATA = 0xFF

_MODE = FieldSpec(
    name="Mode flag",
    kind=FieldKind.CHOICE,
    length=1,
    choices=(
        (VERIFY, "verify the ARQC"),
        (VERIFY_AND_ARPC, "verify the ARQC and generate the ARPC"),
        (ARPC_ONLY, "generate the ARPC only"),
    ),
    error=_E.INVALID_KEY_TYPE,
    description="Modes 3 and 4 (discretionary MAC under MK-SMI) are not supported.",
)
_SCHEME = FieldSpec(
    name="Scheme ID",
    kind=FieldKind.CHOICE,
    length=1,
    choices=(
        (Scheme.VISA.value, "Visa (CVN 10): no session key, zero padding, ARPC under the card key"),
        (
            Scheme.EUROPAY_MASTERCARD.value,
            "Europay/MasterCard (M/Chip): session key from R = ATC + 0000 + UN, ARPC under the card key",
        ),
        (
            Scheme.PBOC.value,
            "extension: UnionPay PBOC CVN 01, PBOC session key from the ATC, ARPC under the session key",
        ),
        (
            Scheme.EMV_COMMON.value,
            "extension: EMV common session key (R = ATC + 000000000000), ARPC under the card key",
        ),
    ),
    error=_E.INVALID_KEY_LENGTH_FLAG,
)
_MK_AC = FieldSpec(
    name="MK-AC",
    kind=FieldKind.KEY,
    key_schemes="U",
    description="Issuer master key for application cryptograms under LMK pair 28-29 variant 1 "
    "(key type 109); the card key is derived from it by EMV option A.",
)
_PAN_PSN = FieldSpec(
    name="PAN/PSN",
    kind=FieldKind.BINARY,
    length=8,
    description="The rightmost 16 digits of PAN || PSN (zero-filled on the left) as 8 BCD bytes.",
)
_ATC = FieldSpec(name="ATC", kind=FieldKind.BINARY, length=2, description="Application transaction counter (9F36).")
_UN = FieldSpec(
    name="UN",
    kind=FieldKind.BINARY,
    length=4,
    description="Unpredictable number (9F37); scheme 1's session key uses it, the others find it "
    "in the transaction data.",
)
_DATA_LENGTH = FieldSpec(
    name="Transaction data length",
    kind=FieldKind.HEX,
    length=2,
    error=_E.DATA_LENGTH,
    condition="modes 0 and 1",
    description="Bytes of transaction data, 01-FF.",
)
_DATA = FieldSpec(
    name="Transaction data",
    kind=FieldKind.BYTES,
    condition="modes 0 and 1",
    description="What the card MACed, unpadded: the HSM pads it as the scheme says.",
)
_DELIMITER = FieldSpec(
    name="Delimiter",
    kind=FieldKind.CHARS,
    length=1,
    error=_E.DATA_LENGTH,
    condition="modes 0 and 1",
    description="';' where the data length says the data ends.",
)
_ARQC = FieldSpec(name="ARQC", kind=FieldKind.BINARY, length=8, description="The card's ARQC (9F26), TC or AAC.")
_ARC = FieldSpec(
    name="ARC",
    kind=FieldKind.BINARY,
    length=2,
    condition="modes 1 and 2",
    description="Authorisation response code as the card will see it in tag 91 ('00' is 3030).",
)
_ARPC = FieldSpec(
    name="ARPC",
    kind=FieldKind.BINARY,
    length=8,
    condition="modes 1 and 2",
    description="ARPC method 1: 3DES(ARQC xor ARC || 000000000000); tag 91 = ARPC || ARC.",
)

KQ_SPEC = CommandSpec(
    code="KQ",
    name="Verify an ARQC and/or Generate an ARPC",
    request=(_MODE, _SCHEME, _MK_AC, _PAN_PSN, _ATC, _UN, _DATA_LENGTH, _DATA, _DELIMITER, _ARQC, _ARC),
    response=(_ARPC,),
    errors=(
        _E.NO_ERROR,
        _E.VERIFICATION_FAILURE,
        _E.INVALID_KEY_TYPE,
        _E.INVALID_KEY_LENGTH_FLAG,
        _E.SOURCE_KEY_PARITY,
        _E.INPUT_DATA,
        _E.KEY_SCHEME,
        _E.DATA_LENGTH,
        _E.ZERO_LENGTH,
    ),
    error_meanings=(
        (_E.VERIFICATION_FAILURE, "ARQC/TC/AAC verification failed"),
        (_E.INVALID_KEY_TYPE, "Invalid mode flag"),
        (_E.INVALID_KEY_LENGTH_FLAG, "Unrecognised scheme ID"),
        (_E.SOURCE_KEY_PARITY, "MK-AC parity error"),
        (_E.DATA_LENGTH, "Transaction data length error"),
        (_E.ZERO_LENGTH, "Zero-length transaction data"),
    ),
    notes="Schemes 0 and 1 are payShield's; P and E are switchsim extensions a payShield answers "
    "05. The ARQC and ARPC rules of each scheme are in hsm_sim/emv.py.",
)


def _kq(ctx: HsmContext, cur: FieldCursor) -> Reply:
    mode = cur.read(_MODE)
    scheme = Scheme(cur.read(_SCHEME))
    mk_ac = from_lmk(ctx.lmk, KEY_TYPE_MK_AC, cur.read_key(_MK_AC), "MK-AC")
    y = cur.take_bytes(_PAN_PSN.length, _PAN_PSN.name)
    atc = cur.take_bytes(_ATC.length, _ATC.name)
    un = cur.take_bytes(_UN.length, _UN.name)
    data = b""
    if mode != ARPC_ONLY:
        size = int(cur.read(_DATA_LENGTH), 16)
        if size == 0:
            raise HsmError(_E.ZERO_LENGTH, "Transaction data length: 00")
        if cur.remaining < size + 1:
            raise HsmError(_E.DATA_LENGTH, f"Transaction data: fewer than {size} bytes and ';' follow")
        data = cur.take_bytes(size, _DATA.name)
        if not cur.take_if(";"):
            raise HsmError(_E.DATA_LENGTH, f"Delimiter: no ';' after {size} bytes of transaction data")
    cryptogram = cur.take_bytes(_ARQC.length, _ARQC.name)
    arc = cur.take_bytes(_ARC.length, _ARC.name) if mode != VERIFY else b""
    cur.finish()
    card = Cryptograms.of(scheme, icc_master_key(mk_ac, y), atc, un)
    if mode != ARPC_ONLY and not card.verifies(data, cryptogram):
        return Reply(_E.VERIFICATION_FAILURE)
    if mode == VERIFY:
        return ok()
    return ok(card.arpc(cryptogram, arc))


KQ = Command(KQ_SPEC, _kq)
