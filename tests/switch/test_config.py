"""Switch config files: declarations load, mistakes name the file and the key, and the keys the
loader accepts are exactly those examples/switch.toml and the README document."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from hsm_sim.dispatcher import Dispatcher
from hsm_sim.transports.inproc import InProcTransport
from switch.app import build_services, register_terminal
from switch.cards import add_card
from switch.config import ACCEPTED_KEYS, ConfigError, load_config
from switch.rulefile import load_rules, parse_rules
from switch.sqlite_store import SqliteStore
from tests.switch.pos import MERCHANT, TERMINAL, TMK
from tests.switch.test_financial import EXPIRY, PAN, PIN, Till

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "switch.toml"
README = REPO / "README.md"

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
        ("[server]\nport = 70000", "server.port"),
        ("[server]\nport = -1", "server.port"),
        ("[server]\nmax_connections = 0", "server.max_connections"),
        ("[server]\nmax_pipeline = 0", "server.max_pipeline"),
        ("[server]\nidle_timeout = 0", "server.idle_timeout"),
        ("[server]\nframe_timeout = nan", "server.frame_timeout"),
        ("[server]\nacquirer_id = '12345678901x'", "server.acquirer_id"),
        ("[server]\nhost = ''", "server.host"),
        ("[session]\nmax_operator_failures = 0", "session.max_operator_failures"),
        ("[session]\nkey_lifetime = -5", "session.key_lifetime"),
        ("[session]\nunknown_reversal = '05'", "session.unknown_reversal"),
        ("[session]\nunknown_reversal = 25", "session.unknown_reversal"),
        ("server = 5", "server"),
        ("terminals = 5", "terminals"),
        ("[parameters]\n'1' = 'x'", "parameters.1"),
        ("[parameters]\n'11' = 5", "parameters.11"),
        (
            "[[terminals]]\nmerchant = '848100058126002'\nterminal = '00000764'\ntmk = '11'\ntmk_kcv = 'x'",
            "terminals[0].tmk_kcv",
        ),
        (
            "[[operators]]\nmerchant = '848100058126002'\nterminal = '00000764'\nid = '5'\npassword = '1234'",
            "operators[0].id",
        ),
        ("[[cards]]\npan = '6222021234567890123'\nexpiry = '3013'\npin = '1234'", "cards[0].expiry"),
        ("[[cards]]\npan = '6222021234567890123'\nexpiry = '3012'\npin = '1234'\nbalance = true", "cards[0].balance"),
        (
            "[[cards]]\npan = '6222021234567890123'\nexpiry = '3012'\npin = '1234'\nservice_code = '2'",
            "cards[0].service_code",
        ),
        ("[[cards]]\npan = '6222021234567890123'\nexpiry = '3012'\npin = '1234'\nbalence = 5", "cards[0].balence"),
        ("[[cards]]\npan = '6228000100001'\nexpiry = '3012'\npin = '1234'\nchip = true\nimk_ac = '12'",
         "cards[0].imk_ac"),
        ("[[cards]]\npan = '6228000100001'\nexpiry = '3012'\npin = '1234'\nimk_ac = '" + "1" * 32 + "'",
         "cards[0].imk_ac"),
        ("[[cards]]\npan = '6228000100001'\nexpiry = '3012'\npin = '1234'\nchip = true\npsn = '1'", "cards[0].psn"),
        ("[chip]\narqc_failure_code = '51'", "chip.arqc_failure_code"),
        ("[chip]\nannounce_downloads = 1", "chip.announce_downloads"),
        ("[chip]\ndownload_part_entries = -1", "chip.download_part_entries"),
        ("[[capk]]\nrid = 'A000000333'\nindex = '03'\nexponent = '03'\nmodulus = 'B0'\nchecksum = '" + "0" * 40
         + "'", "capk[0].checksum"),
        ("[[capk]]\nrid = 'A0000003'\nindex = '03'\nexponent = '03'\nmodulus = 'B0'\nchecksum = '00'", "capk[0]"),
        ("[[aid]]\naid = 'A000000333010101'\nfloor_limit = 'lots'", "aid[0].floor_limit"),
        ("[[aid]]\naid = 'A0'", "aid[0].aid"),
        ("[[aid]]\naid = 'A000000333010101'\ncolour = '01'", "aid[0].colour"),
        ("[[blacklist]]\npan = '62220x'", "blacklist[0].pan"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {where}:")):
        load_config(path)


def test_unknown_reversal_is_a_session_setting(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[session]\nunknown_reversal = "25"\n')
    assert load_config(path).unknown_reversal == "25"
    path.write_text("[session]\n")
    assert load_config(path).unknown_reversal == "00"  # the README's default


async def test_unknown_reversal_from_a_config_file_answers_the_unknown_original(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[session]\nunknown_reversal = "25"\n')
    services = build_services(load_config(path), SqliteStore(":memory:"), InProcTransport(Dispatcher()))
    await register_terminal(services, MERCHANT, TERMINAL, TMK)
    await add_card(services, PAN, EXPIRY, PIN, balance=100_000)
    till = Till(services)
    await till.open()
    ghost = till.fin("0400", "000000", "22", 100, f39="98", **till.card(pin=None))
    assert (await till.ask(ghost))[39] == "25"  # 25: original not found, as configured


def _example_keys() -> dict[str, set[str]]:
    data = tomllib.loads(EXAMPLE.read_text())
    keys: dict[str, set[str]] = {}
    for table, value in data.items():
        entries = value if isinstance(value, list) else [value]
        keys[table] = {key for entry in entries for key in entry}
    return keys


def test_the_example_config_loads_and_declares_one_of_each(tmp_path: Path) -> None:
    config = load_config(EXAMPLE)
    assert (config.port, config.dialect, config.unknown_reversal) == (5800, "cup-pos", "00")
    assert len(config.terminals) == len(config.operators) == len(config.cards) == len(config.rules) == 1
    assert config.cards[0].service_code == "201" and config.parameters == {"11": "SWITCHSIM TEST MERCHANT"}
    assert [rule.name for rule in parse_rules(list(config.rules)).rules] == ["unknown BIN 999999"]


def test_the_example_config_holds_every_key_the_loader_accepts() -> None:
    keys = _example_keys()
    for table, accepted in ACCEPTED_KEYS.items():
        assert keys.get(table) == set(accepted), table
    assert keys["rules"] == {"name", "match", "action"}
    assert set(keys) == set(ACCEPTED_KEYS) | {"parameters", "rules"}


def test_every_key_of_the_example_config_has_its_own_comment() -> None:
    previous = ""
    for number, line in enumerate(EXAMPLE.read_text().splitlines(), 1):
        if re.match(r'^"?\w+"? = ', line):
            assert previous.startswith("#") or " # " in line, f"{EXAMPLE.name}:{number}: {line!r} has no comment"
        if line.strip():
            previous = line


def _readme_keys() -> dict[str, set[str]]:
    """The key lists of the README's Configuration section: "- `[server]`: `host`, `port`, ..."."""
    keys: dict[str, set[str]] = {}
    for line in README.read_text().splitlines():
        found = re.match(r"^- `\[\[?(\w+)\]\]?`: (.*)$", line)
        if found:
            keys[found[1]] = set(re.findall(r"`(\w+)`", found[2]))
    return keys


def test_the_readme_documents_every_accepted_key_and_no_other() -> None:
    keys = _readme_keys()
    for table, accepted in ACCEPTED_KEYS.items():
        assert keys.get(table) == set(accepted), table
    assert keys["rules"] == {"name", "match", "action"}
    assert keys["parameters"] == set()  # tags, not keys


def test_every_table_key_the_docs_name_is_accepted() -> None:
    # Keys named in running text as `[table] key`, in the README and the docs folder.
    texts = [README.read_text(), *(p.read_text() for p in (REPO / "docs").glob("*.md"))]
    named = [(t, k) for text in texts for t, k in re.findall(r"`\[(\w+)\] (\w+)`", text)]
    assert ("session", "unknown_reversal") in named
    for table, key in named:
        assert key in ACCEPTED_KEYS[table], f"[{table}] {key}"


def test_the_example_rules_are_the_readme_rules() -> None:
    shipped = load_rules(REPO / "examples" / "rules.toml")
    block = README.read_text().split("### Response rules", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    assert shipped == parse_rules(tomllib.loads(block)["rules"])
    assert len(shipped) == 4
