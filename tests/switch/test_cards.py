"""What a request says about its card: PAN and expiry from 2, 35 and 14, in BCD and ASCII dialects."""

from __future__ import annotations

import pytest

from specs.codec import codec_for
from specs.message import Message
from switch.cards import CardData, card_data

PAN = "6222021234567890123"


def _request(dialect: str, **fields: str) -> Message:
    base = {3: "000000", 4: "1000", 11: "1", 41: "00000764", 42: "848100058126002"}
    if dialect == "cup-pos":
        base.update({22: "021", 25: "00", 49: "156", 60: "22000001000"})
    base.update({int(k[1:]): v for k, v in fields.items()})
    return codec_for(dialect).message("0200", base)


@pytest.mark.parametrize(
    ("dialect", "separator"),
    [("cup-pos", "D"), ("iso87-binary", "="), ("iso87-binary", "D"), ("iso87-ascii", "="), ("iso87-ascii", "D")],
)
def test_card_data_reads_pan_and_expiry_from_track2(dialect: str, separator: str) -> None:
    data = card_data(_request(dialect, f35=PAN + separator + "30122011234"))
    assert isinstance(data, CardData) and (data.pan, data.expiry) == (PAN, "3012")
    assert card_data(_request(dialect, f35=PAN + separator + "30122011234", f2=PAN, f14="3012")) == data


@pytest.mark.parametrize("separator", ["=", "D"])
def test_card_data_refuses_a_track2_that_disagrees_with_2_or_14(separator: str) -> None:
    track = PAN + separator + "30122011234"
    assert card_data(_request("iso87-ascii", f35=track, f2="6222021234567890124")) == "14"
    assert card_data(_request("iso87-ascii", f35=track, f14="3112")) == "14"


@pytest.mark.parametrize("track", [PAN + "D3012=201", PAN + "==3012", PAN, "=30122011234", "1" * 20 + "D3012"])
def test_card_data_answers_30_for_what_is_not_track_data(track: str) -> None:
    assert card_data(_request("iso87-ascii", f35=track)) == "30"


def test_card_data_repr_masks_the_pan() -> None:
    data = card_data(_request("iso87-ascii", f35=PAN + "D30122011234"))
    assert repr(data) == "CardData(622202*********0123)"
