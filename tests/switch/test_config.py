"""Switch config files: declarations load, mistakes name the file and the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from switch.config import ConfigError, load_config

GOOD = """
[server]
port = 0
idle_timeout = 30

[session]
max_operator_failures = 5

[parameters]
"11" = "MERCHANT NAME"

[[terminals]]
merchant = "848100058126002"
terminal = "00000764"
tmk = "11111111111111111111111111111111"

[[operators]]
merchant = "848100058126002"
terminal = "00000764"
id = "02"
password = "2222"
"""


def test_config_declares_terminals_operators_and_limits(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(GOOD)
    config = load_config(path)
    assert config.port == 0 and config.idle_timeout == 30 and config.max_operator_failures == 5
    assert config.terminals[0].tmk == bytes.fromhex("11" * 16)
    assert config.operators[0].operator_id == "02"
    assert "2222" not in repr(config) and "1111" not in repr(config)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[server]\nport = 'x'", "server.port"),
        ("[server]\nspeed = 1", "server.speed"),
        ("[[terminals]]\nmerchant = '1'\nterminal = '00000764'\ntmk = '11'", "terminals[0].merchant"),
        ("[[terminals]]\nmerchant = '848100058126002'\nterminal = '00000764'\ntmk = 'z'", "terminals[0].tmk"),
        ("[colour]\nx = 1", "top level"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {where}:")):
        load_config(path)
