"""Key management commands: A0 generate, A6 import, A8 export, HC new TMK/TPK/PVK, HA new TAK,
BU key check value."""

from __future__ import annotations

from hsm_sim.commands.keyfields import (
    KEY_TYPE_TAK,
    KEY_TYPE_TMK,
    KEY_TYPE_ZMK,
    decrypt_under_kek,
    encrypt_under_kek,
    from_lmk,
    kcv6,
    kcv16,
    to_lmk,
)
from hsm_sim.errors import ErrorCode, HsmError
from hsm_sim.hostcmd import (
    Command,
    CommandSpec,
    FieldCursor,
    FieldKind,
    FieldSpec,
    HsmContext,
    KeyField,
    Reply,
    ok,
)
from hsm_sim.keys import fix_parity, has_odd_parity, random_key
from hsm_sim.lmk import KeyScheme, parse_key_type

_E = ErrorCode

# --- shared field specs ---------------------------------------------------------------------

_LMK_SCHEME_CHOICES = (
    ("0", "single length (same as Z)"),
    ("Z", "single length"),
    ("U", "double length, variant"),
    ("T", "triple length, variant"),
)
_KEK_SCHEME_CHOICES = (
    *_LMK_SCHEME_CHOICES,
    ("X", "double length, ANSI X9.17 (plain TDES-ECB; what UnionPay terminals expect)"),
    ("Y", "triple length, ANSI X9.17"),
)


def _key_type_spec(
    description: str = "Key type code, e.g. 001 ZPK, 002 TMK/TPK, 003 TAK, 109 MK-AC (EMV issuer master key).",
) -> FieldSpec:
    return FieldSpec(
        name="Key type",
        kind=FieldKind.HEX,
        length=3,
        description=description,
        error=_E.INVALID_KEY_TYPE,
    )


def _scheme_spec(name: str, description: str, *, kek: bool, condition: str = "") -> FieldSpec:
    return FieldSpec(
        name=name,
        kind=FieldKind.CHOICE,
        length=1,
        description=description,
        choices=_KEK_SCHEME_CHOICES if kek else _LMK_SCHEME_CHOICES,
        error=_E.KEY_SCHEME,
        condition=condition,
    )


def _key_spec(name: str, description: str, schemes: str = "ZUT", condition: str = "") -> FieldSpec:
    return FieldSpec(
        name=name,
        kind=FieldKind.KEY,
        description=description,
        key_schemes=schemes,
        condition=condition,
    )


def _scheme(code: str) -> KeyScheme:
    return KeyScheme.Z if code == "0" else KeyScheme(code)


def _key_type(cur: FieldCursor, spec: FieldSpec) -> str:
    key_type = cur.read(spec)
    parse_key_type(key_type)  # raises 04 for an unknown type or LMK code
    return key_type


_KCV = FieldSpec(
    name="Key check value",
    kind=FieldKind.HEX,
    length=6,
    description="First 6 hex digits of E(clear key, 8 zero bytes).",
)
_ZMK_TMK_FLAG = FieldSpec(
    name="ZMK/TMK flag",
    kind=FieldKind.CHOICE,
    length=1,
    description="Which key-encrypting key follows; default 0.",
    choices=(("0", "ZMK (under LMK 04-05)"), ("1", "TMK (under LMK 14-15)")),
    condition="optional; only after a ';' delimiter",
)


def _kek(ctx: HsmContext, cur: FieldCursor, spec: FieldSpec) -> bytes:
    """Read an optional ';' + ZMK/TMK flag, then the ZMK or TMK, returning it in clear."""
    kek_type = KEY_TYPE_ZMK
    if cur.take_if(";") and cur.read(_ZMK_TMK_FLAG) == "1":
        kek_type = KEY_TYPE_TMK
    field = cur.read_key(spec)
    return from_lmk(ctx.lmk, kek_type, field, spec.name)


def _check_length(scheme: KeyScheme, key: bytes, name: str) -> None:
    if scheme.key_length != len(key):
        raise HsmError(
            _E.INCOMPATIBLE_KEY_LENGTH,
            f"{name}: scheme {scheme} is for {scheme.key_length}-byte keys, key has {len(key)}",
        )


# --- A0 generate a key ----------------------------------------------------------------------

