"""The test-side helpers agree with the published vectors, so they can judge the switch."""

from __future__ import annotations

from tests.switch.independent import cv4


def test_cv4_matches_published_working_key_check_values() -> None:
    # the published working-key example (docs/cup-pos.md, "Field 62")
    assert cv4(bytes.fromhex("22" * 16)).hex().upper() == "00962B60"
    assert cv4(bytes.fromhex("33" * 8)).hex().upper() == "ADC67D84"
    assert cv4(bytes.fromhex("44" * 16)).hex().upper() == "E2F24340"
