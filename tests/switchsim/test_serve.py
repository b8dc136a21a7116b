"""`switchsim serve` as a user starts it, in a child process: the rules it loads and answers by,
the line that says what it runs with, what it refuses before it starts, and its exit status."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.switch.pos import CODEC, Pos
from tests.switchsim.cli import EXAMPLES, Serving, one_error_line, run

RULES = EXAMPLES / "rules.toml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def purchase_answer(port: int, amount: str) -> str:
    """Field 39 of the switch's answer to a cup-pos purchase (0200, 3 = 000000) of `amount`."""
    pos = Pos()
    fields = {
        2: "6222021234567890123",
        3: "000000",
        4: amount,
        11: "000123",
        22: "021",
        25: "00",
        41: "00000001",  # a terminal no rule but the first names
        42: "848100058126002",
        49: "156",
        60: "22000001000",
    }
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(pos.wire(CODEC.message("0200", fields)))
        head = _read(conn, 2)
        wire = head + _read(conn, int.from_bytes(head, "big"))
    answer = pos.read(wire)
    assert answer.mti == "0210"
    return answer[39]


def _read(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        assert chunk, "the switch closed the connection"
        data += chunk
    return data


@pytest.mark.parametrize("option", ["--rules", "--config"])
def test_serve_answers_by_the_readme_rule_from_a_rules_file_or_a_config(tmp_path: Path, option: str) -> None:
    # examples/rules.toml holds only [[rules]], so it is a valid config file too: the same rule
    # must decide the same answer whichever way it is loaded.
    with Serving(["--db", str(tmp_path / "s.db"), "--port", "0", option, str(RULES)], tmp_path) as serving:
        assert purchase_answer(serving.port, "000000001251") == "51"  # 12.51 ends in 51
        assert purchase_answer(serving.port, "000000001250") != "51"  # no rule: handled normally
    assert serving.line.endswith(f"rules=4 (4 from {RULES})")


def test_startup_line_says_what_was_loaded(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    config = EXAMPLES / "switch.toml"
    argv = ["--config", str(config), "--rules", str(RULES), "--db", str(db), "--port", "0"]
    with Serving(argv, tmp_path) as serving:
        pass
    # examples/switch.toml declares one terminal, one card and one rule; rules.toml has four.
    assert serving.line == (
        f"switch listening on 127.0.0.1:{serving.port} dialect=cup-pos store={db} hsm=inproc config={config} "
        f"terminals=1 cards=1 rules=5 (1 from {config}, 4 from {RULES})"
    )
    assert serving.result is not None and serving.result.stdout.endswith("switch stopped\n")


def test_startup_line_without_config_or_rules(tmp_path: Path) -> None:
    with Serving(["--db", "s.db", "--port", "0", "--dialect", "iso87-binary"], tmp_path) as serving:
        pass
    assert serving.line.split()[4:] == [
        "dialect=iso87-binary",
        "store=s.db",
        "hsm=inproc",
        "config=-",
        "terminals=0",
        "cards=0",
        "rules=0",
    ]


def test_missing_rules_file_stops_startup_before_the_store_is_made(tmp_path: Path) -> None:
    missing = tmp_path / "none.toml"
    result = run(["serve", "--db", "s.db", "--port", "0", "--rules", str(missing)], tmp_path)
    assert result.returncode == 2
    assert one_error_line(result, "serve") == f"switchsim serve: error: {missing}: file: No such file or directory"
    assert not (tmp_path / "s.db").exists()


def test_invalid_rules_file_names_the_file_the_rule_and_the_key(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rules]]\nname = "ok"\nmatch = {}\naction = { close = true }\n\n'
        '[[rules]]\nname = "short id"\nmatch = { terminal = "0000076" }\naction = { respond = "05" }\n'
    )
    result = run(["serve", "--db", "s.db", "--port", "0", "--rules", str(rules)], tmp_path)
    assert result.returncode == 2
    assert one_error_line(result, "serve") == (
        f"switchsim serve: error: {rules}: rules[1] (short id).match.terminal: must be 8 characters, got 7"
    )


