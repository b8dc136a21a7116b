"""Every subcommand with bad values, in a child process as a user runs it: the exit status by
the README's rule (0 ok, 1 the run failed, 2 bad usage or configuration), exactly one stderr
line `switchsim <command>: error: ...` naming what was wrong, and never a traceback. A mistyped
option shows the usage of its own subcommand."""

from __future__ import annotations

import io
import shutil
import socket
import sys
import tomllib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from switchsim.cli import main
from tests.switchsim.cli import REPO, Result, one_error_line, run

IDS = ["--merchant", "848100058126002", "--terminal", "00000764"]
TMK = "11111111111111111111111111111111"
PAN = "6222021234567890123"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CLOSED = _closed_port()


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    status: int
    command: str  # the subcommand the error line is prefixed with
    expect: str  # a part of the error line
    stdin: bytes | None = None
    child: bool = False  # also run in a child process (each costs an interpreter start-up)


def case(command: str, status: int, expect: str, *argv: str, stdin: bytes | None = None) -> Case:
    """A case; a command written "*serve" also runs as a child process."""
    return Case(tuple(argv), status, command.lstrip("*"), expect, stdin, command.startswith("*"))


CASES = [
    # serve, the switch (more in test_serve.py)
    case("*serve", 2, "argument --port: port must be 0 to 65535, got 70000", "serve", "--port", "70000"),
    case("serve", 2, "argument --port: not a port number: 'x'", "serve", "--port", "x"),
    case("*serve", 2, "bad.toml: file: not valid TOML", "serve", "--config", "bad.toml"),
    case(
        "serve",
        2,
        "unknown.toml: session.unknown_reversal: must be '00' or '25', got '05'",
        "serve",
        "--config",
        "unknown.toml",
    ),
    # terminals
    case(
        "terminal add",
        2,
        "argument --terminal: a terminal id (field 41) is 8 printable characters, got 7",
        "terminal",
        "add",
        "--db",
        "new.db",
        "--merchant",
        "848100058126002",
        "--terminal",
        "0000076",
        "--tmk",
        TMK,
    ),
    case(
        "terminal add",
        2,
        "argument --tmk: must be hexadecimal",
        "terminal",
        "add",
        "--db",
        "new.db",
        *IDS,
        "--tmk",
        "XYZ",
    ),
    case(
        "*terminal add",
        1,
        f"cannot connect to tcp://127.0.0.1:{CLOSED}",
        "terminal",
        "add",
        "--db",
        "new.db",
        *IDS,
        "--tmk",
        TMK,
        "--hsm",
        f"tcp://127.0.0.1:{CLOSED}",
    ),
    case(
        "terminal add",
        2,
        "bad HSM address 'nohsm'",
        "terminal",
        "add",
        "--db",
        "new.db",
        *IDS,
        "--tmk",
        TMK,
        "--hsm",
        "nohsm",
    ),
    case("terminal list", 2, "missing/s.db: folder missing does not exist", "terminal", "list", "--db", "missing/s.db"),
    case("terminal list", 2, ".: is a directory, not a store file", "terminal", "list", "--db", "."),
    case(
        "*terminal list",
        2,
        "garbage.db: not a switchsim store (file is not a database)",
        "terminal",
        "list",
        "--db",
        "garbage.db",
    ),
    case("*terminal list", 2, "none.db: no store here", "terminal", "list", "--db", "none.db"),
    case("terminal disable", 2, "none.db: no store here", "terminal", "disable", "--db", "none.db", *IDS),
    case(
        "terminal disable",
        2,
        "no terminal 848100058126002/00000001",
        "terminal",
        "disable",
        "--db",
        "s.db",
        "--merchant",
        "848100058126002",
        "--terminal",
        "00000001",
    ),
    # operators
    case("operator list", 2, "none.db: no store here", "operator", "list", "--db", "none.db", *IDS),
    case(
        "*operator list",
        2,
        "no terminal 848100058126002/00000001",
        "operator",
        "list",
        "--db",
        "s.db",
        "--merchant",
        "848100058126002",
        "--terminal",
        "00000001",
    ),
    case(
        "operator add",
        2,
        "argument --id: an operator id is two digits, got '5'",
        "operator",
        "add",
        "--db",
        "s.db",
        *IDS,
        "--id",
        "5",
        "--password",
        "1234",
    ),
    case(
        "operator add",
        2,
        "argument --password: a password is 4 to 12 digits, got 2 characters",
        "operator",
        "add",
        "--db",
        "s.db",
        *IDS,
        "--id",
        "05",
        "--password",
        "12",
    ),
    case(
        "operator unlock",
        2,
        "no operator 42 on terminal 848100058126002/00000764",
        "operator",
        "unlock",
        "--db",
        "s.db",
        *IDS,
        "--id",
        "42",
    ),
    # cards
    case("card list", 2, "none.db: no store here", "card", "list", "--db", "none.db"),
    case(
        "*card add",
        2,
        "argument --pan: a PAN is 12 to 19 digits, got 1 characters",
        "card",
        "add",
        "--db",
        "new.db",
        "--pan",
        "1",
        "--expiry",
        "3012",
        "--pin",
        "1234",
    ),
    case(
        "*card add",
        2,
        "card expiry must be YYMM (month 01 to 12)",
        "card",
        "add",
        "--db",
        "new.db",
        "--pan",
        PAN,
        "--expiry",
        "3013",
        "--pin",
        "1234",
    ),
    case(
        "card add",
        2,
        "argument --balance: must be 0 to 999999999999 minor units, got -1",
        "card",
        "add",
        "--db",
        "new.db",
        "--pan",
        PAN,
        "--expiry",
        "3012",
        "--pin",
        "1234",
        "--balance",
        "-1",
    ),
    case(
        "card add",
        2,
        "argument --balance: must be 0 to 999999999999 minor units",
        "card",
        "add",
        "--db",
        "new.db",
        "--pan",
        PAN,
        "--expiry",
        "3012",
        "--pin",
        "1234",
        "--balance",
        "9" * 30,
    ),
    case(
        "card add",
        2,
        "argument --service-code: a service code is 3 digits, got 'abcd'",
        "card",
        "add",
        "--db",
        "new.db",
        "--pan",
        PAN,
        "--expiry",
        "3012",
        "--pin",
        "1234",
        "--service-code",
        "abcd",
    ),
    # audit and trace
    case("audit", 2, "none.db: no store here", "audit", "--db", "none.db"),
    case(
        "*audit", 2, "argument --since: not an ISO time: 'yesterday'", "audit", "--db", "s.db", "--since", "yesterday"
    ),
    case(
        "audit", 2, "argument --since: not an ISO time", "audit", "--db", "s.db", "--since", "2026-01-01T00:00:00+99:00"
    ),
    case("trace", 2, "none.db: no store here", "trace", "--db", "none.db", "--terminal", "00000764"),
    case(
        "trace",
        2,
        "argument --last: must be at least 1, got 0",
        "trace",
        "--db",
        "s.db",
        "--terminal",
        "00000764",
        "--last",
        "0",
    ),
    # the wire layer
    case("decode", 2, "input is not hexadecimal", "decode", "zz"),
    case("decode", 2, "dialect: no such dialect", "decode", "--dialect", "nope", "00"),
    case("*decode", 2, "standard input is not UTF-8 text", "decode", "-", stdin=b"\xff\xfe"),
    case("*encode", 2, "input is not JSON", "encode", "{"),
    case("encode", 2, "'fields' must be an object", "encode", '{"mti": "0800", "fields": []}'),
    case("specs show", 2, "dialect: no such dialect", "specs", "show", "nope"),
    # the HSM
    case("hsm serve", 2, "argument --port: port must be 0 to 65535, got 70000", "hsm", "serve", "--port", "70000"),
    case("hsm serve", 2, "cannot read LMK file", "hsm", "serve", "--lmk", "none.toml"),
    case(
        "hsm send",
        2,
        "argument --timeout: must be a positive number, got nan",
        "hsm",
        "send",
        "--to",
        "inproc",
        "--timeout",
        "nan",
        "NC",
    ),
    case(
        "*hsm send",
        1,
        f"cannot connect to tcp://127.0.0.1:{CLOSED}",
        "hsm",
        "send",
        "--to",
        f"tcp://127.0.0.1:{CLOSED}",
        "NC",
    ),
    case(
        "*hsm send", 1, "the HSM answered error code 15 (Error in input data)", "hsm", "send", "--to", "inproc", "NCXX"
    ),
    # fleet, conformance, demo
    case("fleet", 2, "--target must be HOST:PORT, got 'nohost'", "fleet", "--target", "nohost"),
    case("fleet", 2, "argument --terminals: must be at least 1, got 0", "fleet", "--terminals", "0"),
    case(
        "fleet",
        2,
        "argument --first-terminal: must be 0 or more, got -1",
        "fleet",
        "--target",
        "127.0.0.1:9",
        "--first-terminal",
        "-1",
    ),
    case(
        "fleet",
        2,
        "argument --merchant-prefix: a merchant prefix is 1 to 14 digits, got 'x'",
        "fleet",
        "--target",
        "127.0.0.1:9",
        "--merchant-prefix",
        "x",
    ),
    case(
        "*fleet",
        2,
        "--report garbage.db/run.json: cannot make its folder",
        "fleet",
        "--target",
        "127.0.0.1:9",
        "--report",
        "garbage.db/run.json",
    ),
    case("fleet", 2, "missing/s.db: folder missing does not exist", "fleet", "--provision", "--db", "missing/s.db"),
    case("fleet", 2, "scenario: no such file or built-in", "fleet", "--target", "127.0.0.1:9", "--scenario", "nope"),
    case(
        "*conformance",
        2,
        "argument --merchant: a merchant id (field 42) is 15 printable characters, got 1",
        "conformance",
        "--target",
        "127.0.0.1:9",
        "--merchant",
        "1",
        "--terminal",
        "00000764",
        "--tmk",
        TMK,
    ),
    case(
        "conformance",
        2,
        "--junit .: is a directory",
        "conformance",
        "--target",
        "127.0.0.1:9",
        *IDS,
        "--tmk",
        TMK,
        "--junit",
        ".",
    ),
    case("*demo", 2, "argument --terminals: must be at least 1, got 0", "demo", "--terminals", "0"),
    case("demo", 2, "argument --duration: not a duration: 'soon'", "demo", "--duration", "soon"),
]

