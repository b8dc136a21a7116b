"""What an engineer compares with the PIN pad: a terminal's registration, session and last refusals.

`show` gathers it from the store, and the keys' check values from the HSM (BU; the store keeps
keys under the LMK only): the TMK's check value as registered, each working key's first 4 bytes
of check value as field 62 carried them, the key generation (the sign-in's number), the batch,
the operator signed in, when the keys expire, when the terminal was last seen, and its last
refusals with their reasons. No key, PIN or PAN appears.
"""

from __future__ import annotations

from dataclasses import dataclass

from switch.context import Services
from switch.records import JournalEntry, SessionKeys, Terminal, TerminalId
from switch.store import StoreError

_TPK, _TAK, _TDK = "002", "003", "00B"
_REFUSALS_SHOWN = 5
_JOURNAL_LOOKED_AT = 500


@dataclass(frozen=True, slots=True)
class SessionView:
    signed_in_at: float
    expires_at: float
    mode: str
    generation: int | None
    pik_check: str
    mak_check: str
    tdk_check: str | None
    operator: str | None


@dataclass(frozen=True, slots=True)
class TerminalView:
    terminal: Terminal
    session: SessionView | None
    expired: bool
    last_seen: float | None
    refusals: tuple[JournalEntry, ...]


def session_state(session: SessionKeys | None, now: float) -> str:
    """One word or two for `terminal list`: signed off, expired, signed in, operator NN."""
    if session is None:
        return "signed off"
    if session.expires_at <= now:
        return "expired"
    return "signed in" if session.operator_id is None else f"operator {session.operator_id}"


async def show(services: Services, tid: TerminalId) -> TerminalView:
    terminal = await services.store.get_terminal(tid)
    if terminal is None:
        raise StoreError(f"no terminal {tid}")
    session = await services.store.get_session(tid)
    if session is not None and session.key_generation != terminal.key_generation:
        session = None  # a re-registration ended it
    view = None
    if session is not None:
        hsm = services.keys.hsm
        history = await services.store.key_history(tid)
        generation = next((k.generation for k in history if k.mak_lmk == session.mak_lmk), None)
        tdk = (await hsm.check_value(_TDK, session.tdk_lmk))[:8] if session.tdk_lmk else None
        view = SessionView(
            signed_in_at=session.signed_in_at,
            expires_at=session.expires_at,
            mode=session.mode,
            generation=generation,
            pik_check=(await hsm.check_value(_TPK, session.pik_lmk))[:8],
            mak_check=(await hsm.check_value(_TAK, session.mak_lmk))[:8],
            tdk_check=tdk,
            operator=session.operator_id,
        )
    journal = await services.store.list_journal(tid.terminal, _JOURNAL_LOOKED_AT, merchant=tid.merchant)
    refused = [e for e in journal if e.direction == "out" and e.response_code not in ("", "00")]
    return TerminalView(
        terminal=terminal,
        session=view,
        expired=session is not None and session.expires_at <= services.clock(),
        last_seen=journal[-1].time if journal else None,
        refusals=tuple(refused[-_REFUSALS_SHOWN:]),
    )
