"""Operator ids cannot be enumerated: an unknown id is refused, counted, locked and unlocked
exactly as a real operator with a wrong password, in the engine (no sockets) and end to end
over real sockets with the independent test terminal, across a restart and a CLI unlock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from specs.message import Message
from switch import admin
from switch.app import build_services, register_terminal, serve_switch, set_operator
from switch.config import SwitchConfig
from switch.context import Services
from switch.engine import SwitchEngine
from switch.records import AuditEvent, OperatorFailures, TerminalId
from switch.sqlite_store import SCHEMA_VERSION, SqliteStore
from switch.store import StoreError
from switchsim.cli import main
from tests.switch import independent
from tests.switch.pos import MERCHANT, TERMINAL, TMK, Pos

TID = TerminalId(MERCHANT, TERMINAL)
IDS = ["--merchant", MERCHANT, "--terminal", TERMINAL]


class RecordingTransport:
    """The in-process HSM, noting the command code of every request the switch makes; ``meanwhile``
    runs once, while the next request with that code is in flight (what another worker or the
    administrator does during the switch's HSM call)."""

    def __init__(self) -> None:
        self.inner = InProcTransport(Dispatcher(reraise_bugs=True))
        self.codes: list[bytes] = []
        self.meanwhile: dict[bytes, Callable[[], Awaitable[object]]] = {}

    async def request(self, message: bytes) -> bytes:
        self.codes.append(message[:2])
        answer = await self.inner.request(message)
        if (action := self.meanwhile.pop(message[:2], None)) is not None:
            await action()
        return answer

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture
def hsm() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
async def services(hsm: RecordingTransport) -> Services:
    svc = build_services(SwitchConfig(db=":memory:"), SqliteStore(":memory:"), hsm)
    await register_terminal(svc, MERCHANT, TERMINAL, TMK)
    return svc


async def _signed_in(engine: SwitchEngine) -> Pos:
    pos = Pos()
    answer = await engine.handle(pos.frame(pos.signin()), "test")
    assert answer.wire is not None
    pos.take_keys(pos.read(answer.wire))
    return pos


async def _try(engine: SwitchEngine, pos: Pos, operator: str, password: str) -> Message:
    answer = await engine.handle(pos.frame(pos.operator_signin(operator, password), mac=True), "test")
    assert answer.wire is not None
    return pos.read(answer.wire)  # decoded strictly: every answer is valid cup-pos


async def test_unknown_id_answers_55_55_75_75_like_a_wrong_password(
    services: Services, hsm: RecordingTransport
) -> None:
    engine = SwitchEngine(services)
    pos = await _signed_in(engine)
    seen: dict[str, list[tuple[str, list[int], list[bytes]]]] = {}
    for operator, password in (("001", "9999"), ("042", "0000"), ("099", "1111")):
        for _ in range(5):
            hsm.codes.clear()
            answer = await _try(engine, pos, operator, password)
            seen.setdefault(operator, []).append((answer[39], sorted(answer.fields), list(hsm.codes)))
    known, unknown = seen["001"], seen["042"]
    assert [code for code, _, _ in known] == ["55", "55", "75", "75", "75"]
    # the same codes, the same fields, the same HSM commands, try by try
    assert [(f, c) for _, f, c in unknown] == [(f, c) for _, f, c in known]
    assert [code for code, _, _ in unknown] == ["55", "55", "75", "75", "75"]
    assert await services.store.get_operator(TID, "42") is None  # no operator was created for it
    failures = await services.store.get_operator_failures(TID, "42")
    assert failures is not None and (failures.failures, failures.locked) == (3, True)
    events = [(r.event, r.operator) for r in await services.store.list_audit(TERMINAL)]
    assert (AuditEvent.OPERATOR_LOCKED, "42") in events and (AuditEvent.OPERATOR_LOCKED, "01") in events


async def test_any_password_counts_for_an_unknown_id(services: Services) -> None:
    engine = SwitchEngine(services)
    pos = await _signed_in(engine)
    codes = [(await _try(engine, pos, "042", password))[39] for password in ("0000", "123456", "12345678", "0000")]
    assert codes == ["55", "55", "75", "75"]


async def test_a_disabled_operator_is_counted_like_an_unknown_id(services: Services) -> None:
    await admin.set_operator_enabled(services, TID, "01", False)
    engine = SwitchEngine(services)
    pos = await _signed_in(engine)
    codes = [(await _try(engine, pos, "001", "0000"))[39] for _ in range(4)]
    assert codes == ["55", "55", "75", "75"]


async def test_unlock_clears_an_unknown_ids_count_and_lock(services: Services) -> None:
    engine = SwitchEngine(services)
    pos = await _signed_in(engine)
    assert [(await _try(engine, pos, "042", "0000"))[39] for _ in range(3)] == ["55", "55", "75"]
    await admin.unlock_operator(services, TID, "42")
    assert await services.store.get_operator_failures(TID, "42") is None
    assert [(await _try(engine, pos, "042", "0000"))[39] for _ in range(3)] == ["55", "55", "75"]
    reasons = [r.reason for r in await services.store.list_audit(TERMINAL) if r.event is AuditEvent.OPERATOR_UNLOCKED]
    assert reasons == ["failures of an unknown id cleared"]


async def test_unlock_of_an_id_with_neither_operator_nor_failures_is_an_error(services: Services) -> None:
    with pytest.raises(StoreError, match="no operator 42"):
        await admin.unlock_operator(services, TID, "42")


async def test_creating_the_operator_starts_it_with_no_failures(services: Services) -> None:
    engine = SwitchEngine(services)
    pos = await _signed_in(engine)
    assert [(await _try(engine, pos, "042", "0000"))[39] for _ in range(3)] == ["55", "55", "75"]
    await set_operator(services, TID, "42", "4242")
    assert await services.store.get_operator_failures(TID, "42") is None
    assert (await _try(engine, pos, "042", "4242"))[39] == "00"


async def test_a_right_password_after_failures_resets_a_known_operators_count(services: Services) -> None:
    engine = SwitchEngine(services)
    pos = await _signed_in(engine)
    codes = [(await _try(engine, pos, "001", p))[39] for p in ("9999", "9999", "0000", "9999", "9999", "9999")]
    assert codes == ["55", "55", "00", "55", "55", "75"]


async def test_a_lock_counted_during_a_right_passwords_hsm_check_stands(
    services: Services, hsm: RecordingTransport
) -> None:
    # Two refusals, then the right password: while its BC is at the HSM, a third refusal through
    # another worker locks the operator. Writing back the record read before BC would unlock it.
    engine = SwitchEngine(services)
    pos = await _signed_in(engine)
    assert [(await _try(engine, pos, "001", "9999"))[39] for _ in range(2)] == ["55", "55"]
    hsm.meanwhile[b"BC"] = lambda: services.store.add_operator_failure(TID, "01", 3)
    assert (await _try(engine, pos, "001", "0000"))[39] == "75"
    after = await services.store.get_operator(TID, "01")
    assert after is not None and (after.locked, after.failures) == (True, 3)
    assert (await _try(engine, pos, "001", "0000"))[39] == "75"


async def test_a_disable_during_a_password_change_stays(services: Services, hsm: RecordingTransport) -> None:
    engine = SwitchEngine(services)
    pos = await _signed_in(engine)
    hsm.meanwhile[b"JC"] = lambda: admin.set_operator_enabled(services, TID, "01", False)
    new_block = independent.operator_pin_block("4321", pos.pik).hex().upper()
    change = pos.operator_signin("001", "0000", nmic="013").replace(f62=new_block)
    answer = await engine.handle(pos.frame(change, mac=True), "test")
    assert answer.wire is not None and pos.read(answer.wire)[39] == "00"
    after = await services.store.get_operator(TID, "01")
    assert after is not None and not after.enabled
    await admin.set_operator_enabled(services, TID, "01", True)
    assert (await _try(engine, pos, "001", "4321"))[39] == "00"  # the new password was kept


async def test_a_lock_counted_during_a_password_change_refuses_it(
    services: Services, hsm: RecordingTransport
) -> None:
    engine = SwitchEngine(services)
    pos = await _signed_in(engine)
    hsm.meanwhile[b"JC"] = lambda: services.store.add_operator_failure(TID, "01", 1)
    new_block = independent.operator_pin_block("4321", pos.pik).hex().upper()
    change = pos.operator_signin("001", "0000", nmic="013").replace(f62=new_block)
    answer = await engine.handle(pos.frame(change, mac=True), "test")
    assert answer.wire is not None and pos.read(answer.wire)[39] == "75"
    await admin.unlock_operator(services, TID, "01")
    assert (await _try(engine, pos, "001", "0000"))[39] == "00"  # the old password is still the one


async def test_terminal_signin_does_not_tell_which_operator_ids_exist(services: Services) -> None:
    engine = SwitchEngine(services)
    answers = []
    for field63 in ("001", "042", "01 ", "099"):
        if field63 == "099":
            await admin.set_operator_enabled(services, TID, "99", False)
        pos = Pos()
        answer = await engine.handle(pos.frame(pos.message("0800", "003", f63=field63)), "test")
        assert answer.wire is not None
        reply = pos.read(answer.wire)
        pos.take_keys(reply)  # usable keys, whatever field 63 said
        answers.append((reply[39], sorted(reply.fields)))
    assert answers == [answers[0]] * 4 and answers[0][0] == "00"


# -- end to end: real sockets, a file store, a restart and the CLI ----------------------------


async def _exchange(port: int, wire: bytes) -> bytes:
    """Send one frame on a fresh connection (as UnionPay terminals do) and read its answer:
    a 2-byte big-endian length, then that many bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(wire)
        await writer.drain()
        head = await asyncio.wait_for(reader.readexactly(2), 10)
        return head + await asyncio.wait_for(reader.readexactly(int.from_bytes(head, "big")), 10)
    finally:
        writer.close()


async def _session(db: str, attempts: list[tuple[str, str]]) -> list[str]:
    """Start the switch on ``db``, sign a terminal in, try each (operator, password), stop."""
    running = await serve_switch(SwitchConfig(host="127.0.0.1", port=0, db=db))
    try:
        pos = Pos()
        pos.take_keys(pos.read(await _exchange(running.port, pos.wire(pos.signin()))))
        codes = []
        for operator, password in attempts:
            answer = await _exchange(running.port, pos.wire(pos.operator_signin(operator, password), mac=True))
            codes.append(pos.read(answer)[39])
        return codes
    finally:
        await running.close()


def test_unknown_id_locks_across_a_restart_and_cli_unlock_clears_it(tmp_path: Path) -> None:
    db = str(tmp_path / "switch.db")
    assert main(["terminal", "add", "--db", db, *IDS, "--tmk", TMK.hex().upper()]) == 0
    assert asyncio.run(_session(db, [("042", "0000"), ("001", "9999")] * 2)) == ["55"] * 4
    # a new switch process would see the same: the counts live in the store
    after_restart = asyncio.run(_session(db, [("042", "1234"), ("001", "9999"), ("042", "0000"), ("001", "0000")]))
    assert after_restart == ["75", "75", "75", "75"]
    assert main(["operator", "unlock", "--db", db, *IDS, "--id", "42"]) == 0
    assert main(["operator", "unlock", "--db", db, *IDS, "--id", "01"]) == 0
    assert asyncio.run(_session(db, [("042", "0000"), ("001", "0000"), ("042", "0000"), ("042", "0000")])) == [
        "55",
        "00",
        "55",
        "75",
    ]
    assert main(["operator", "unlock", "--db", db, *IDS, "--id", "43"]) == 2  # nothing to unlock


async def test_a_store_from_before_the_failure_counts_gains_their_table(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE operators (merchant TEXT, terminal TEXT, operator TEXT)")
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()
    store = SqliteStore(path)
    await store.put_operator_failures(OperatorFailures(TID, "42", 2, False))
    assert await store.get_operator_failures(TID, "42") == OperatorFailures(TID, "42", 2, False)
    assert await store.delete_operator_failures(TID, "42") and not await store.delete_operator_failures(TID, "42")
    await store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
