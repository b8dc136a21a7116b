"""ZK: import a clear test key under the LMK (this product's extension).

A real payShield takes clear keys only at its console (key components). A simulator's users
register terminals with published test TMKs, so this host command takes the clear key and
returns it under the LMK with its check value. Nothing clear ever leaves: only the input is.
"""

from __future__ import annotations

from hsm_sim.commands.keyfields import kcv6, to_lmk
from hsm_sim.errors import ErrorCode, HsmError
from hsm_sim.hostcmd import Command, CommandSpec, FieldCursor, FieldKind, FieldSpec, HsmContext, Reply, ok
from hsm_sim.keys import fix_parity, has_odd_parity
from hsm_sim.lmk import KeyScheme, parse_key_type

_E = ErrorCode
_LENGTHS = {"Z": 16, "0": 16, "U": 32, "T": 48}

ZK_SPEC = CommandSpec(
    code="ZK",
    name="Import a Clear Test Key (switchsim extension)",
    request=(
        FieldSpec(
            name="Key type",
            kind=FieldKind.HEX,
            length=3,
            error=_E.INVALID_KEY_TYPE,
            description="Key type code, e.g. 002 TMK, 000 ZMK, 109 MK-AC (a test card's IMK-AC).",
        ),
        FieldSpec(
            name="Key scheme (LMK)",
            kind=FieldKind.CHOICE,
            length=1,
            error=_E.KEY_SCHEME,
            choices=(("Z", "single length"), ("U", "double length"), ("T", "triple length")),
        ),
        FieldSpec(
            name="Clear key",
            kind=FieldKind.HEX,
            length=32,
            description="16, 32 or 48 hex digits, as the scheme says.",
        ),
    ),
    response=(
        FieldSpec(name="Key (LMK)", kind=FieldKind.KEY, description="The key under its LMK pair."),
        FieldSpec(name="Key check value", kind=FieldKind.HEX, length=6),
    ),
    errors=(_E.NO_ERROR, _E.VERIFICATION_FAILURE, _E.INVALID_KEY_TYPE, _E.INPUT_DATA, _E.KEY_SCHEME),
    notes="A clear key with a parity error is imported with parity forced odd and answered 01, as A6 does.",
)


def _zk(ctx: HsmContext, cur: FieldCursor) -> Reply:
    key_type = cur.read(ZK_SPEC.field("Key type"))
    parse_key_type(key_type)
    scheme = cur.read(ZK_SPEC.field("Key scheme (LMK)"))
    width = _LENGTHS[scheme]
    if cur.remaining != width:
        raise HsmError(_E.INPUT_DATA, f"Clear key: scheme {scheme} needs {width} hex digits")
    key = cur.take_hex(width, "Clear key")
    cur.finish()
    if len(key) != KeyScheme(scheme).key_length:
        raise HsmError(_E.KEY_SCHEME, "Key scheme (LMK): does not match the key length")
    if has_odd_parity(key):
        return ok(to_lmk(ctx.lmk, key_type, key), kcv6(key))
    key = fix_parity(key)
    return Reply(_E.VERIFICATION_FAILURE, (to_lmk(ctx.lmk, key_type, key), kcv6(key)))


ZK = Command(ZK_SPEC, _zk)
