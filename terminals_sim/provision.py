"""Fleet identities and TMKs derived from a seed both sides know, so a load run needs no set-up.

The switch side registers the same plan (``switch.provisioning.provision_into``) that
the fleet signs in with. Test keys only: anyone with the seed has every TMK.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from hsm_sim.keys import fix_parity

DEFAULT_SEED = "switchsim-fleet"
DEFAULT_MERCHANT_PREFIX = "8481000"
DEFAULT_FIRST_TERMINAL = 1
TERMINALS_PER_MERCHANT = 10


def derive_tmk(seed: str, merchant: str, terminal: str) -> bytes:
    """The first 16 bytes of SHA-256 over ``seed|merchant|terminal``, odd parity fixed."""
    digest = hashlib.sha256(f"{seed}|{merchant}|{terminal}".encode()).digest()
    return fix_parity(digest[:16])


def fleet_ids(
    n: int,
    merchant_prefix: str = DEFAULT_MERCHANT_PREFIX,
    start: int = DEFAULT_FIRST_TERMINAL,
    per_merchant: int = TERMINALS_PER_MERCHANT,
) -> list[tuple[str, str]]:
    """``n`` (merchant, terminal) pairs: terminal ids ``start``, ``start + 1``, ... as 8 digits,
    ``per_merchant`` consecutive terminals under each 15-character merchant id."""
    if n < 0 or start < 0 or per_merchant < 1:
        raise ValueError("n and start must be >= 0 and per_merchant >= 1")
    width = 15 - len(merchant_prefix)
    if width < 1 or not merchant_prefix.isdigit():
        raise ValueError("merchant prefix must be 1 to 14 digits")
    if start + n - 1 > 99_999_999:
        raise ValueError("terminal ids run past 99999999")
    out = []
    for number in range(start, start + n):
        merchant_number = number // per_merchant
        if merchant_number >= 10**width:
            raise ValueError(f"merchant ids run past the {width} digits the prefix leaves")
        out.append((f"{merchant_prefix}{merchant_number:0{width}d}", f"{number:08d}"))
    return out


@dataclass(frozen=True, slots=True)
class PlannedTerminal:
    """One terminal of a provisioning plan; unpacks as (merchant, terminal, tmk)."""

    merchant: str
    terminal: str
    tmk: bytes = field(repr=False)

    def __iter__(self) -> Iterator[str | bytes]:
        return iter((self.merchant, self.terminal, self.tmk))


def provision_plan(
    n: int,
    seed: str = DEFAULT_SEED,
    merchant_prefix: str = DEFAULT_MERCHANT_PREFIX,
    start: int = DEFAULT_FIRST_TERMINAL,
) -> list[PlannedTerminal]:
    """What both sides need to agree on for ``n`` terminals."""
    return [
        PlannedTerminal(merchant, terminal, derive_tmk(seed, merchant, terminal))
        for merchant, terminal in fleet_ids(n, merchant_prefix, start)
    ]
