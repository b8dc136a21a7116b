"""``switchsim hsm``: serve in a real subprocess, send to it over TCP and UDP, usage errors."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hsm_sim.reference import render_reference
from switchsim.cli import main

REPO = Path(__file__).resolve().parents[2]
LMK_CHECK = "7B44AC1DDEE2A94B"  # NC on the public test LMK (derived in test_server.py)

def run(argv: list[str]) -> int:
    """The command as the `switchsim` script runs it: errors become a status and one line."""
    return main(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_send_inproc_prints_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["hsm", "send", "--to", "inproc", "NC"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "response code  ND"
    assert out[1] == "error code     00  No error"
    assert out[2].startswith(f"fields         {LMK_CHECK}")


def test_send_error_answer_names_the_code_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["hsm", "send", "--to", "inproc", "NCXX"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[:2] == ["response code  ND", "error code     15  Error in input data"]
    assert err == "switchsim hsm send: error: the HSM answered error code 15 (Error in input data)\n"


def test_serve_then_send_over_tcp_and_udp_then_sigterm(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchsim", "hsm", "serve", "--port", "0", "--udp-port", "0",
         "--header-length", "6", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        tcp_line = proc.stdout.readline()
        udp_line = proc.stdout.readline()
        tcp = re.fullmatch(r"HSM listening on (tcp://127\.0\.0\.1:\d+)\n", tcp_line)
        udp = re.fullmatch(r"HSM listening on (udp://127\.0\.0\.1:\d+)\n", udp_line)
        assert tcp and udp, (tcp_line, udp_line)
        for url in (tcp.group(1), udp.group(1)):
            assert run(["hsm", "send", "--to", url, "--header-length", "6", "NC"]) == 0
            out = capsys.readouterr().out.splitlines()
            assert out[1] == "error code     00  No error"
            assert out[2].startswith(f"fields         {LMK_CHECK}")
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=10)
        assert proc.returncode == 0, stderr
        assert stdout == "HSM stopped\n"
        assert "Traceback" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_on_a_taken_port_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run(["hsm", "serve", "--port", str(port)]) == 1
    assert f"cannot listen on 127.0.0.1 port {port}" in capsys.readouterr().err


def test_serve_with_missing_lmk_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["hsm", "serve", "--lmk", str(tmp_path / "none.toml")]) == 2
    assert "cannot read LMK file" in capsys.readouterr().err


def test_send_to_nothing_listening_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert run(["hsm", "send", "--to", f"tcp://127.0.0.1:{port}", "NC"]) == 1
    assert f"cannot connect to tcp://127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["hsm"], "choose an action"),
        (["hsm", "send", "--to", "ftp://x:1", "NC"], "bad HSM address"),
        (["hsm", "send", "--to", "inproc", "N"], "2-character command code"),
        (["hsm", "send", "--to", "inproc", "?!NC"], "letters and digits"),
        (["hsm", "send", "--to", "inproc", "NCé"], "ASCII"),
    ],
)
def test_bad_usage_exits_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["hsm", "serve", "--port", "70000"],
        ["hsm", "serve", "--header-length", "-1"],
        ["hsm", "send", "--header-length", "x", "NC"],
        ["hsm", "send", "--timeout", "0", "NC"],
        ["hsm", "send"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run(argv)
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_reference_prints_the_rendered_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["hsm", "reference"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip("\n") == render_reference().rstrip("\n")
    assert "NC" in out and "CA" in out
