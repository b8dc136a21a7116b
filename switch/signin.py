"""Terminal sign-in (0800, 60.3 = 001/003/004): fresh working keys in field 62.

Field 62 layouts (cup_pos.json): 001: PIK(8) CV(4) MAK(8) CV(4); 003: PIK(16) CV(4) MAK(8)
8 zero bytes CV(4); 004: the 003 layout then TDK(16) CV(4). Key ciphertexts are under the TMK,
CV = first 4 bytes of E(clear key, zeros), both from the HSM.
"""

from __future__ import annotations

import asyncio

from specs.response import ResponseCode
from switch.context import Exchange, Result, Services, operator_id_from_63
from switch.keyservice import KeyKind, WorkingKey
from switch.records import AuditEvent, SessionKeys, Terminal

# 60.3 -> (PIK length, MAK length, TDK length or 0)
KEY_MODES: dict[str, tuple[int, int, int]] = {"001": (8, 8, 0), "003": (16, 8, 0), "004": (16, 8, 16)}


def field62(mode: str, pik: WorkingKey, mak: WorkingKey, tdk: WorkingKey | None) -> bytes:
    if mode == "001":
        return pik.under_tmk + pik.check_value + mak.under_tmk + mak.check_value
    out = pik.under_tmk + pik.check_value + mak.under_tmk + bytes(8) + mak.check_value
    if mode == "004" and tdk is not None:
        out += tdk.under_tmk + tdk.check_value
    return out


async def terminal_signin(services: Services, ex: Exchange, terminal: Terminal) -> Result:
    mode = ex.message.sub("60.3") or ""
    pik_len, mak_len, tdk_len = KEY_MODES[mode]
    # Field 63 names the operator at the terminal, with no password: it is audited, never
    # looked up, since an answer that depended on it would tell which operator ids exist.
    # Operators prove themselves with their password in the operator sign-in (60.3 = 011).
    operator_id = operator_id_from_63(ex.message.get(63))
    jobs = [
        services.keys.generate_working_key(KeyKind.PIK, pik_len, terminal.tmk_lmk),
        services.keys.generate_working_key(KeyKind.MAK, mak_len, terminal.tmk_lmk),
    ]
    if tdk_len:
        jobs.append(services.keys.generate_working_key(KeyKind.TDK, tdk_len, terminal.tmk_lmk))
    keys = await asyncio.gather(*jobs)
    pik, mak = keys[0], keys[1]
    tdk = keys[2] if tdk_len else None
    now = services.clock()
    services.save_session(
        SessionKeys(
            terminal=ex.tid,
            mode=mode,
            pik_lmk=pik.under_lmk,
            mak_lmk=mak.under_lmk,
            tdk_lmk=tdk.under_lmk if tdk else None,
            signed_in_at=now,
            expires_at=now + services.config.key_lifetime,
            key_generation=terminal.key_generation,
        )
    )
    fields = {
        62: field62(mode, pik, mak, tdk).hex().upper(),
        60: ex.message[60][:2] + terminal.batch + ex.message[60][8:],
        32: services.config.acquirer_id,
    }
    return Result(
        ResponseCode.APPROVED,
        fields,
        audit=AuditEvent.TERMINAL_SIGNIN,
        reason=f"keys {mode}",
        operator=operator_id or "",
    )
