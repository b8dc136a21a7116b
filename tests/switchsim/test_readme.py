"""The README's decode/encode examples, pasted into a shell as a reader would: each runs, exits 0
and the `decode --json | encode -` round trip gives back the frame it started from."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.switchsim.cli import REPO, env

README = REPO / "README.md"


def shell_lines() -> list[str]:
    """Every command line of the README's ```sh blocks that runs `switchsim decode` or `encode`."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.DOTALL)
    lines = [line for block in blocks for line in block.splitlines()]
    return [line for line in lines if re.match(r"switchsim (decode|encode)\b", line)]


LINES = shell_lines()


def test_the_readme_shows_decode_encode_and_the_round_trip() -> None:
    commands = [shlex.split(line, comments=True) for line in LINES]
    assert {c[1] for c in commands} == {"decode", "encode"}
    assert any("--json" in line and "| switchsim encode -" in line for line in LINES)
    for line in LINES:
        assert "..." not in line.split("#")[0], f"a placeholder is not a command: {line}"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("line", LINES, ids=[line[:40] for line in LINES])
def test_readme_line_runs_as_pasted(line: str, tmp_path: Path) -> None:
    # `switchsim` is the real command, run by this interpreter: the same as the installed script.
    prelude = f'switchsim() {{ {shlex.quote(sys.executable)} -m switchsim "$@"; }}\nset -o pipefail\n'
    done = subprocess.run(
        ["bash", "-c", prelude + line], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout.strip()
    if "| switchsim encode -" in line:
        frame = shlex.split(line)[3]
        assert done.stdout.strip() == frame
