"""PIN commands: translation (CA, CC, JC, JE, JG), encryption (BA), verification (BC, DC, EC),
DUKPT translation (G0), and NG (decrypt an LMK-encrypted PIN; test mode only).

PIN block format codes follow payShield: 01 = ISO 9564-1 format 0 (ANSI X9.8), 05 = ISO format 1,
47 = ISO format 3. Format 48 (ISO format 4) needs AES working keys, which variant-LMK keys are
not, so it answers 23 like any other unsupported code. The PIN under LMK is described in
``hsm_sim.commands.lmkpin``.
"""

from __future__ import annotations

from hsm_sim.ciphers import tdes_ecb_decrypt, tdes_ecb_encrypt
from hsm_sim.commands.keyfields import KEY_TYPE_BDK, KEY_TYPE_TMK, KEY_TYPE_ZPK, from_lmk
from hsm_sim.commands.lmkpin import (
    CLEAR_PIN_FIELD,
    LMK_PIN_LENGTH,
    decrypt_pin,
    encrypt_pin,
    reference_number,
)
from hsm_sim.commands.pvv import visa_pvv
from hsm_sim.cryptoerrors import CryptoError, PinBlockFormatError
from hsm_sim.dukpt import DukptUsage, tdes_working_key
from hsm_sim.errors import ErrorCode, HsmError, crypto_error_code
from hsm_sim.hostcmd import (
    END_OF_MESSAGE,
    Command,
    CommandSpec,
    FieldCursor,
    FieldKind,
    FieldSpec,
    FixedRun,
    HsmContext,
    Reply,
    ok,
    verdict,
)
from hsm_sim.pinblock import MAX_PIN_LENGTH, MIN_PIN_LENGTH, PinBlockFormat, build_pinblock
from hsm_sim.pinblock import parse_pinblock as _parse_pinblock

_E = ErrorCode

PIN_BLOCK_FORMATS: dict[str, PinBlockFormat] = {
    "01": PinBlockFormat.ISO0,
    "05": PinBlockFormat.ISO1,
    "47": PinBlockFormat.ISO3,
}
_FORMAT_CHOICES = (
    ("01", "ISO 9564-1 format 0 (ANSI X9.8)"),
    ("05", "ISO 9564-1 format 1 (no PAN)"),
    ("47", "ISO 9564-1 format 3"),
)

# --- field specs ----------------------------------------------------------------------------


def _key(name: str, description: str, schemes: str = "ZUT") -> FieldSpec:
    return FieldSpec(name=name, kind=FieldKind.KEY, description=description, key_schemes=schemes)


def _format(name: str, description: str = "PIN block format code.") -> FieldSpec:
    return FieldSpec(
        name=name,
        kind=FieldKind.CHOICE,
        length=2,
        description=description,
        choices=_FORMAT_CHOICES,
        error=_E.PIN_BLOCK_FORMAT,
    )


def _block(name: str, description: str) -> FieldSpec:
    return FieldSpec(name=name, kind=FieldKind.HEX, length=16, description=description)


_TPK = _key("TPK", "Terminal PIN key under LMK pair 14-15 (key type 002).")
_ZPK = _key("ZPK", "Zone PIN key under LMK pair 06-07 (key type 001).")
_MAX_PIN = FieldSpec(
    name="Maximum PIN length",
    kind=FieldKind.DIGITS,
    length=2,
    description="04..12; a longer PIN answers 24.",
)
_ACCOUNT = FieldSpec(
    name="Account number",
    kind=FieldKind.DIGITS,
    length=12,
    description="The 12 right-most PAN digits excluding the check digit.",
)
_LMK_PIN = FieldSpec(
    name="PIN (LMK)",
    kind=FieldKind.HEX,
    length=LMK_PIN_LENGTH,
    description="PIN under LMK pair 02-03 in this HSM's form: TDES-ECB of the ISO format 0 "
    "block (PIN, account) under the pair, 16 hex.",
)
_PIN_LENGTH_OUT = FieldSpec(
    name="PIN length", kind=FieldKind.DIGITS, length=2, description="Length of the PIN."
)
_PVK = _key("PVK pair", "Double-length PVK under LMK pair 14-15 (key type 002).", "U")
_PVKI = FieldSpec(name="PVKI", kind=FieldKind.DIGITS, length=1, description="PVK index, 0-6.")
_PVV = FieldSpec(name="PVV", kind=FieldKind.DIGITS, length=4, description="Visa PVV on file.")

