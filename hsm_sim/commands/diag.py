"""Diagnostics: NC (Perform Diagnostics)."""

from __future__ import annotations

from hsm_sim.errors import ErrorCode
from hsm_sim.hostcmd import (
    Command,
    CommandSpec,
    FieldCursor,
    FieldKind,
    FieldSpec,
    HsmContext,
    Reply,
    ok,
)

NC_SPEC = CommandSpec(
    code="NC",
    name="Perform Diagnostics",
    request=(),
    response=(
        FieldSpec(
            name="LMK check value",
            kind=FieldKind.HEX,
            length=16,
            description=(
                "The 20 clear LMK pairs (00-01 to 38-39, 16 bytes each) XORed together, then the "
                "two 8-byte halves of that XORed, as 16 hex characters: the value the open-source Thales "
                "simulator reports (7B44AC1DDEE2A94B for the public test LMK). payShield does not "
                "publish its own algorithm."
            ),
        ),
        FieldSpec(
            name="Firmware number",
            kind=FieldKind.CHARS,
            length=9,
            description="Firmware version string, e.g. 0007-E000 (set by Dispatcher(firmware=)).",
        ),
    ),
    errors=(ErrorCode.NO_ERROR, ErrorCode.INPUT_DATA),
    notes="Used by hosts as a heartbeat: no request fields, never changes state.",
)


def _nc(ctx: HsmContext, cur: FieldCursor) -> Reply:
    cur.finish()
    return ok(ctx.lmk.check_value().hex().upper(), ctx.firmware)


NC = Command(NC_SPEC, _nc)
