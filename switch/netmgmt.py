"""Network management that needs no HSM: sign-off, echo test, parameter download, status upload.

What a sign-off does to the session is the session table's (switch/session.py): it ends it."""

from __future__ import annotations

from specs.response import ResponseCode
from switch.context import Exchange, Result, Services
from switch.records import AuditEvent


def signoff(_services: Services, _ex: Exchange) -> Result:
    return Result(ResponseCode.APPROVED, audit=AuditEvent.TERMINAL_SIGNOFF)


def echo(_services: Services, _ex: Exchange) -> Result:
    return Result(ResponseCode.APPROVED)


def parameters(services: Services, _ex: Exchange) -> Result:
    """Field 62 = each configured parameter as a 2-digit tag then its value (ASCII)."""
    data = "".join(tag + value for tag, value in sorted(services.config.parameters.items()))
    fields = {62: data.encode("ascii").hex().upper()} if data else {}
    return Result(ResponseCode.APPROVED, fields)


def status_upload(_services: Services, _ex: Exchange) -> Result:
    return Result(ResponseCode.APPROVED)
