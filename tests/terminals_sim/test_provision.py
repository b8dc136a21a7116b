"""Fleet identities and seed-derived TMKs."""

from __future__ import annotations

import pytest

from hsm_sim.keys import has_odd_parity
from terminals_sim.provision import derive_tmk, fleet_ids, provision_plan


def test_derive_tmk_is_sha256_prefix_with_odd_parity() -> None:
    # printf 'switchsim-fleet|848100000000000|00000001' | sha256sum
    #   -> f12b305a347f860353ac78674739617a de...; each even-parity byte then gets its low bit
    # flipped by hand: 2B->2A 30->31 5A->5B 03->02 53->52 AC->AD 78->79 47->46 39->38.
    tmk = derive_tmk("switchsim-fleet", "848100000000000", "00000001")
    assert tmk == bytes.fromhex("F12A315B347F860252AD79674638617A")
    assert has_odd_parity(tmk)


def test_derive_tmk_differs_per_terminal_and_per_seed() -> None:
    a = derive_tmk("s", "848100000000000", "00000001")
    assert a != derive_tmk("s", "848100000000000", "00000002")
    assert a != derive_tmk("t", "848100000000000", "00000001")


def test_fleet_ids_groups_terminals_under_merchants() -> None:
    assert fleet_ids(3, "8481000", start=9, per_merchant=10) == [
        ("848100000000000", "00000009"),
        ("848100000000001", "00000010"),
        ("848100000000001", "00000011"),
    ]


def test_fleet_ids_refuses_ids_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="99999999"):
        fleet_ids(2, start=99_999_999)
    with pytest.raises(ValueError, match="prefix"):
        fleet_ids(1, merchant_prefix="84810000000000012")


def test_provision_plan_unpacks_and_hides_the_tmk_in_repr() -> None:
    plan = provision_plan(2, seed="switchsim-fleet", merchant_prefix="8481000", start=1)
    merchant, terminal, tmk = plan[0]
    assert (merchant, terminal) == ("848100000000000", "00000001")
    assert tmk == bytes.fromhex("F12A315B347F860252AD79674638617A")
    assert "F12A" not in repr(plan[0]).upper() and "f12a" not in repr(plan[0])
