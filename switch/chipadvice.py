"""What a chip terminal tells the host after the fact (docs/chip.md): the issuer script result
advice (0620, 60.3 = 951) and the IC records of the batch upload (0320, 60.3 = 203-207).

Both are matched to their original in the ledger and audited with what they say (the scripts'
results; the record's cryptogram type), so `switchsim audit` shows them beside the original.
"""

from __future__ import annotations

import time

from specs.catalogue import MessageKind
from specs.response import ResponseCode
from switch.chip import read_icc, script_results
from switch.context import Exchange, Result, Services
from switch.records import AuditEvent

# 9F27, the cryptogram information data: the top two bits say which cryptogram the card made.
_CRYPTOGRAMS = {
    0x00: "an AAC (declined)", 0x40: "a TC (approved)", 0x80: "an ARQC (online)", 0xC0: "an RFU cryptogram type"
}
_UPLOADS = {
    "203": "TC record (settlement balanced)",
    "204": "failed or ARPC-error record (settlement balanced)",
    "205": "TC record (settlement not balanced)",
    "206": "failed or ARPC-error record (settlement not balanced)",
}
_ENDS = {"202": "settlement balanced", "207": "settlement not balanced"}


def _date(services: Services) -> str:
    return time.strftime("%m%d", time.localtime(services.clock()))


async def script_advice(services: Services, ex: Exchange, kind: MessageKind) -> Result:
    """A 0620: the results (DF31) of the issuer scripts a 0210 carried, for the original 61 names."""
    objects = read_icc(ex.message, kind)
    if isinstance(objects, Result):
        return objects
    batch, stan = ex.message.sub("61.1"), ex.message.sub("61.2")
    original = await services.store.find_transaction(ex.tid, batch, stan) if batch and stan else None
    results = "; ".join(script_results(objects)) or "no script results in DF31"
    if original is None:
        reason = f"script results for an unknown original (61 batch {batch} STAN {stan}): {results}"
        return Result(ResponseCode.ORIGINAL_NOT_FOUND, audit=AuditEvent.SCRIPT_RESULT, reason=reason)
    reason = (
        f"script results for the {original.kind.value} of batch {original.batch} STAN {original.stan} "
        f"(RRN {original.rrn}, {original.pan_masked}): {results}"
    )
    return Result(ResponseCode.APPROVED, {15: _date(services)}, audit=AuditEvent.SCRIPT_RESULT, reason=reason)


async def ic_upload(services: Services, ex: Exchange, kind: MessageKind) -> Result:
    """A 0320 IC record: matched by batch (60.2) and STAN (11) to the transaction it records."""
    objects = read_icc(ex.message, kind)
    if isinstance(objects, Result):
        return objects
    code = ex.message.sub("60.3") or ""
    batch = ex.message.sub("60.2") or ""
    stan = ex.message.get(11) or ""
    amount = int(ex.message.get(4) or "0")
    cid = objects["9F27"].value[0] if "9F27" in objects else None
    made = _CRYPTOGRAMS[cid & 0xC0] if cid is not None else "no 9F27"
    what = _UPLOADS.get(code, code)
    original = await services.store.find_transaction(ex.tid, batch, stan)
    if original is None or original.amount != amount:
        reason = f"{what} for no transaction of batch {batch} with STAN {stan} and amount {amount}"
        return Result(ResponseCode.ORIGINAL_NOT_FOUND, audit=AuditEvent.IC_UPLOAD, reason=reason)
    reason = (
        f"{what} for the {original.kind.value} of batch {batch} STAN {stan} ({original.status.value}): "
        f"the card made {made}"
    )
    return Result(ResponseCode.APPROVED, {15: _date(services)}, audit=AuditEvent.IC_UPLOAD, reason=reason)


async def ic_upload_end(services: Services, ex: Exchange, _kind: MessageKind) -> Result:
    code = ex.message.sub("60.3") or ""
    reason = f"batch upload ended ({_ENDS.get(code, code)})"
    return Result(ResponseCode.APPROVED, {15: _date(services)}, audit=AuditEvent.IC_UPLOAD, reason=reason)