_PIN_ERRORS = (
    _E.NO_ERROR,
    _E.SOURCE_KEY_PARITY,
    _E.DEST_KEY_PARITY,
    _E.INPUT_DATA,
    _E.PIN_BLOCK_INVALID,
    _E.PIN_BLOCK_FORMAT,
    _E.PIN_LENGTH,
    _E.KEY_SCHEME,
)
_VERIFY_ERRORS = (_E.NO_ERROR, _E.VERIFICATION_FAILURE, *_PIN_ERRORS[1:])

# --- shared steps ---------------------------------------------------------------------------


def _read_format(cur: FieldCursor, spec: FieldSpec) -> PinBlockFormat:
    return PIN_BLOCK_FORMATS[cur.read(spec)]


def _pin_from_block(key: bytes, block_hex: str, fmt: PinBlockFormat, account: str) -> str:
    clear = tdes_ecb_decrypt(key, bytes.fromhex(block_hex))
    try:
        return _parse_pinblock(clear, account, fmt)
    except PinBlockFormatError:
        # The format code was validated already, so a wrong control nibble is bad block content
        # (20), not a bad format code (23). Generic reason: the core's quote clear-block nibbles.
        raise HsmError(_E.PIN_BLOCK_INVALID, f"PIN block: not a valid format {int(fmt)} block") from None
    except CryptoError as exc:
        raise HsmError(crypto_error_code(exc), f"PIN block: not a valid format {int(fmt)} block") from None


def _block_from_pin(key: bytes, pin: str, fmt: PinBlockFormat, account: str) -> str:
    return tdes_ecb_encrypt(key, build_pinblock(fmt, pin, account)).hex().upper()


def _max_pin_length(cur: FieldCursor) -> int:
    value = int(cur.read(_MAX_PIN))
    if not MIN_PIN_LENGTH <= value <= MAX_PIN_LENGTH:
        raise HsmError(_E.INPUT_DATA, "Maximum PIN length: must be 04..12")
    return value


# --- CA / CC: translate a PIN block between keys -------------------------------------------


def _translate_spec(code: str, name: str, source: FieldSpec, source_lmk: str) -> CommandSpec:
    return CommandSpec(
        code=code,
        name=name,
        request=(
            source,
            _key("Destination ZPK", "ZPK under LMK pair 06-07 (key type 001)."),
            _MAX_PIN,
            _block("Source PIN block", f"PIN block under the source {source_lmk}."),
            _format("Source PIN block format"),
            _format("Destination PIN block format"),
            _ACCOUNT,
        ),
        response=(
            _PIN_LENGTH_OUT,
            _block("Destination PIN block", "PIN block under the destination ZPK."),
            _format("Destination PIN block format", "As received."),
        ),
        errors=_PIN_ERRORS,
    )


CA_SPEC = _translate_spec(
    "CA",
    "Translate a PIN from TPK to ZPK Encryption",
    _key("Source TPK", "TPK under LMK pair 14-15 (key type 002)."),
    "TPK",
)
CC_SPEC = _translate_spec(
    "CC",
    "Translate a PIN from One ZPK to Another",
    _key("Source ZPK", "ZPK under LMK pair 06-07 (key type 001)."),
    "ZPK",
)


def _translate(ctx: HsmContext, cur: FieldCursor, spec: CommandSpec, source_type: str) -> Reply:
    # The request fields in the order _translate_spec lists them (unpacked, not looked up by
    # name: this is the busiest command of a switch).
    source_spec, dest_spec, _max, block_spec, source_fmt_spec, dest_fmt_spec, _account = spec.request
    source = from_lmk(ctx.lmk, source_type, cur.read_key(source_spec), source_spec.name)
    dest = from_lmk(ctx.lmk, KEY_TYPE_ZPK, cur.read_key(dest_spec), dest_spec.name, _E.DEST_KEY_PARITY)
    max_len = _max_pin_length(cur)
    block = cur.read(block_spec)
    source_fmt = _read_format(cur, source_fmt_spec)
    dest_code = cur.read(dest_fmt_spec)
    account = cur.read(_ACCOUNT)
    cur.finish()
    pin = _pin_from_block(source, block, source_fmt, account)
    if len(pin) > max_len:
        raise HsmError(_E.PIN_LENGTH, "PIN longer than the maximum PIN length field")
    out = _block_from_pin(dest, pin, PIN_BLOCK_FORMATS[dest_code], account)
    return ok(f"{len(pin):02d}", out, dest_code)