USAGE_CASES = [
    # (argv, the subcommand whose usage is shown, the last line's reason, run as a child too)
    (("serve", "--prot", "5800"), "serve", "unrecognized arguments: --prot 5800", True),
    (("terminal", "add", *IDS, "--tmk", TMK, "--bogus"), "terminal add", "unrecognized arguments: --bogus", True),
    (("hsm", "send", "--verbose", "NC"), "hsm send", "unrecognized arguments: --verbose", False),
    (("operator", "lst"), "operator", "argument ACTION: invalid choice: 'lst'", False),
    (("trace", "--db", "s.db", "--lst", "5"), "trace", "unrecognized arguments: --lst 5", False),
    (("serv",), "", "argument COMMAND: invalid choice: 'serv'", False),
    ((), "", "choose a command", True),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a store holding one terminal, a file that is not a store, bad config files."""
    work = tmp_path_factory.mktemp("cli")
    (work / "garbage.db").write_text("not a database\n")
    (work / "bad.toml").write_text("[server\n")
    (work / "unknown.toml").write_text('[session]\nunknown_reversal = "05"\n')
    added = run(["terminal", "add", "--db", "s.db", *IDS, "--tmk", TMK], work)
    assert added.returncode == 0, added.stderr
    return work


@pytest.fixture(scope="module")
def children(workdir: Path) -> dict[tuple[str, ...], Result]:
    """The cases marked to run as child processes, a few at a time (each pays the interpreter's
    start-up), run once for the module."""
    argvs = [(c.argv, c.stdin) for c in CASES if c.child] + [(u[0], None) for u in USAGE_CASES if u[3]]
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(lambda a: run(a[0], workdir, stdin=a[1], timeout=100), argvs))
    return {r.argv: r for r in done}


def in_process(
    argv: Sequence[str],
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stdin: bytes | None = None,
) -> Result:
    """`main(argv)` as the `switchsim` script calls it, with what it wrote; an exception
    escaping it fails the test, as a traceback would reach the user."""
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8"))
    capsys.readouterr()
    try:
        status = main(list(argv))
    except SystemExit as exc:  # argparse's own exit, as the script would exit
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return Result(tuple(argv), status, out, err)


@pytest.mark.parametrize("c", CASES, ids=[" ".join(c.argv)[:60] for c in CASES])
def test_bad_input_exits_by_the_rule_with_one_line(
    c: Case, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = in_process(c.argv, workdir, monkeypatch, capsys, c.stdin)
    assert result.returncode == c.status, result.stderr
    assert c.expect in one_error_line(result, c.command)


@pytest.mark.parametrize("c", [c for c in CASES if c.child], ids=[" ".join(c.argv)[:60] for c in CASES if c.child])
def test_bad_input_in_a_child_process(c: Case, children: dict[tuple[str, ...], Result]) -> None:
    result = children[c.argv]
    assert result.returncode == c.status, result.stderr
    assert c.expect in one_error_line(result, c.command)


def test_secrets_in_bad_values_are_not_echoed(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, secret in [
        (["operator", "add", "--db", "s.db", *IDS, "--id", "05", "--password", "12345678901234"], "12345678901234"),
        (
            ["card", "add", "--db", "new.db", "--pan", "62220212345678901234", "--expiry", "3012", "--pin", "1234"],
            "62220212345678901234",
        ),
        (["card", "add", "--db", "new.db", "--pan", PAN, "--expiry", "3012", "--pin", "123"], "--pin 123"),
    ]:
        result = in_process(argv, workdir, monkeypatch, capsys)
        assert result.returncode == 2 and secret.split()[-1] not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("argv", "command", "reason", "child"), USAGE_CASES, ids=[" ".join(u[0]) or "-" for u in USAGE_CASES]
)
def test_mistyped_option_shows_its_own_subcommands_usage(
    argv: tuple[str, ...],
    command: str,
    reason: str,
    child: bool,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    children: dict[tuple[str, ...], Result],
) -> None:
    results = [in_process(argv, workdir, monkeypatch, capsys)] + ([children[argv]] if child else [])
    prog = f"switchsim {command}".strip()
    for result in results:
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith(f"usage: {prog} "), result.stderr
        assert result.stderr.splitlines()[-1].startswith(f"{prog}: error: {reason}")


def test_read_only_commands_never_create_a_store(
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    children: dict[tuple[str, ...], Result],
) -> None:
    for c in CASES:
        if "none.db" in c.argv or "missing/s.db" in c.argv:
            in_process(c.argv, workdir, monkeypatch, capsys)
    assert not (workdir / "none.db").exists()
    assert not (workdir / "missing").exists()


def test_hsm_send_prints_the_error_answer_and_exits_1(children: dict[tuple[str, ...], Result]) -> None:
    result = children[("hsm", "send", "--to", "inproc", "NCXX")]
    assert result.returncode == 1
    assert result.stdout.splitlines()[:2] == ["response code  ND", "error code     15  Error in input data"]


def test_version_is_the_packages(tmp_path: Path) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    result = run(["--version"], tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"switchsim {version}\n", "")


def test_operator_unlock_says_unlocked(workdir: Path) -> None:
    result = run(["operator", "unlock", "--db", "s.db", *IDS, "--id", "01"], workdir)
    assert (result.returncode, result.stdout) == (0, "operator 01 on 848100058126002/00000764: unlocked\n")


def test_read_only_commands_read_an_existing_store(workdir: Path) -> None:
    listed = run(["operator", "list", "--db", "s.db", *IDS], workdir)
    assert listed.returncode == 0 and "supervisor" in listed.stdout
    audit = run(["audit", "--db", "s.db", "--json", "--terminal", "00000764"], workdir)
    assert audit.returncode == 0 and '"event": "terminal_registered"' in audit.stdout


@pytest.mark.parametrize("keep", [True, False])
def test_demo_removes_its_folder_unless_keep(tmp_path: Path, keep: bool) -> None:
    argv = ["demo", "--terminals", "2", "--duration", "1s", *(["--keep"] if keep else [])]
    result = run(argv, tmp_path, timeout=110)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("switchsim demo: working in ")
    work = Path(first.removeprefix("switchsim demo: working in "))
    try:
        assert work.is_dir() is keep
        if keep:
            assert {"switchsim.db", "report.json", "switch.log"} <= {p.name for p in work.iterdir()}
            assert f"kept {work}" in result.stdout
        else:
            assert f"removed {work} (--keep keeps it)" in result.stdout
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_demo_lives_a_terminals_day_and_explains_a_refusal(tmp_path: Path) -> None:
    result = run(["demo"], tmp_path, timeout=110)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    steps = [line for line in lines if " 39=" in line and line.startswith("  ") and "stan=" not in line]
    codes = [line.split(" 39=")[1].split()[0] for line in steps]
    assert codes == ["00"] * 7 + ["--"] + ["00"] * 4 + ["A0"], lines
    assert "the terminal did not load the keys of its last" in " ".join(lines)
    assert any(line.startswith("  switchsim trace --db ") and line.endswith(" --last 2") for line in lines)
    for line in lines:  # summary lines fit 80 columns; only a line holding a path may not
        assert len(line) <= 80 or "/tmp" in line or str(tmp_path) in line, line