A0_SPEC = CommandSpec(
    code="A0",
    name="Generate a Key",
    request=(
        FieldSpec(
            name="Mode",
            kind=FieldKind.CHOICE,
            length=1,
            choices=(("0", "generate"), ("1", "generate and export under a ZMK or TMK")),
        ),
        _key_type_spec(),
        _scheme_spec("Key scheme (LMK)", "Length of the new key and its scheme under the LMK.", kek=False),
        FieldSpec(
            name="Delimiter",
            kind=FieldKind.CHARS,
            length=1,
            description="';' announces the ZMK/TMK flag.",
            condition="optional; mode 1",
        ),
        _ZMK_TMK_FLAG,
        _key_spec("ZMK/TMK", "The ZMK (LMK 04-05) or TMK (LMK 14-15) to export under.", condition="mode 1"),
        _scheme_spec(
            "Key scheme (ZMK/TMK)",
            "Scheme of the exported key; same length as the LMK scheme.",
            kek=True,
            condition="mode 1",
        ),
    ),
    response=(
        _key_spec("Key (LMK)", "The new key under the LMK pair of its key type."),
        _key_spec("Key (ZMK/TMK)", "The new key under the ZMK/TMK.", "ZUTXY", "mode 1"),
        _KCV,
    ),
    errors=(
        _E.NO_ERROR,
        _E.INVALID_KEY_TYPE,
        _E.SOURCE_KEY_PARITY,
        _E.INPUT_DATA,
        _E.KEY_SCHEME,
        _E.INCOMPATIBLE_KEY_LENGTH,
    ),
    notes="Terminal sign-in uses mode 1 with the terminal's TMK (flag 1) and scheme X/Y/Z, so "
    "the terminal can decrypt the key with plain TDES-ECB.",
)


def _a0(ctx: HsmContext, cur: FieldCursor) -> Reply:
    spec = A0_SPEC
    mode = cur.read(spec.field("Mode"))
    key_type = _key_type(cur, spec.field("Key type"))
    lmk_scheme = _scheme(cur.read(spec.field("Key scheme (LMK)")))
    key = random_key(lmk_scheme.key_length)
    fields = [to_lmk(ctx.lmk, key_type, key)]
    if mode == "1":
        kek = _kek(ctx, cur, spec.field("ZMK/TMK"))
        kek_scheme = _scheme(cur.read(spec.field("Key scheme (ZMK/TMK)")))
        _check_length(kek_scheme, key, "Key scheme (ZMK/TMK)")
        fields.append(KeyField(kek_scheme, encrypt_under_kek(kek, key, kek_scheme)).text)
    cur.finish()
    fields.append(kcv6(key))
    return ok(*fields)


A0 = Command(A0_SPEC, _a0)


# --- A6 import a key ------------------------------------------------------------------------

A6_SPEC = CommandSpec(
    code="A6",
    name="Import a Key",
    request=(
        _key_type_spec(),
        _key_spec("ZMK", "The ZMK under LMK pair 04-05."),
        _key_spec("Key (ZMK)", "The key to import, under the ZMK.", "ZUTXY"),
        _scheme_spec(
            "Key scheme (LMK)",
            "Scheme for the imported key under the LMK; same length as the key.",
            kek=False,
        ),
    ),
    response=(
        _key_spec("Key (LMK)", "The imported key under the LMK pair of its key type."),
        _KCV,
    ),
    errors=(
        _E.NO_ERROR,
        _E.VERIFICATION_FAILURE,
        _E.INVALID_KEY_TYPE,
        _E.SOURCE_KEY_PARITY,
        _E.INPUT_DATA,
        _E.KEY_SCHEME,
        _E.INCOMPATIBLE_KEY_LENGTH,
    ),
    notes="A key whose clear value has a parity error is still imported (parity forced odd) "
    "and answered with 01, the payShield parity warning.",
)


def _a6(ctx: HsmContext, cur: FieldCursor) -> Reply:
    spec = A6_SPEC
    key_type = _key_type(cur, spec.field("Key type"))
    zmk = from_lmk(ctx.lmk, KEY_TYPE_ZMK, cur.read_key(spec.field("ZMK")), "ZMK")
    under_zmk = cur.read_key(spec.field("Key (ZMK)"))
    lmk_scheme = _scheme(cur.read(spec.field("Key scheme (LMK)")))
    cur.finish()
    key = decrypt_under_kek(zmk, under_zmk.enc, under_zmk.scheme)
    _check_length(lmk_scheme, key, "Key scheme (LMK)")
    code = _E.NO_ERROR
    if not has_odd_parity(key):
        code = _E.VERIFICATION_FAILURE
        key = fix_parity(key)
    return Reply(code, (to_lmk(ctx.lmk, key_type, key), kcv6(key)))


A6 = Command(A6_SPEC, _a6)


# --- A8 export a key ------------------------------------------------------------------------

