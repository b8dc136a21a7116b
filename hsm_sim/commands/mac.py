"""MAC commands: M6 generate, M8 verify (payShield 10K layout).

MAC algorithm codes 1 (ISO 9797-1 algorithm 1, = ANSI X9.9 with a single-length key) and 3
(ISO 9797-1 algorithm 3, the ANSI X9.19 retail MAC, double-length key) are payShield's.
Code 9 is this product's extension: the China UnionPay POS "ECB" MAC of field 64 (XOR of the
padded blocks, then the MAK twice; see ``hsm_sim.mac.cup_pos_mac``). payShield has no
equivalent, so a real payShield answers code 9 with an error.

Only mode 0 (the whole message in one command) is supported; the multi-block modes 1-3 answer
15. payShield 10K has dedicated error codes for bad M6/M8 option fields (02-09); this HSM answers
those with 15 (and 04 for a key type other than TAK/ZAK), which every host treats as a failure.
"""

from __future__ import annotations

import hmac

from hsm_sim.commands.keyfields import from_lmk
from hsm_sim.errors import ErrorCode, HsmError
from hsm_sim.hostcmd import (
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
from hsm_sim.mac import cup_pos_mac, iso9797_alg1, iso9797_alg3, iso9797_pad

_E = ErrorCode

#: The extension algorithm code for the UnionPay POS MAC.
CUP_POS_MAC = "9"
MAX_MESSAGE = 0xFFFF

_MODE = FieldSpec(
    name="Mode flag",
    kind=FieldKind.CHOICE,
    length=1,
    choices=(("0", "only block of a single-block message"),),
    description="1-3 (multi-block) are not supported.",
)
_INPUT_FORMAT = FieldSpec(
    name="Input format flag",
    kind=FieldKind.CHOICE,
    length=1,
    choices=(("0", "binary"), ("1", "hex-encoded binary"), ("2", "text")),
)
_MAC_SIZE = FieldSpec(
    name="MAC size",
    kind=FieldKind.CHOICE,
    length=1,
    choices=(("0", "8 hex digits"), ("1", "16 hex digits (algorithms 1 and 3)")),
)
_ALGORITHM = FieldSpec(
    name="MAC algorithm",
    kind=FieldKind.CHOICE,
    length=1,
    choices=(
        ("1", "ISO 9797-1 MAC algorithm 1 (ANSI X9.9 with a single-length key)"),
        ("3", "ISO 9797-1 MAC algorithm 3 (ANSI X9.19, double-length key)"),
        (CUP_POS_MAC, "extension: China UnionPay POS ECB MAC (field 64); MAC size 0 only"),
    ),
)
_PADDING = FieldSpec(
    name="Padding method",
    kind=FieldKind.CHOICE,
    length=1,
    choices=(
        ("0", "none: the message must be a multiple of 8 bytes"),
        ("1", "ISO 9797-1 method 1 (zeros)"),
        ("2", "ISO 9797-1 method 2 (0x80 then zeros)"),
    ),
)
_KEY_TYPE = FieldSpec(
    name="Key type",
    kind=FieldKind.CHOICE,
    length=3,
    choices=(("003", "TAK (LMK 16-17)"), ("008", "ZAK (LMK 26-27)")),
    error=_E.INVALID_KEY_TYPE,
)
_KEY = FieldSpec(
    name="Key",
    kind=FieldKind.KEY,
    description="The MAC key under the LMK pair of its key type.",
)
_LENGTH = FieldSpec(
    name="Message length",
    kind=FieldKind.HEX,
    length=4,
    description="Length of the message in bytes (after hex decoding for input format 1).",
)
_MESSAGE = FieldSpec(
    name="Message",
    kind=FieldKind.BYTES,
    description="n bytes (format 0 or 2) or 2n hex characters (format 1).",
)
_REQUEST = (_MODE, _INPUT_FORMAT, _MAC_SIZE, _ALGORITHM, _PADDING, _KEY_TYPE, _KEY, _LENGTH)
# The option fields before the key, read as one run (same values, same errors, fewer calls).
_OPTIONS = FixedRun(_MODE, _INPUT_FORMAT, _MAC_SIZE, _ALGORITHM, _PADDING, _KEY_TYPE)
_MAC_OUT = FieldSpec(
    name="MAC",
    kind=FieldKind.HEX,
    length=8,
    description="8 hex digits, or 16 when MAC size is 1.",
)
_ERRORS = (
    _E.NO_ERROR,
    _E.INVALID_KEY_TYPE,
    _E.KEY_LENGTH,
    _E.SOURCE_KEY_PARITY,
    _E.INPUT_DATA,
    _E.KEY_SCHEME,
    _E.DATA_LENGTH,
)

M6_SPEC = CommandSpec(
    code="M6",
    name="Generate MAC",
    request=(*_REQUEST, _MESSAGE),
    response=(_MAC_OUT,),
    errors=_ERRORS,
)
M8_SPEC = CommandSpec(
    code="M8",
    name="Verify MAC",
    request=(*_REQUEST, _MESSAGE, _MAC_OUT),
    response=(),
    errors=(*_ERRORS, _E.VERIFICATION_FAILURE),
    notes="00 when the MAC verifies, 01 when it does not.",
)


def _compute(ctx: HsmContext, cur: FieldCursor) -> tuple[str, str]:
    """Parse the fields M6 and M8 share and return (MAC as sent on the wire, MAC size code)."""
    _mode, input_format, size, algorithm, padding_code, key_type = cur.read_run(_OPTIONS)
    padding = int(padding_code)
    key = from_lmk(ctx.lmk, key_type, cur.read_key(_KEY), "Key")
    length = int(cur.read(_LENGTH), 16)
    width = 2 * length if input_format == "1" else length
    if cur.remaining < width:
        raise HsmError(_E.DATA_LENGTH, "Message: shorter than the message length field")
    message = cur.take_hex(width, "Message") if input_format == "1" else cur.take_bytes(width, "Message")
    if algorithm == CUP_POS_MAC and size != "0":
        raise HsmError(_E.INPUT_DATA, "MAC size: the UnionPay POS MAC is 8 characters")
    if padding == 0:
        if not message or len(message) % 8:
            raise HsmError(_E.DATA_LENGTH, "Message: not a multiple of 8 bytes with padding 0")
        padded = message
    else:
        padded = iso9797_pad(message, padding)
    if algorithm == CUP_POS_MAC:
        return cup_pos_mac(key, padded).decode("ascii"), size
    mac = iso9797_alg1(key, padded) if algorithm == "1" else iso9797_alg3(key, padded)
    text = mac.hex().upper()
    return (text[:8] if size == "0" else text), size


def _m6(ctx: HsmContext, cur: FieldCursor) -> Reply:
    mac, _ = _compute(ctx, cur)
    try:
        cur.finish()
    except HsmError:
        raise HsmError(_E.DATA_LENGTH, "Message: longer than the message length field") from None
    return ok(mac)


def _m8(ctx: HsmContext, cur: FieldCursor) -> Reply:
    expected, size = _compute(ctx, cur)
    given = cur.take_hex_text(8 if size == "0" else 16, "MAC")
    cur.finish()
    same = hmac.compare_digest(expected, given)
    return verdict(same)


M6 = Command(M6_SPEC, _m6)
M8 = Command(M8_SPEC, _m8)
