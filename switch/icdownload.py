"""The IC downloads (docs/chip.md; ../shared/vectors/emv.json cup_ic_messages.download_flow):
CA public keys (0820/372 list, 0800/370 one key, 0800/371 end), IC parameters per AID
(382 / 380 / 381) and the card blacklist (0800/390 parts, 0800/391 end; a switchsim layout).

A list is answered in parts that fit field 62 ('1' all of it, '2' more follow, '3' the last
part, '0' nothing); the terminal asks again with how many entries it has. When a terminal
ends a download the version of that set is stored for it, and with ``[chip]
announce_downloads`` the header of a sign-in answer (and of each end) asks for the next set
the terminal's copy of is stale: 4 CA keys, 5 IC parameters, 7 the blacklist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType

from specs.icrecords import (
    BLACKLIST_PROGRESS_DIGITS,
    IcRecordError,
    list_part,
    parse_progress,
    record_answer,
)
from specs.response import ResponseCode
from specs.tlv import TlvError, parse, unique
from switch.context import Exchange, Result, Services
from switch.records import AuditEvent, TerminalId

# The sets, in the order a terminal is asked for them, with the header requirement of each.
_REQUIREMENTS = (("capk", 4), ("aid", 5), ("blacklist", 7))
_NAMES = {"capk": "CA public key", "aid": "IC parameter", "blacklist": "card blacklist"}


async def requirement(services: Services, tid: TerminalId) -> int:
    """The header requirement that asks for the first stale set (0: none, or not announcing)."""
    if not services.config.announce_downloads:
        return 0
    versions = services.ic.versions()
    for what, code in _REQUIREMENTS:
        if what == "blacklist" and not services.ic.blacklist:
            continue
        if await services.store.get_ic_version(tid, what) != versions[what]:
            return code
    return 0


def _field62(ex: Exchange) -> bytes | None:
    raw = ex.message.get(62)
    return bytes.fromhex(raw) if raw is not None else None


def _room(services: Services) -> int:
    spec = services.codec.dialect.fields.get(62)
    return spec.max_length if spec is not None else 512


def _list(services: Services, ex: Exchange, what: str, entries: list[bytes], digits: int = 2) -> Result:
    data = _field62(ex)
    if data is None:
        return Result(ResponseCode.FORMAT_ERROR, reason=f"{_NAMES[what]} list: field 62 (the progress) missing")
    try:
        start = parse_progress(data, digits)
        part, count = list_part(entries, start, _room(services), services.config.download_part_entries)
    except IcRecordError as exc:
        return Result(ResponseCode.FORMAT_ERROR, reason=f"{_NAMES[what]} list: {exc}")
    reason = f"{_NAMES[what]} list: {count} of {len(entries)} from {start} (result {chr(part[0])})"
    return Result(ResponseCode.APPROVED, {62: part.hex().upper()}, reason=reason)


def _record(
    ex: Exchange, what: str, find: Callable[[Mapping[str, bytes]], bytes | None], tags: tuple[str, ...]
) -> Result:
    data = _field62(ex)
    if data is None:
        return Result(ResponseCode.FORMAT_ERROR, reason=f"{_NAMES[what]} download: field 62 (which record) missing")
    try:
        objects = unique(parse(data, field="62"), field="62")
    except TlvError as exc:
        return Result(ResponseCode.FORMAT_ERROR, reason=f"{_NAMES[what]} download: {exc.describe()}")
    missing = [tag for tag in tags if tag not in objects]
    if missing:
        return Result(ResponseCode.FORMAT_ERROR, reason=f"{_NAMES[what]} download: field 62 tag {missing[0]} missing")
    record = find({tag: objects[tag].value for tag in tags})
    shown = " ".join(objects[tag].value.hex().upper() for tag in tags)
    reason = f"{_NAMES[what]} {shown}: {'sent' if record is not None else 'none such'}"
    return Result(ResponseCode.APPROVED, {62: record_answer(record).hex().upper()}, reason=reason)


async def _done(services: Services, ex: Exchange, what: str) -> Result:
    version = services.ic.versions()[what]
    await services.store.set_ic_version(ex.tid, what, version)
    return Result(
        ResponseCode.APPROVED,
        audit=AuditEvent.IC_DOWNLOAD,
        reason=f"{_NAMES[what]} download ended (version {version})",
        requirement=await requirement(services, ex.tid),
    )


async def capk_list(services: Services, ex: Exchange) -> Result:
    return _list(services, ex, "capk", [k.list_entry() for k in services.ic.capks])


async def capk_record(services: Services, ex: Exchange) -> Result:
    def find(values: Mapping[str, bytes]) -> bytes | None:
        index = values["9F22"]
        key = services.ic.capk(values["9F06"], index[0]) if len(index) == 1 else None
        return key.record() if key is not None else None

    return _record(ex, "capk", find, ("9F06", "9F22"))


async def capk_done(services: Services, ex: Exchange) -> Result:
    return await _done(services, ex, "capk")


async def aid_list(services: Services, ex: Exchange) -> Result:
    return _list(services, ex, "aid", [a.list_entry() for a in services.ic.aids])


async def aid_record(services: Services, ex: Exchange) -> Result:
    def find(values: Mapping[str, bytes]) -> bytes | None:
        found = services.ic.aid(values["9F06"])
        return found.record() if found is not None else None

    return _record(ex, "aid", find, ("9F06",))


async def aid_done(services: Services, ex: Exchange) -> Result:
    return await _done(services, ex, "aid")


async def blacklist(services: Services, ex: Exchange) -> Result:
    return _list(services, ex, "blacklist", services.ic.blacklist_entries(), BLACKLIST_PROGRESS_DIGITS)


async def blacklist_done(services: Services, ex: Exchange) -> Result:
    return await _done(services, ex, "blacklist")


#: catalogue kind -> its answer (switch/routes.py routes them).
ANSWERS: Mapping[str, Callable[[Services, Exchange], Awaitable[Result]]] = MappingProxyType(
    {
        "capk_list": capk_list,
        "capk_record": capk_record,
        "capk_done": capk_done,
        "aid_list": aid_list,
        "aid_record": aid_record,
        "aid_done": aid_done,
        "blacklist": blacklist,
        "blacklist_done": blacklist_done,
    }
)