def _ca(ctx: HsmContext, cur: FieldCursor) -> Reply:
    return _translate(ctx, cur, CA_SPEC, KEY_TYPE_TMK)


def _cc(ctx: HsmContext, cur: FieldCursor) -> Reply:
    return _translate(ctx, cur, CC_SPEC, KEY_TYPE_ZPK)


CA = Command(CA_SPEC, _ca)
CC = Command(CC_SPEC, _cc)


# --- JC / JE: PIN block to LMK --------------------------------------------------------------


def _to_lmk_spec(code: str, name: str, key: FieldSpec) -> CommandSpec:
    return CommandSpec(
        code=code,
        name=name,
        request=(
            key,
            _block("PIN block", f"PIN block under the {key.name}."),
            _format("PIN block format"),
            _ACCOUNT,
        ),
        response=(_LMK_PIN,),
        errors=_PIN_ERRORS,
    )


JC_SPEC = _to_lmk_spec("JC", "Translate a PIN from TPK to LMK Encryption", _TPK)
JE_SPEC = _to_lmk_spec("JE", "Translate a PIN from ZPK to LMK Encryption", _ZPK)


def _to_lmk(ctx: HsmContext, cur: FieldCursor, spec: CommandSpec, key_type: str) -> Reply:
    key_spec = spec.request[0]
    key = from_lmk(ctx.lmk, key_type, cur.read_key(key_spec), key_spec.name)
    block = cur.read(spec.field("PIN block"))
    fmt = _read_format(cur, spec.field("PIN block format"))
    account = cur.read(_ACCOUNT)
    cur.finish()
    pin = _pin_from_block(key, block, fmt, account)
    return ok(encrypt_pin(ctx.lmk, pin, account))


def _jc(ctx: HsmContext, cur: FieldCursor) -> Reply:
    return _to_lmk(ctx, cur, JC_SPEC, KEY_TYPE_TMK)


def _je(ctx: HsmContext, cur: FieldCursor) -> Reply:
    return _to_lmk(ctx, cur, JE_SPEC, KEY_TYPE_ZPK)


JC = Command(JC_SPEC, _jc)
JE = Command(JE_SPEC, _je)


# --- JG: LMK to ZPK -------------------------------------------------------------------------

JG_SPEC = CommandSpec(
    code="JG",
    name="Translate a PIN from LMK to ZPK Encryption",
    request=(_ZPK, _format("PIN block format", "Destination format."), _ACCOUNT, _LMK_PIN),
    response=(_block("PIN block", "PIN block under the ZPK."),),
    errors=_PIN_ERRORS,
)


def _jg(ctx: HsmContext, cur: FieldCursor) -> Reply:
    zpk = from_lmk(ctx.lmk, KEY_TYPE_ZPK, cur.read_key(_ZPK), "ZPK")
    fmt = _read_format(cur, JG_SPEC.field("PIN block format"))
    account = cur.read(_ACCOUNT)
    pin = decrypt_pin(ctx.lmk, cur.read(_LMK_PIN), account)
    cur.finish()
    return ok(_block_from_pin(zpk, pin, fmt, account))


JG = Command(JG_SPEC, _jg)


# --- BA: clear PIN to LMK -------------------------------------------------------------------

_CLEAR_PIN_IN = FieldSpec(
    name="PIN",
    kind=FieldKind.CHARS,
    length=CLEAR_PIN_FIELD,
    description="Clear PIN, left-justified and padded with 'F' to 5..13 characters; its "
    "length is whatever precedes the 12-digit account number.",
)

BA_SPEC = CommandSpec(
    code="BA",
    name="Encrypt a Clear PIN",
    request=(_CLEAR_PIN_IN, _ACCOUNT),
    response=(_LMK_PIN,),
    errors=(_E.NO_ERROR, _E.INPUT_DATA, _E.PIN_LENGTH),
)


def _field_before_trailer(cur: FieldCursor) -> int:
    """Characters left before the end of the message or an X'19' trailer."""
    rest = cur.peek(cur.remaining).encode("latin-1")
    end = rest.find(END_OF_MESSAGE)
    return len(rest) if end < 0 else end


