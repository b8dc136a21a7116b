"""The README's TLS command lines, run as written by bash (only the ports changed to free ones):
a test CA, a mutual-TLS HSM, the switch reaching it over TLS and serving mutual TLS itself, a
fleet and a conformance run over TLS. Then what the CLI refuses before it starts."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ports import free_port
from tests.switchsim.cli import REPO, env, one_error_line, run
from tests.tlscerts import make_pki

README = REPO / "README.md"


def tls_lines() -> list[str]:
    """The ```sh block of the README that starts with `switchsim tls make-test-ca`."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.DOTALL)
    [block] = [b for b in blocks if b.startswith("switchsim tls make-test-ca")]
    return [line for line in block.splitlines() if line.strip()]



def test_the_readme_tls_block_covers_every_command() -> None:
    lines = tls_lines()
    commands = [shlex.split(line, comments=True)[1] for line in lines]
    assert {"tls", "hsm", "serve", "fleet", "conformance"} <= set(commands)
    assert sum(line.rstrip().endswith("&") for line in lines) == 2  # the two servers


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_readme_tls_lines_run_as_written(tmp_path: Path) -> None:
    ports = {"1500": str(free_port()), "5800": str(free_port())}
    servers: list[tuple[str, subprocess.Popen[str]]] = []
    try:
        for line in tls_lines():
            for old, new in ports.items():
                line = line.replace(f":{old}", f":{new}").replace(f"--port {old}", f"--port {new}")
            assert line.startswith("switchsim ")
            background = line.rstrip().endswith("&")
            # exec: bash parses the line as a reader's shell would, then becomes the command
            script = f"exec {shlex.quote(sys.executable)} -m switchsim " + line.removeprefix("switchsim ").rstrip(" &")
            if background:
                proc = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, env=env(), text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                servers.append((line, proc))
                assert proc.stdout is not None
                first = proc.stdout.readline()
                assert "listening on" in first, f"{line}: {first!r}"
                continue
            done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env(), capture_output=True, text=True,
                                  timeout=120)
            assert done.returncode == 0, f"{line}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            if " hsm send " in f" {line}":
                assert "error code     00" in done.stdout
            if line.startswith("switchsim fleet --target"):
                assert "verdict" in done.stdout.lower()
    finally:
        for line, proc in reversed(servers):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            assert proc.returncode == 0, f"{line} exited {proc.returncode}"


def test_serve_with_a_missing_certificate_exits_2_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    result = run(["serve", "--db", str(tmp_path / "s.db"), "--port", "0", "--tls-cert", str(missing),
                  "--tls-key", str(missing)], tmp_path)
    assert result.returncode == 2
    assert one_error_line(result, "serve") == (
        f"switchsim serve: error: TLS certificate {missing}: No such file or directory"
    )
    assert not (tmp_path / "s.db").exists()  # refused before the store was made


def test_hsm_serve_with_a_key_that_is_no_key_exits_2_naming_it(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    result = run(["hsm", "serve", "--port", "0", "--tls-cert", str(pki.server_cert), "--tls-key",
                  str(pki.server_cert)], tmp_path)
    assert result.returncode == 2
    assert one_error_line(result, "hsm serve").endswith(f"TLS private key {pki.server_cert}: holds no usable PEM "
                                                         "private key")


def test_hsm_serve_refuses_udp_beside_tls(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    result = run(["hsm", "serve", "--port", "0", "--udp-port", "0", "--tls-cert", str(pki.server_cert),
                  "--tls-key", str(pki.server_key)], tmp_path)
    assert result.returncode == 2
    assert "UDP has no TLS" in one_error_line(result, "hsm serve")


def test_fleet_and_conformance_refuse_an_unreadable_ca_before_they_run(tmp_path: Path) -> None:
    unreadable = tmp_path / "ca.pem"
    unreadable.write_text("not a certificate\n")
    fleet = run(["fleet", "--target", "127.0.0.1:9", "--exchanges", "1", "--tls-ca", str(unreadable)], tmp_path)
    assert fleet.returncode == 2
    assert one_error_line(fleet, "fleet").endswith(f"TLS CA {unreadable}: holds no PEM certificate "
                                                   "(-----BEGIN CERTIFICATE-----)")
    conformance = run(["conformance", "--target", "127.0.0.1:9", "--merchant", "848100058126002", "--terminal",
                       "00000764", "--tmk", "11" * 16, "--tls-ca", str(unreadable)], tmp_path)
    assert conformance.returncode == 2
    assert f"TLS CA {unreadable}" in one_error_line(conformance, "conformance")


def test_a_tls_key_without_a_certificate_is_bad_usage(tmp_path: Path) -> None:
    result = run(["serve", "--db", str(tmp_path / "s.db"), "--tls-key", "k.pem"], tmp_path)
    assert result.returncode == 2
    assert one_error_line(result, "serve") == "switchsim serve: error: --tls-key needs --tls-cert"


def test_make_test_ca_output_chains_and_names_the_loopback(tmp_path: Path) -> None:
    # Checked by openssl, not by the code that wrote it.
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    result = run(["tls", "make-test-ca", str(tmp_path / "ca"), "--name", "switch.test"], tmp_path)
    assert result.returncode == 0, result.stderr
    d = tmp_path / "ca"
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(d / "ca.pem"), str(d / "server.pem"),
                             str(d / "client.pem")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    names = subprocess.run(["openssl", "x509", "-in", str(d / "server.pem"), "-noout", "-ext", "subjectAltName"],
                           capture_output=True, text=True).stdout
    assert "IP Address:127.0.0.1" in names and "DNS:localhost" in names and "DNS:switch.test" in names
    assert os.stat(d / "server.key").st_mode & 0o077 == 0  # keys are the owner's only
    again = run(["tls", "make-test-ca", str(d)], tmp_path)
    assert again.returncode == 2 and "exists (--force replaces it)" in one_error_line(again, "tls make-test-ca")