def test_rule_name_in_both_the_config_and_the_rules_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "switch.toml"
    config.write_text('[[rules]]\nname = "decline amounts ending in 51"\nmatch = {}\naction = { respond = "51" }\n')
    result = run(["serve", "--config", str(config), "--rules", str(RULES), "--port", "0"], tmp_path)
    assert result.returncode == 2
    line = one_error_line(result, "serve")
    assert f"{RULES}: rules[0].name: 'decline amounts ending in 51' is already in {config}" in line


def test_port_in_use_exits_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(["serve", "--db", "s.db", "--port", str(port)], tmp_path)
    assert result.returncode == 1
    line = one_error_line(result, "serve")
    assert line == f"switchsim serve: error: cannot listen on 127.0.0.1 port {port}: Address already in use"


def test_unreachable_hsm_exits_1(tmp_path: Path) -> None:
    url = f"tcp://127.0.0.1:{free_port()}"
    result = run(["serve", "--db", "s.db", "--port", "0", "--hsm", url], tmp_path)
    assert result.returncode == 1
    assert one_error_line(result, "serve").startswith(f"switchsim serve: error: HSM {url} is not usable: ")


@pytest.mark.parametrize(
    ("setup", "argv", "expected"),
    [
        ("", ["--port", "70000"], "argument --port: port must be 0 to 65535, got 70000"),
        ("[server]\nport = 70000\n", ["--config", "c.toml"], "c.toml: server.port: must be 0 to 65535, got 70000"),
        (
            "[server]\nmax_connections = 0\n",
            ["--config", "c.toml"],
            "c.toml: server.max_connections: must be at least 1",
        ),
        ("", ["--db", "missing/s.db"], "missing/s.db: folder missing does not exist"),
        ("", ["--db", "."], ".: is a directory, not a store file"),
        ("", ["--dialect", "nope"], "dialect: no such dialect"),
        ("", ["--hsm", "ftp://h:1"], "bad HSM address 'ftp://h:1'"),
        ("", ["--host", "999.1.1.1", "--port", "0"], "cannot listen on 999.1.1.1: "),
    ],
)
def test_serve_bad_configuration_exits_2_in_one_line(
    tmp_path: Path, setup: str, argv: list[str], expected: str
) -> None:
    if setup:
        (tmp_path / "c.toml").write_text(setup)
    result = run(["serve", *argv], tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in one_error_line(result, "serve")


LOG_RULES = """
[[rules]]
name = "approve amounts ending in 00"
match = { mti = "0200", amount_last_digits = "00" }
action = { respond = "00" }

[[rules]]
name = "decline amounts ending in 51"
match = { mti = "0200", amount_last_digits = "51" }
action = { respond = "51" }
"""


@pytest.mark.parametrize(
    ("options", "logged"),
    [
        ([], ["00", "51"]),  # the default: a line per exchange
        (["--log-exchanges", "off"], ["51"]),  # load runs: declines are still logged
        (["--log-exchanges", "on", "--log-level", "warning"], []),  # an exchange line is info
    ],
)
def test_log_exchanges_and_log_level_choose_the_exchange_lines(
    tmp_path: Path, options: list[str], logged: list[str]
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(LOG_RULES)
    argv = ["--db", str(tmp_path / "s.db"), "--port", "0", "--rules", str(rules), *options]
    with Serving(argv, tmp_path) as serving:
        assert purchase_answer(serving.port, "000000001200") == "00"
        assert purchase_answer(serving.port, "000000001251") == "51"
    assert serving.result is not None
    lines = [json.loads(line) for line in serving.result.stderr.splitlines() if line.startswith("{")]
    assert [line["response_code"] for line in lines if line["event"] == "exchange"] == logged