def _ba(ctx: HsmContext, cur: FieldCursor) -> Reply:
    width = _field_before_trailer(cur) - _ACCOUNT.length
    if not 5 <= width <= CLEAR_PIN_FIELD:
        raise HsmError(_E.INPUT_DATA, "PIN: field must be 5..13 characters before the account")
    padded = cur.take(width, "PIN").upper()
    account = cur.read(_ACCOUNT)
    cur.finish()
    pin = padded.rstrip("F")
    if not pin.isdigit() or set(padded[len(pin) :]) != {"F"}:
        raise HsmError(_E.INPUT_DATA, "PIN: must be decimal digits followed by 'F' padding")
    if not MIN_PIN_LENGTH <= len(pin) <= MAX_PIN_LENGTH:
        raise HsmError(_E.PIN_LENGTH, f"PIN: {len(pin)} digits, allowed 4..12")
    return ok(encrypt_pin(ctx.lmk, pin, account))


BA = Command(BA_SPEC, _ba)


# --- NG: LMK to clear (test mode) -----------------------------------------------------------

NG_SPEC = CommandSpec(
    code="NG",
    name="Decrypt an Encrypted PIN",
    request=(_ACCOUNT, _LMK_PIN),
    response=(
        FieldSpec(
            name="PIN",
            kind=FieldKind.CHARS,
            length=CLEAR_PIN_FIELD,
            description="Clear PIN left-justified, padded with 'F' to 13 characters.",
        ),
        FieldSpec(
            name="Reference number",
            kind=FieldKind.DIGITS,
            length=12,
            description="Account number under LMK pair 18-19, decimalised (A-F -> 0-5).",
        ),
    ),
    errors=(_E.NO_ERROR, _E.INPUT_DATA, _E.PIN_BLOCK_INVALID, _E.DISABLED),
    notes="Answers 68 (command disabled) unless the HSM runs with test_mode=True: a clear PIN "
    "leaves the HSM.",
    test_mode_only=True,
)


def _ng(ctx: HsmContext, cur: FieldCursor) -> Reply:
    account = cur.read(_ACCOUNT)
    pin = decrypt_pin(ctx.lmk, cur.read(_LMK_PIN), account)
    cur.finish()
    return ok(pin.ljust(CLEAR_PIN_FIELD, "F"), reference_number(ctx.lmk, account))


NG = Command(NG_SPEC, _ng)


# --- BC: verify a terminal PIN against the PIN under LMK -------------------------------------

BC_SPEC = CommandSpec(
    code="BC",
    name="Verify a Terminal PIN Using the Comparison Method",
    request=(
        _TPK,
        _block("PIN block", "PIN block under the TPK."),
        _format("PIN block format"),
        _ACCOUNT,
        _LMK_PIN,
    ),
    response=(),
    errors=_VERIFY_ERRORS,
    notes="00 when the PINs match, 01 when they do not.",
)


# Everything after the TPK is fixed-length: one run (same values, same errors, fewer calls).
_BC_AFTER_KEY = FixedRun(*BC_SPEC.request[1:])


def _bc(ctx: HsmContext, cur: FieldCursor) -> Reply:
    tpk = from_lmk(ctx.lmk, KEY_TYPE_TMK, cur.read_key(_TPK), "TPK")
    block, fmt_code, account, lmk_pin = cur.read_run(_BC_AFTER_KEY)
    fmt = PIN_BLOCK_FORMATS[fmt_code]
    stored = decrypt_pin(ctx.lmk, lmk_pin, account)
    cur.finish()
    entered = _pin_from_block(tpk, block, fmt, account)
    return verdict(entered == stored)


BC = Command(BC_SPEC, _bc)


# --- DC / EC: verify against a Visa PVV -----------------------------------------------------


def _pvv_spec(code: str, name: str, key: FieldSpec) -> CommandSpec:
    return CommandSpec(
        code=code,
        name=name,
        request=(
            key,
            _PVK,
            _block("PIN block", f"PIN block under the {key.name}."),
            _format("PIN block format"),
            _ACCOUNT,
            _PVKI,
            _PVV,
        ),
        response=(),
        errors=_VERIFY_ERRORS,
        notes="00 when the PVV of the entered PIN matches, 01 when it does not.",
    )


DC_SPEC = _pvv_spec("DC", "Verify a Terminal PIN Using the VISA Method", _TPK)
EC_SPEC = _pvv_spec("EC", "Verify an Interchange PIN Using the VISA Method", _ZPK)


