"""Why a MAC (field 64) did not verify, in words a firmware engineer can act on.

What was received, what was expected (the POS ECB MAC of docs/cup-pos.md, "The MAC"), over how
many bytes, under which MAK (its check value and key generation); then the usual mistakes of a
terminal, tried one by one, and the one that gives the MAC received:

- the MAK of the previous sign-in (the terminal did not load the keys of its last sign-in);
- the MAC over the frame with the TPDU and header, or with the header alone;
- the MAC over the body without the MTI;
- the MAC over the message encoded without field 64 (the zero placeholder left out);
- the other MAC algorithm the dialect knows: the ANSI X9.9/X9.19 CBC-MAC (ISO 9797-1 algorithm 1
  under a single-length MAK, algorithm 3 under a double-length one) instead of the POS ECB MAC;
- the right MAC written in lower-case hexadecimal.

Every MAC here is computed by the HSM (M6) under the key it holds encrypted under the LMK: the
switch never holds a clear key. A MAC value is not a secret; keys never appear, only their check
values. Which inputs and keys to try is pure (`candidates`); only `explain` talks to the HSM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from hsm_sim.client import HsmClient, MacAlgorithm
from hsm_sim.hostcmd import FieldCursor
from specs.catalogue import MessageKind, mac_input
from specs.codec import Codec
from specs.framing import Frame
from specs.message import Message
from switch.context import Services
from switch.records import IssuedKeys, SessionKeys

_TAK = "003"
_MAC_FIELD = 64
_CBC_NAMES = {
    MacAlgorithm.ISO9797_ALG1: "X9.9 CBC-MAC (ISO 9797-1 algorithm 1)",
    MacAlgorithm.ISO9797_ALG3: "X9.19 retail MAC (ISO 9797-1 algorithm 3)",
}


class Mistake(StrEnum):
    """What a terminal did instead of the MAC the dialect asks for, in the words of a reason."""

    PREVIOUS_KEYS = "the terminal did not load the keys of its last sign-in"
    WITH_FRAMING = "the terminal MACed the frame with its TPDU and header"
    WITH_HEADER = "the terminal MACed the frame with its header"
    WITHOUT_MTI = "the terminal MACed the body without the MTI"
    WITHOUT_PLACEHOLDER = "the terminal MACed the message without field 64 (the zero placeholder left out)"
    OTHER_ALGORITHM = "the terminal computed the ANSI X9.9/X9.19 CBC-MAC, not the POS ECB MAC"
    LOWER_CASE = "the terminal sent the right MAC in lower-case hexadecimal"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One way a terminal may have made its MAC: which key, over which bytes, how."""

    mistakes: tuple[Mistake, ...]
    mak_lmk: str
    data: bytes
    algorithm: MacAlgorithm


def key_length(key_lmk: str) -> int:
    """Bytes of a key in host-command notation (16H single, U/X + 32H double, T/Y + 48H triple)."""
    return FieldCursor(key_lmk.encode("ascii")).take_key("key", "ZUTXY").scheme.key_length


def cbc_algorithm(mak_lmk: str) -> MacAlgorithm:
    """X9.9 under a single-length MAK, X9.19 (retail MAC) under a double-length one."""
    return MacAlgorithm.ISO9797_ALG1 if key_length(mak_lmk) == 8 else MacAlgorithm.ISO9797_ALG3


def inputs(codec: Codec, frame: Frame, message: Message) -> list[tuple[tuple[Mistake, ...], bytes]]:
    """The MAC inputs worth trying: the right one first, then the usual wrong ones."""
    right = mac_input(codec, message, frame.body)  # as the engine checks it
    prefix = (frame.tpdu.to_bytes() if frame.tpdu is not None else b"") + (
        frame.header.to_bytes() if frame.header is not None else b""
    )
    found: list[tuple[tuple[Mistake, ...], bytes]] = [((), right)]
    if frame.tpdu is not None and frame.header is not None:
        found.append(((Mistake.WITH_FRAMING,), prefix + right))
        found.append(((Mistake.WITH_HEADER,), frame.header.to_bytes() + right))
    elif prefix:
        found.append(((Mistake.WITH_FRAMING,), prefix + right))
    bitmap_at = message.offsets.get("bitmap")
    if bitmap_at:
        found.append(((Mistake.WITHOUT_MTI,), right[bitmap_at:]))
    without = codec.encode(codec.amend(message, {_MAC_FIELD: None}), validate=False)
    found.append(((Mistake.WITHOUT_PLACEHOLDER,), without))
    return found


def candidates(
    codec: Codec, frame: Frame, message: Message, mak_lmk: str, previous_mak_lmk: str | None
) -> list[Candidate]:
    """Every (key, input, algorithm) to try, the most likely first; the first is the right MAC."""
    keys: list[tuple[tuple[Mistake, ...], str]] = [((), mak_lmk)]
    if previous_mak_lmk is not None and previous_mak_lmk != mak_lmk:
        keys.append(((Mistake.PREVIOUS_KEYS,), previous_mak_lmk))
    found: list[Candidate] = []
    for key_mistakes, key in keys:
        for input_mistakes, data in inputs(codec, frame, message):
            found.append(Candidate(key_mistakes + input_mistakes, key, data, MacAlgorithm.CUP_POS))
    for key_mistakes, key in keys:
        for input_mistakes, data in inputs(codec, frame, message)[:1]:
            extra = (Mistake.OTHER_ALGORITHM,)
            found.append(Candidate(key_mistakes + input_mistakes + extra, key, data, cbc_algorithm(key)))
    return found


