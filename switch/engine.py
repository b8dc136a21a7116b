"""The switch's message handling: one frame in, one answer out.

This is the single entry point where failures are sorted: a malformed frame is the terminal's
fault (39 = 30, the field named in the log), an HSM or store failure is ours (39 = 96); either
way the terminal gets a response it can parse and the connection lives on. The asyncio server
only moves bytes in and out of `SwitchEngine.handle`.
"""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from hsm_sim.errors import HsmError
from hsm_sim.transports.interface import HsmTransportError
from specs.catalogue import MessageKind, mac_input, mac_slot
from specs.catalogue_loader import catalogue_for
from specs.errors import CodecError
from specs.framing import CupHeader, Frame, encode_frame
from specs.logs import get_logger
from specs.message import Message
from specs.observer import NULL_OBSERVER
from specs.response import ResponseCode
from switch import macdiag, malformed
from switch.chip import with_script
from switch.context import Exchange, Result, Services, audit
from switch.journalwire import request_wire, views
from switch.records import JournalEntry, SessionKeys, TerminalId
from switch.routes import classify, run
from switch.rules import ActionKind
from switch.session import SESSIONLESS, NoSession, Refusal, Request, audit_event, decide, settle
from switch.turns import Turns

_log = get_logger("switch")
_ECHOED = frozenset({2, 3, 4, 7, 11, 14, 22, 25, 41, 42, 49, 60, 61, 70})
# The kinds an observer hears besides the catalogue's: a message no entry serves, one that
# could not be decoded.
_UNMATCHED = "unmatched"
_MALFORMED = "malformed"


class Answer(NamedTuple):  # one per exchange: a tuple is cheaper to make (switch/context.py, Result)
    wire: bytes | None  # None: nothing can be answered (the MTI itself is unreadable)
    close: bool = False