def _verify_pvv(ctx: HsmContext, cur: FieldCursor, spec: CommandSpec, key_type: str) -> Reply:
    key_spec = spec.request[0]
    key = from_lmk(ctx.lmk, key_type, cur.read_key(key_spec), key_spec.name)
    pvk = from_lmk(ctx.lmk, KEY_TYPE_TMK, cur.read_key(_PVK), "PVK pair", _E.DEST_KEY_PARITY)
    block = cur.read(spec.field("PIN block"))
    fmt = _read_format(cur, spec.field("PIN block format"))
    account = cur.read(_ACCOUNT)
    pvki = cur.read(_PVKI)
    pvv = cur.read(_PVV)
    cur.finish()
    pin = _pin_from_block(key, block, fmt, account)
    ok_pvv = visa_pvv(pvk, account, pvki, pin) == pvv
    return Reply(_E.NO_ERROR if ok_pvv else _E.VERIFICATION_FAILURE)


def _dc(ctx: HsmContext, cur: FieldCursor) -> Reply:
    return _verify_pvv(ctx, cur, DC_SPEC, KEY_TYPE_TMK)


def _ec(ctx: HsmContext, cur: FieldCursor) -> Reply:
    return _verify_pvv(ctx, cur, EC_SPEC, KEY_TYPE_ZPK)


DC = Command(DC_SPEC, _dc)
EC = Command(EC_SPEC, _ec)


# --- G0: DUKPT PIN block to ZPK -------------------------------------------------------------

_KSN_DESCRIPTOR = FieldSpec(
    name="KSN descriptor",
    kind=FieldKind.HEX,
    length=3,
    description="Three hex digits: BDK-ID length, sub-key length, device-ID length. The KSN "
    "that follows has their sum + 5 hex digits (10..20); e.g. A05 for a 20-digit KSN.",
)

G0_SPEC = CommandSpec(
    code="G0",
    name="Translate a PIN from BDK to ZPK Encryption (3DES DUKPT)",
    request=(
        _key("BDK", "Double-length BDK under LMK pair 28-29 (key type 009).", "U"),
        _key("ZPK", "Destination ZPK under LMK pair 06-07 (key type 001)."),
        _KSN_DESCRIPTOR,
        FieldSpec(
            name="KSN",
            kind=FieldKind.HEX,
            length=20,
            description="Key serial number, length from the descriptor; left-padded with F to "
            "20 digits for the derivation.",
        ),
        _block("Source PIN block", "PIN block under the DUKPT PIN key."),
        FieldSpec(
            name="Source PIN block format",
            kind=FieldKind.CHOICE,
            length=2,
            choices=(("01", "ISO 9564-1 format 0"),),
            error=_E.PIN_BLOCK_FORMAT,
        ),
        _format("Destination PIN block format"),
        _ACCOUNT,
    ),
    response=(
        _PIN_LENGTH_OUT,
        _block("Destination PIN block", "PIN block under the ZPK."),
        _format("Destination PIN block format", "As received."),
    ),
    errors=(*_PIN_ERRORS, _E.INCOMPATIBLE_KEY_LENGTH),
    notes="The PIN key is the ANSI X9.24-1 3DES DUKPT PIN variant of the transaction key.",
)


def _ksn_length(descriptor: str) -> int:
    length = sum(int(c, 16) for c in descriptor) + 5
    if not 10 <= length <= 20:
        raise HsmError(_E.INPUT_DATA, "KSN descriptor: describes a KSN outside 10..20 digits")
    return length


def _g0(ctx: HsmContext, cur: FieldCursor) -> Reply:
    spec = G0_SPEC
    bdk = from_lmk(ctx.lmk, KEY_TYPE_BDK, cur.read_key(spec.field("BDK")), "BDK")
    zpk = from_lmk(ctx.lmk, KEY_TYPE_ZPK, cur.read_key(spec.field("ZPK")), "ZPK", _E.DEST_KEY_PARITY)
    ksn_len = _ksn_length(cur.read(_KSN_DESCRIPTOR))
    ksn = cur.read(spec.field("KSN"), length=ksn_len).rjust(20, "F")
    block = cur.read(spec.field("Source PIN block"))
    cur.read(spec.field("Source PIN block format"))
    dest_code = cur.read(spec.field("Destination PIN block format"))
    account = cur.read(_ACCOUNT)
    cur.finish()
    pin_key = tdes_working_key(bdk, bytes.fromhex(ksn), DukptUsage.PIN)
    pin = _pin_from_block(pin_key, block, PinBlockFormat.ISO0, account)
    out = _block_from_pin(zpk, pin, PIN_BLOCK_FORMATS[dest_code], account)
    return ok(f"{len(pin):02d}", out, dest_code)


G0 = Command(G0_SPEC, _g0)