A8_SPEC = CommandSpec(
    code="A8",
    name="Export a Key",
    request=(
        _key_type_spec(),
        FieldSpec(
            name="Delimiter",
            kind=FieldKind.CHARS,
            length=1,
            description="';' announces the ZMK/TMK flag.",
            condition="optional",
        ),
        _ZMK_TMK_FLAG,
        _key_spec("ZMK/TMK", "The ZMK (LMK 04-05) or TMK (LMK 14-15) to export under."),
        _key_spec("Key (LMK)", "The key to export, under the LMK pair of its key type."),
        _scheme_spec("Key scheme (ZMK/TMK)", "Scheme of the exported key.", kek=True),
    ),
    response=(
        _key_spec("Key (ZMK/TMK)", "The key under the ZMK/TMK.", "ZUTXY"),
        _KCV,
    ),
    errors=(
        _E.NO_ERROR,
        _E.INVALID_KEY_TYPE,
        _E.SOURCE_KEY_PARITY,
        _E.DEST_KEY_PARITY,
        _E.INPUT_DATA,
        _E.KEY_SCHEME,
        _E.INCOMPATIBLE_KEY_LENGTH,
    ),
)


def _a8(ctx: HsmContext, cur: FieldCursor) -> Reply:
    spec = A8_SPEC
    key_type = _key_type(cur, spec.field("Key type"))
    kek = _kek(ctx, cur, spec.field("ZMK/TMK"))
    key = from_lmk(ctx.lmk, key_type, cur.read_key(spec.field("Key (LMK)")), "Key (LMK)", _E.DEST_KEY_PARITY)
    kek_scheme = _scheme(cur.read(spec.field("Key scheme (ZMK/TMK)")))
    cur.finish()
    _check_length(kek_scheme, key, "Key scheme (ZMK/TMK)")
    return ok(KeyField(kek_scheme, encrypt_under_kek(kek, key, kek_scheme)).text, kcv6(key))


A8 = Command(A8_SPEC, _a8)


# --- HC / HA: new key under a TMK -----------------------------------------------------------


def _tmk_generate_spec(code: str, name: str, new_key: str, lmk_pair: str) -> CommandSpec:
    return CommandSpec(
        code=code,
        name=name,
        request=(
            _key_spec("TMK", "The current TMK/TPK/PVK under LMK pair 14-15."),
            FieldSpec(
                name="Delimiter",
                kind=FieldKind.CHARS,
                length=1,
                description="';' announces the three option fields.",
                condition="optional",
            ),
            _scheme_spec(
                "Key scheme (TMK)",
                f"Scheme of the new {new_key} under the TMK.",
                kek=True,
                condition="after ';'",
            ),
            _scheme_spec(
                "Key scheme (LMK)",
                f"Scheme (and length) of the new {new_key} under the LMK.",
                kek=False,
                condition="after ';'",
            ),
            FieldSpec(
                name="Reserved",
                kind=FieldKind.CHOICE,
                length=1,
                choices=(("0", "reserved / KCV type backwards compatible"), ("1", "KCV type 6H")),
                condition="after ';'",
            ),
        ),
        response=(
            _key_spec(f"{new_key} (TMK)", f"The new {new_key} under the TMK.", "ZUTXY"),
            _key_spec(f"{new_key} (LMK)", f"The new {new_key} under LMK pair {lmk_pair}."),
        ),
        errors=(_E.NO_ERROR, _E.SOURCE_KEY_PARITY, _E.INPUT_DATA, _E.KEY_SCHEME, _E.INCOMPATIBLE_KEY_LENGTH),
        notes="Without the ';' options the new key has the TMK's length, scheme Z/X/Y (plain "
        "TDES-ECB) under the TMK and Z/U/T under the LMK.",
    )


def _generate_under_tmk(ctx: HsmContext, cur: FieldCursor, spec: CommandSpec, new_type: str) -> Reply:
    tmk = from_lmk(ctx.lmk, KEY_TYPE_TMK, cur.read_key(spec.field("TMK")), "TMK")
    if cur.take_if(";"):
        tmk_scheme = _scheme(cur.read(spec.field("Key scheme (TMK)")))
        lmk_scheme = _scheme(cur.read(spec.field("Key scheme (LMK)")))
        cur.read(spec.field("Reserved"))
    else:
        lmk_scheme = KeyScheme.for_length(len(tmk))
        tmk_scheme = KeyScheme.for_length(len(tmk), variant=False)
    cur.finish()
    key = random_key(lmk_scheme.key_length)
    _check_length(tmk_scheme, key, "Key scheme (TMK)")
    return ok(
        KeyField(tmk_scheme, encrypt_under_kek(tmk, key, tmk_scheme)).text,
        to_lmk(ctx.lmk, new_type, key),
    )


