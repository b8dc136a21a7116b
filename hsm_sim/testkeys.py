"""Test keys both sides of a run derive from a seed they share, so a load run needs no set-up.

Test keys only: whoever has the seed has every key. The fleet's terminal master keys are
``terminals_sim.provision.derive_tmk``; the chip test cards' issuer keys are here, where the
switch (which registers the cards) and the fleet (which plays them) both find them.
"""

from __future__ import annotations

import hashlib

from hsm_sim.keys import fix_parity

DEFAULT_SEED = "switchsim-fleet"


def derive_imk_ac(seed: str, pan: str) -> bytes:
    """A chip test card's IMK-AC: the first 16 bytes of SHA-256 over ``seed|imk-ac|PAN``, odd parity."""
    digest = hashlib.sha256(f"{seed}|imk-ac|{pan}".encode()).digest()
    return fix_parity(digest[:16])