def received_text(mac: bytes) -> str:
    """Field 64 as a person reads it: the 8 characters of a POS MAC, else its bytes in hex."""
    text = mac.decode("latin-1")
    if text.isascii() and text.isalnum() and all(c in "0123456789ABCDEFabcdef" for c in text):
        return text
    return f"hex {mac.hex().upper()}"


def matches(candidate: Candidate, computed: str, received: bytes) -> bool:
    """Whether ``received`` (field 64's 8 bytes) is the MAC ``computed`` (hex text) as the
    candidate's algorithm puts it in field 64."""
    if candidate.algorithm is MacAlgorithm.CUP_POS:
        return received == computed.encode("ascii")
    # A CBC-MAC travels as its 8 bytes, or as the first 8 of its hex digits (as the POS MAC does).
    return received.hex().upper() == computed or received == computed[:8].encode("ascii")


def _input_span(kind: MessageKind | None, message: Message) -> str:
    last = max((n for n in message.fields if n != _MAC_FIELD), default=None)
    what = f"MTI to field {last}" if last is not None else "MTI and bitmap"
    return what if kind is None else f"{what} of the {kind.name}"


@dataclass(frozen=True, slots=True)
class _Keys:
    generation: str
    check: str


async def _key_facts(hsm: HsmClient, mak_lmk: str, history: Sequence[IssuedKeys]) -> _Keys:
    generation = next((str(k.generation) for k in history if k.mak_lmk == mak_lmk), "?")
    check = (await hsm.check_value(_TAK, mak_lmk))[:8]
    return _Keys(generation, check)


async def explain(
    services: Services, frame: Frame, message: Message, kind: MessageKind | None, session: SessionKeys
) -> str:
    """The reason of an A0: what was wrong with field 64 and the likeliest cause."""
    hsm = services.keys.hsm
    codec = services.codec
    history = await services.store.key_history(session.terminal)
    current = await _key_facts(hsm, session.mak_lmk, history)
    under = f"MAK generation {current.generation}, check value {current.check}"
    what = kind.name if kind is not None else message.mti
    mac_hex = message.get(_MAC_FIELD)
    if mac_hex is None:
        return f"bad MAC: field 64 (MAC) missing; a {what} is MACed under the session's {under}"
    received = bytes.fromhex(mac_hex)
    previous = next((k for k in history if k.mak_lmk != session.mak_lmk), None)
    tried = candidates(codec, frame, message, session.mak_lmk, previous.mak_lmk if previous else None)
    right = tried[0]
    expected = await hsm.generate_mac(_TAK, right.mak_lmk, right.data, right.algorithm)
    head = (
        f"bad MAC: received {received_text(received)}, expected {expected} "
        f"(POS ECB MAC over {len(right.data)} bytes, {_input_span(kind, message)}, under {under})"
    )
    if received.decode("latin-1").upper() == expected and received != expected.encode("ascii"):
        return f"{head}; {Mistake.LOWER_CASE.value}"
    for candidate in tried[1:]:
        computed = await hsm.generate_mac(
            _TAK,
            candidate.mak_lmk,
            candidate.data,
            candidate.algorithm,
            long_mac=candidate.algorithm is not MacAlgorithm.CUP_POS,
        )
        if matches(candidate, computed, received):
            return f"{head}; it matches {await _describe(hsm, candidate, previous, history)}"
    return (
        f"{head}; no usual mistake gives it (previous sign-in's MAK, TPDU/header MACed, MTI left "
        f"out, field 64 placeholder left out, X9.9/X9.19 CBC-MAC): compare the terminal's MAK with "
        f"check value {current.check}"
    )


async def _describe(
    hsm: HsmClient, candidate: Candidate, previous: IssuedKeys | None, history: Sequence[IssuedKeys]
) -> str:
    parts = []
    if Mistake.PREVIOUS_KEYS in candidate.mistakes and previous is not None:
        facts = await _key_facts(hsm, previous.mak_lmk, history)
        parts.append(
            f"the MAC under the previous sign-in's MAK (generation {facts.generation}, check value {facts.check})"
        )
    how = [m for m in candidate.mistakes if m is not Mistake.PREVIOUS_KEYS]
    if Mistake.OTHER_ALGORITHM in how:
        parts.append(f"the {_CBC_NAMES[candidate.algorithm]} of the same bytes")
    wrong_input = [m for m in how if m is not Mistake.OTHER_ALGORITHM]
    if wrong_input:
        parts.append(f"the MAC over {len(candidate.data)} bytes")
    return " and ".join(parts) + ": " + "; ".join(m.value for m in candidate.mistakes)
