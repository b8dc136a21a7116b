"""Terminal sign-in (0800, 60.3 = 001/003/004): fresh working keys in field 62.

Which keys, how long, and where each sits in field 62 is the key mode's layout in the message
catalogue (specs/dialects/cup-pos.messages.toml; docs/cup-pos.md, "Field 62"). Key ciphertexts
are under the TMK, check values the first bytes of E(clear key, zeros), both from the HSM.
"""

from __future__ import annotations

import asyncio

from specs.catalogue import MessageKind
from specs.catalogue_loader import catalogue_for
from specs.message import join_subfields
from specs.response import ResponseCode
from switch import icdownload
from switch.context import Exchange, Result, Services, operator_id_from_63
from switch.keyservice import KeyKind
from switch.records import AuditEvent, SessionKeys, Terminal
from switch.session import NewKeys


async def terminal_signin(
    services: Services, ex: Exchange, kind: MessageKind, terminal: Terminal, _session: SessionKeys | None
) -> Result:
    catalogue = catalogue_for(ex.message.dialect)
    mode = catalogue.network_code(ex.message) or ""
    layout = kind.layout(mode)
    # Field 63 names the operator at the terminal, with no password: it is audited, never
    # looked up, since an answer that depended on it would tell which operator ids exist.
    # Operators prove themselves with their password in the operator sign-in (60.3 = 011).
    operator_id = operator_id_from_63(ex.message.get(63))
    generated = await asyncio.gather(
        *(
            services.keys.generate_working_key(KeyKind[name.name], layout.key_length(name), terminal.tmk_lmk)
            for name in layout.keys
        )
    )
    keys = {key.kind.name: key for key in generated}
    pik, mak, tdk = keys["PIK"], keys["MAK"], keys.get("TDK")
    # The session table installs them (switch.session.settle), with the key lifetime.
    new_keys = NewKeys(mode, pik.under_lmk, mak.under_lmk, tdk.under_lmk if tdk else None)
    field62 = layout.build({name: (keys[name.name].under_tmk, keys[name.name].check_value) for name in layout.keys})
    fields = {62: field62.hex().upper(), 32: services.config.acquirer_id}
    batch = catalogue.batch_field
    if batch is not None:  # the answer names the host's batch number for the terminal
        parent = int(batch.partition(".")[0])
        parts = {**ex.message.subfields(parent), batch: terminal.batch}
        fields[parent] = join_subfields(parent, parts, ex.message.dialect)
    return Result(
        ResponseCode.APPROVED,
        fields,
        audit=AuditEvent.TERMINAL_SIGNIN,
        reason=f"keys {mode}",
        operator=operator_id or "",
        keys=new_keys,
        requirement=await icdownload.requirement(services, ex.tid),
    )
