"""Every catalogue kind has one handler, and the session table agrees with what each needs."""

from __future__ import annotations

import pytest

from specs import catalogue_loader as catalogue
from specs.catalogue import Needs
from specs.codec import codec_for
from switch.routes import ROUTES, classify
from switch.session import Refusal, Request, State, transition


def test_every_kind_of_every_catalogue_has_a_route_and_every_route_a_kind() -> None:
    kinds = {(c, k) for c in catalogue.available() for k in catalogue.load(c).kinds}
    assert kinds == set(ROUTES)


@pytest.mark.parametrize("key", sorted(ROUTES))
def test_the_session_table_refuses_exactly_what_the_catalogue_says_a_kind_needs(key: tuple[str, str]) -> None:
    kind = catalogue.load(key[0]).kind(key[1])
    request = ROUTES[key].request
    refused_signed_off = isinstance(transition(State.SIGNED_OFF, request), Refusal)
    refused_signed_in = isinstance(transition(State.SIGNED_IN, request), Refusal)
    assert refused_signed_off == (kind.needs is not Needs.NOTHING)
    # The supervisor is checked by switch.routes.run, not by the table.
    assert refused_signed_in == (kind.needs is Needs.OPERATOR)
    assert not isinstance(transition(State.OPERATOR_SIGNED_IN, request), Refusal)


def test_classify_routes_on_mti_and_60_3() -> None:
    codec = codec_for("cup-pos")
    base = {11: "000001", 41: "00000764", 42: "848100058126002"}
    found = classify(codec.message("0800", {**base, 60: "00000001011"}))
    assert found is not None and found[1].request is Request.OPERATOR_SIGNIN
    found = classify(codec.message("0820", {**base, 60: "00000001301"}))
    assert found is not None and found[0].name == "echo" and found[1].request is Request.ECHO
    assert classify(codec.message("0800", {**base, 60: "00000001399"})) is None


def test_iso87_kinds_follow_the_echo_rule_no_session() -> None:
    iso = codec_for("iso87-binary")
    found = classify(iso.message("0100", {3: "000000", 4: "000000000100", 11: "000001"}))
    assert found is not None and found[0].name == "authorisation" and found[1].request is Request.ECHO


def test_the_switch_echoes_every_field_a_kind_says_its_answer_must_give_back() -> None:
    from switch.engine import _ECHOED

    for key in ROUTES:
        kind = catalogue.load(key[0]).kind(key[1])
        assert {int(item.partition(".")[0]) for item in kind.echo} <= set(_ECHOED), key