HC_SPEC = _tmk_generate_spec("HC", "Generate a TMK, TPK or PVK", "Key", "14-15")
HA_SPEC = _tmk_generate_spec("HA", "Generate a TAK", "TAK", "16-17")


def _hc(ctx: HsmContext, cur: FieldCursor) -> Reply:
    return _generate_under_tmk(ctx, cur, HC_SPEC, KEY_TYPE_TMK)


def _ha(ctx: HsmContext, cur: FieldCursor) -> Reply:
    return _generate_under_tmk(ctx, cur, HA_SPEC, KEY_TYPE_TAK)


HC = Command(HC_SPEC, _hc)
HA = Command(HA_SPEC, _ha)


# --- BU key check value ---------------------------------------------------------------------

# BU's two-character key type code names an LMK pair (and variant), not a full key type.
_BU_TYPE_CODES: dict[str, str] = {
    **{f"0{c}": f"00{c}" for c in "0123456789AB"},
    "10": "100",
    "19": "109",
    "42": "402",
}

BU_SPEC = CommandSpec(
    code="BU",
    name="Generate a Key Check Value",
    request=(
        FieldSpec(
            name="Key type code",
            kind=FieldKind.CHOICE,
            length=2,
            description="LMK pair the key is under: 00 = 04-05 (ZMK), 01 = 06-07 (ZPK), "
            "02 = 14-15 (TMK/TPK/PVK), 03 = 16-17 (TAK), ... 0B = 32-33, 10 = variant 1 of "
            "04-05, 19 = variant 1 of 28-29 (MK-AC), 42 = variant 4 of 14-15 (CVK), FF = use the key "
            "type after ';'.",
            choices=(
                *((c, f"key type {t}") for c, t in _BU_TYPE_CODES.items()),
                ("FF", "key type follows the key"),
            ),
            error=_E.INVALID_KEY_TYPE,
        ),
        FieldSpec(
            name="Key length flag",
            kind=FieldKind.CHOICE,
            length=1,
            choices=(("0", "single"), ("1", "double"), ("2", "triple")),
            error=_E.INVALID_KEY_LENGTH_FLAG,
        ),
        _key_spec("Key", "The key under the LMK pair the key type code names."),
        FieldSpec(
            name="Key type",
            kind=FieldKind.HEX,
            length=3,
            error=_E.INVALID_KEY_TYPE,
            description="Full key type code.",
            condition="';' + key type, only when code is FF",
        ),
        FieldSpec(
            name="Options",
            kind=FieldKind.CHARS,
            length=3,
            description="';' + key scheme ZMK (ignored) + key scheme LMK (ignored) + KCV type: "
            "0 = 16H (default), 1 = 6H.",
            condition="optional",
        ),
    ),
    response=(
        FieldSpec(
            name="Key check value",
            kind=FieldKind.HEX,
            length=16,
            description="E(clear key, 8 zero bytes): 16H, or 6H when KCV type is 1.",
        ),
    ),
    errors=(
        _E.NO_ERROR,
        _E.INVALID_KEY_TYPE,
        _E.INVALID_KEY_LENGTH_FLAG,
        _E.SOURCE_KEY_PARITY,
        _E.INPUT_DATA,
        _E.KEY_SCHEME,
    ),
)

_LENGTH_FLAGS = {"0": 8, "1": 16, "2": 24}


def _bu(ctx: HsmContext, cur: FieldCursor) -> Reply:
    spec = BU_SPEC
    code = cur.read(spec.field("Key type code"))
    length = _LENGTH_FLAGS[cur.read(spec.field("Key length flag"))]
    field = cur.read_key(spec.field("Key"))
    if len(field.enc) != length:
        raise HsmError(_E.INVALID_KEY_LENGTH_FLAG, "Key length flag: does not match the key")
    kcv_type = "0"
    if code == "FF":
        if not cur.take_if(";"):
            raise HsmError(_E.INPUT_DATA, "Key type: required after ';' when key type code is FF")
        key_type = _key_type(cur, spec.field("Key type"))
    else:
        key_type = _BU_TYPE_CODES[code]
    if cur.take_if(";"):
        kcv_type = _options(cur)
    cur.finish()
    key = from_lmk(ctx.lmk, key_type, field, "Key")
    return ok(kcv6(key) if kcv_type == "1" else kcv16(key))


def _options(cur: FieldCursor) -> str:
    cur.take(2, "Options")  # key schemes ZMK/LMK: irrelevant to a check value
    return cur.take_choice(1, "Options", ("0", "1"))


BU = Command(BU_SPEC, _bu)