class SwitchEngine:
    def __init__(self, services: Services, *, reraise_bugs: bool = False) -> None:
        self.services = services
        self.codec = services.codec
        self.catalogue = catalogue_for(services.codec.dialect)  # routing, MAC and answer MTIs
        self.reraise_bugs = reraise_bugs  # tests set it, so a bug cannot hide behind a 96
        self.keep_raw = services.config.keep_raw  # `serve --keep-raw`: the journal keeps frames unmasked
        self.observer = services.observer
        self._observed = self.observer is not NULL_OBSERVER  # the kind is looked up only for a listener
        self._log_approvals = services.config.log_exchanges  # `serve --log-exchanges off`
        self._echoed: dict[str, frozenset[int]] = {}  # by answer MTI (_echo)
        self._clock_second, self._clock_text = -1, ("", "")  # (_clock_fields)
        # The requests of one terminal with one STAN are decided one at a time, in arrival order.
        self._turns: Turns[tuple[TerminalId, str | None]] = Turns()

    # -- entry point ---------------------------------------------------------------------------

    async def handle(self, frame: Frame, remote: str) -> Answer:
        """One frame in, its answer out. Never raises: a bug of ours is logged with its stack
        (no values: they may be secrets) and answered 96 when the MTI is readable.

        An answer that closes the connection is decided before the first wait (decoding and
        the rules need none): the server starts the requests that follow one only after that
        (switch/server.py), so they go unhandled, as they would one request at a time."""
        try:
            return await self._handle(frame, remote)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the last line of defence for the connection
            _log.error(
                "internal_error",
                remote=remote,
                error_type=type(exc).__name__,
                stack="".join(traceback.format_tb(exc.__traceback__)),
            )
            if self.reraise_bugs:
                raise
            mti, salvaged = self.codec.salvage(frame.body)
            refusal = None if mti is None else self._refusal(frame, mti, salvaged, ResponseCode.SYSTEM_MALFUNCTION)
            return Answer(None, close=True) if refusal is None else Answer(refusal[1])

    async def _handle(self, frame: Frame, remote: str) -> Answer:
        started = time.perf_counter()
        try:
            message = self.codec.decode(frame.body, base_offset=frame.offset)
        except CodecError as exc:
            return self._malformed(frame, exc, remote, started)
        tid = TerminalId(message.get(42) or "", message.get(41) or "")
        ex = Exchange(frame, message, tid, remote)
        self._journal("in", ex, message, "")
        rule = self.services.rules.evaluate(message, datetime.now()) if self.services.rules else None
        if rule is not None:
            _log.info(
                "rule",
                terminal=str(tid),
                mti=message.mti,
                stan=message.get(11),
                rule=rule.name,
                action=rule.action.kind.value,
            )
            self.observer.rule_fired(rule.name, rule.action.kind.value)
            if rule.action.kind is ActionKind.DROP:
                self._observe(message, "", started, f"rule: {rule.name}")
                return Answer(None)
            if rule.action.kind is ActionKind.CLOSE:
                self._observe(message, "", started, f"rule: {rule.name}")
                return Answer(None, close=True)
        turn = (tid, message.get(11))
        await self._turns.take(turn)  # a repeat waits for its original's decision (switch/turns.py)
        try:
            try:
                if rule is not None and rule.action.kind is ActionKind.RESPOND:
                    session = await self.services.session(tid)
                    result = Result(rule.action.code or ResponseCode.SYSTEM_MALFUNCTION, reason=f"rule: {rule.name}")
                else:
                    result, session = await self._dispatch(ex)
                if rule is not None and rule.action.kind is ActionKind.SCRIPT:
                    result = with_script(result, rule.action.script)
            except (HsmError, HsmTransportError) as exc:  # the client sorts every HSM failure into these
                _log.error("internal_failure", terminal=str(tid), mti=message.mti, error=str(exc))
                result, session = Result(ResponseCode.SYSTEM_MALFUNCTION, reason="HSM unavailable"), None
            response, body = await self._respond(ex, result, session)
        finally:
            self._turns.give_back(turn)
        requirement = 3 if result.sign_in_again else result.requirement
        wire = self._frame(frame, body, requirement)
        self._journal("out", ex, response, "", result, wire)
        self._log_exchange(ex, response, result, started)
        self._observe(message, str(result.code), started, result.reason)
        if rule is not None and rule.action.delay_ms:
            # The request is decided (and committed) first and only the answer is late: a slow
            # host whose approval the terminal gives up on, the case reversals exist for.
            await asyncio.sleep(rule.action.delay_ms / 1000)
        return Answer(wire)

    # -- routing -------------------------------------------------------------------------------

    async def _dispatch(self, ex: Exchange) -> tuple[Result, SessionKeys | None]:
        """Route the request, let the session table decide, run the handler and keep the session
        the table makes of its answer (switch/session.py: no handler writes a session)."""
        services = self.services
        found = classify(ex.message)
        if found is None:
            return Result(self.catalogue.unmatched_code(ex.message.mti), reason="message not served"), None
        kind, route = found
        request = route.request
        if request in SESSIONLESS:  # the table answers these without a terminal: look nothing up
            terminal, stored, merchant_known = None, None, True
        else:
            terminal = await services.store.get_terminal(ex.tid)
            merchant_known = terminal is not None or await services.store.merchant_exists(ex.tid.merchant)
            stored = await services.session(ex.tid) if terminal is not None else None
        decision = decide(request, terminal, stored, services.clock(), merchant_known=merchant_known)
        await self._keep_session(ex.tid, stored, decision.session)
        step = decision.step
        if isinstance(step, NoSession):
            return Result(step.code, reason=step.reason), None
        if isinstance(step, Refusal):
            if step.audited:
                await audit(services, ex, audit_event(request), step.code.value, step.reason)
            return Result(step.code, reason=step.reason, sign_in_again=decision.sign_in_again), decision.live
        live = decision.live
        if kind.maced and live is not None and not await self._mac_ok(ex, live):
            result = Result(ResponseCode.MAC_ERROR, reason="bad MAC", sign_in_again=True)
            await audit(services, ex, audit_event(request), str(result.code), _refused_what(kind, request, result))
            why = await macdiag.explain(services, ex.frame, ex.message, kind, live)
            return Result(result.code, reason=why, sign_in_again=True), None
        assert terminal is not None  # the table serves only registered, enabled terminals
        result = await run(kind, route, services, ex, terminal, live)
        if result.audit is not None:
            await audit(services, ex, result.audit, str(result.code), result.reason, result.operator)
        after = settle(
            decision,
            approved=result.code == ResponseCode.APPROVED,
            keys=result.keys,
            operator=result.operator,
            lifetime=services.config.key_lifetime,
        )
        await self._keep_session(ex.tid, decision.session, after)
        if decision.sign_in_again:
            result = result._replace(sign_in_again=True)
        return result, after

    async def _keep_session(self, tid: TerminalId, before: SessionKeys | None, after: SessionKeys | None) -> None:
        """Store what the session table decided, writing only a change."""
        if after is before or after == before:
            return
        if after is None:
            await self.services.end_session(tid)
        else:
            await self.services.save_session(after)

    # -- MAC -----------------------------------------------------------------------------------

    async def _mac_ok(self, ex: Exchange, session: SessionKeys) -> bool:
        mac_hex = ex.message.get(64)
        if mac_hex is None:
            return False
        data = mac_input(self.codec, ex.message, ex.frame.body)  # the bytes as they arrived
        return await self.services.keys.verify_mac(session.mak_lmk, data, bytes.fromhex(mac_hex))

    # -- responses -----------------------------------------------------------------------------

    async def _respond(self, ex: Exchange, result: Result, session: SessionKeys | None) -> tuple[Message, bytes]:
        """The answer and its body, encoded once and checked against the dialect's rules (what
        the switch sends must decode strictly at the terminal); a MAC is patched into the
        encoded bytes (specs/catalogue.py, `mac_slot`)."""
        request = ex.message
        answer_mti = self.catalogue.response_mti(request.mti)
        # The echoed values passed the strict decode of the request: only the new ones are
        # normalised and checked again.
        # Not sorted here: extend builds (and sorts) the answer once.
        local_time, local_date = self._clock_fields()
        fields = {
            12: local_time,
            13: local_date,
            37: self.services.next_rrn(),
            39: str(result.code),
            **result.fields,
        }
        response = self.codec.extend(
            answer_mti, self._echo(answer_mti, request.fields), fields, checked=request.checked
        )
        wants_mac = 64 in request and result.code != ResponseCode.MAC_ERROR
        if wants_mac and session is not None and session.expires_at > self.services.clock():
            slot = mac_slot(self.codec, response)
            mac = (await self.services.keys.generate_mac(session.mak_lmk, slot.head)).hex().upper()
            return self.codec.amend(response, {64: mac}), slot.fill(mac)
        return response, self.codec.encode(response)

    def _echo(self, answer_mti: str, request: Mapping[int, str]) -> dict[int, str]:
        """The request's fields an answer repeats: the usual echo set, and what the answer's rule
        makes mandatory in an approval (0510 repeats 48), less what the answer may not carry."""
        wanted = self._echoed.get(answer_mti)
        if wanted is None:  # worked out once per answer MTI: the dialect does not change
            rule = self.codec.dialect.messages.get(answer_mti)
            wanted = (_ECHOED | rule.mandatory) - rule.forbidden if rule is not None else _ECHOED
            self._echoed[answer_mti] = wanted
        return {n: request[n] for n in wanted & request.keys()}  # unordered: the answer is sorted once

    def _clock_fields(self) -> tuple[str, str]:
        """Fields 12 and 13 (local time hhmmss, date MMDD), formatted once a second."""
        second = int(self.services.clock())
        if second != self._clock_second:
            now = time.localtime(second)
            self._clock_second, self._clock_text = second, (time.strftime("%H%M%S", now), time.strftime("%m%d", now))
        return self._clock_text

    def _frame(self, request: Frame, body: bytes, requirement: int) -> bytes:
        """The answer's body on the wire, with the header's processing requirement (3: sign in
        again; 4, 5, 7: download IC keys, IC parameters, the blacklist)."""
        fmt = self.codec.dialect.framing
        header = request.header or CupHeader() if fmt.cup_header else None
        if header is not None:
            header = header.with_requirement(requirement)
        tpdu = request.tpdu.reply() if request.tpdu is not None else None
        return encode_frame(fmt, body, tpdu=tpdu, header=header)

    def _refusal(self, frame: Frame, mti: str, readable: Mapping[int, str], code: str) -> tuple[Message, bytes] | None:
        """A refusal (39 = ``code``) echoing what could be read of the request. Never raises: if
        that cannot be built (a bug of ours), the last resort is MTI and 39 alone, which the
        rules of every response accept and which holds no value that could be wrong."""
        answer_mti = self.catalogue.response_mti(mti)
        try:
            response = self.codec.message(answer_mti, {**self._echo(answer_mti, readable), 39: code})
            return response, self._frame(frame, self.codec.encode(response), 0)
        except Exception as exc:
            _log.error("internal_error", stage="refusal", mti=answer_mti, error_type=type(exc).__name__)
            if self.reraise_bugs:
                raise
        try:
            response = self.codec.message(answer_mti, {39: code})
            return response, self._frame(frame, self.codec.encode(response), 0)
        except Exception as exc:  # only a dialect without field 39 gets here: nothing can answer
            _log.error("internal_error", stage="last_resort", mti=answer_mti, error_type=type(exc).__name__)
            return None

    def _malformed(self, frame: Frame, exc: CodecError, remote: str, started: float) -> Answer:
        """39 = 30 echoing the fields that could be read; the error is logged once, in the
        words the journal keeps (switch/malformed.py)."""
        mti, salvaged = self.codec.salvage(frame.body)
        why = malformed.describe(exc, salvaged)
        _log.warning(
            "format_error",
            remote=remote,
            terminal=f"{salvaged.get(42, '?')}/{salvaged.get(41, '?')}",
            stan=salvaged.get(11),
            field=exc.field,
            offset=exc.offset,
            reason=exc.reason,
            response_code=exc.response_code.value,
            text=why,
        )
        self.observer.wire_error("format")
        tid = TerminalId(salvaged.get(42, ""), salvaged.get(41, ""))
        self._journal_raw("in", tid, remote, mti or "", frame, exc, salvaged.get(11, ""))
        if mti is not None:
            self.observer.exchange_done(_MALFORMED, exc.response_code.value, time.perf_counter() - started, "", why)
        refusal = None if mti is None else self._refusal(frame, mti, salvaged, exc.response_code.value)
        if refusal is None:
            return Answer(None, close=True)
        response, wire = refusal
        result = Result(exc.response_code.value, reason=why)
        self._journal("out", Exchange(frame, response, tid, remote), response, "", result, wire)
        return Answer(wire)

    # -- journal and log -----------------------------------------------------------------------

    def _journal(
        self,
        direction: str,
        ex: Exchange,
        message: Message,
        error: str,
        result: Result | None = None,
        wire: bytes | None = None,
    ) -> None:
        # Masking and formatting are the journal's (switch/journaldraft.py), which `serve` runs in
        # a process of its own where a core is left for it (switch/journalproc.py).
        refused = result is not None and result.code != ResponseCode.APPROVED
        self.services.journal.message(
            self.services.clock(),
            direction,
            ex.tid,
            ex.remote,
            message,
            ex.frame,
            error,
            result.reason if refused and result is not None else "",
            result.warnings if result is not None else (),
            wire or request_wire(self.codec, ex.frame),
        )

    def _journal_raw(
        self, direction: str, tid: TerminalId, remote: str, mti: str, frame: Frame, exc: CodecError, stan: str
    ) -> None:
        seen = views(self.codec, request_wire(self.codec, frame), None, keep_raw=self.keep_raw)
        self.services.journal.entry(
            JournalEntry(
                time=self.services.clock(),
                direction=direction,
                merchant=tid.merchant,
                terminal=tid.terminal,
                remote=remote,
                mti=mti,
                stan=stan,
                response_code="",
                masked_json=json.dumps({"length": len(frame.body)}),
                error=str(exc),
                wire=seen.masked,
                raw=seen.raw,
            )
        )

    def _observe(self, message: Message, code: str, started: float, reason: str) -> None:
        """The exchange for the observer: its catalogue kind, field 39 ("" unanswered), seconds."""
        if self._observed:
            kind = self.catalogue.lookup(message)
            self.observer.exchange_done(
                kind.name if kind is not None else _UNMATCHED, code, time.perf_counter() - started, "", reason
            )

    def _log_exchange(self, ex: Exchange, response: Message, result: Result, started: float) -> None:
        """One line per exchange; with `--log-exchanges off`, only those not approved (a decline,
        a refusal: what a load run must still see), the same line as with it on."""
        if not self._log_approvals and result.code == ResponseCode.APPROVED:
            return
        _log.info(
            "exchange",
            terminal=str(ex.tid),
            remote=ex.remote,
            mti=ex.message.mti,
            nmic=ex.message.sub("60.3"),
            stan=ex.message.get(11),
            response_code=str(result.code),
            reason=result.reason,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )


def _refused_what(kind: MessageKind, request: Request, result: Result) -> str:
    """The audit reason, naming the financial operation when there is one ("bad MAC: void")."""
    return f"{result.reason}: {kind.name}" if request is Request.FINANCIAL else result.reason
