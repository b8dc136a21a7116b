"""The core's logger masks what is named like a secret, whoever configured logging."""

from __future__ import annotations

import io
import json

from specs.logs import get_logger, mask_secrets
from switchsim import logs


def test_mask_secrets_replaces_secret_keys_whatever_their_case_and_keeps_the_rest() -> None:
    event = {"event": "x", "PIN": "1234", "tmk": "11" * 16, "Pan": "6222021234567890123", "stan": "000123"}
    assert mask_secrets(None, "info", event) == {
        "event": "x",
        "PIN": "***",
        "tmk": "***",
        "Pan": "***",
        "stan": "000123",
    }


def test_a_core_logger_writes_masked_json_once_the_cli_configured_logging() -> None:
    out = io.StringIO()
    logs.configure("info", out)
    get_logger("switch").info("exchange", password="0000", pin_block="041234FFFFFFFFFF", terminal="00000764")
    line = json.loads(out.getvalue())
    assert (line["password"], line["pin_block"], line["terminal"]) == ("***", "***", "00000764")
    assert "0000" not in out.getvalue().replace("00000764", "")
