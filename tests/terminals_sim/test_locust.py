"""Locust drives the real switch: a headless master and two workers on 127.0.0.1 (real
processes, real sockets), 50 users for 10 s through the steady scenario. The master's stats CSV
must list every step kind of the scenario file with requests and no failure."""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

from specs.tls import ServerTls
from switch.records import AuditEvent
from switchsim.cli import main
from tests.storeread import read_store
from tests.terminals_sim.switchthread import threaded_switch
from tests.tlscerts import make_pki

USERS = 50
WORKERS = 2
SCENARIO = Path(__file__).resolve().parents[2] / "terminals_sim" / "scenarios" / "steady.toml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kinds_of(path: Path) -> set[str]:
    data = tomllib.loads(path.read_text())
    return {step["step"] for part in ("setup", "mix", "teardown") for step in data.get(part, [])}


def test_fleet_locustfile_prints_the_shipped_path(capsys: object) -> None:
    assert main(["fleet", "locustfile"]) == 0
    out = capsys.readouterr().out.strip()  # type: ignore[attr-defined]
    assert Path(out).name == "locustfile.py" and Path(out).is_file()
    assert Path(out).parent.name == "terminals_sim"


def test_master_and_two_workers_drive_the_switch_without_failure(tmp_path: Path, capsys: object) -> None:
    main(["fleet", "locustfile"])
    locustfile = capsys.readouterr().out.strip()  # type: ignore[attr-defined]
    locust = [sys.executable, "-m", "locust", "-f", locustfile]
    per_worker = USERS // WORKERS
    bind = _free_port()
    with threaded_switch(tmp_path, USERS) as port:
        master = subprocess.Popen(
            [*locust, "--headless", "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(bind),
             "--expect-workers", str(WORKERS), "-u", str(USERS), "-r", str(USERS), "-t", "10s",
             "--csv", str(tmp_path / "run"), "--host", f"127.0.0.1:{port}", "--scenario", "steady",
             "--terminals-per-worker", str(per_worker)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
        workers = [
            subprocess.Popen([*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(bind)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
            for _ in range(WORKERS)
        ]
        try:
            log, _ = master.communicate(timeout=90)
        finally:
            for w in workers:
                try:
                    w.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    w.kill()
                    w.communicate()
    assert master.returncode == 0, log
    with (tmp_path / "run_stats.csv").open() as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    expected = _kinds_of(SCENARIO)
    assert expected == {"signin", "operator_signin", "echo", "param_download", "status_upload", "signoff"}
    assert set(rows) - {"Aggregated"} == expected
    for kind in expected:
        assert rows[kind]["Type"] == "cup-pos"
        assert int(rows[kind]["Request Count"]) > 0, kind
        assert int(rows[kind]["Failure Count"]) == 0, (kind, log[-3000:])
    # Every user signed its own terminal in once: the switch saw 50 distinct terminals sign in,
    # each once, so no two users shared one.
    assert int(rows["signin"]["Request Count"]) == USERS
    audit = read_store(tmp_path / "switch.db", lambda store: store.list_audit())
    signins = Counter(r.terminal for r in audit if r.event is AuditEvent.TERMINAL_SIGNIN and r.result == "00")
    assert len(signins) == USERS and set(signins.values()) == {1}
    assert int(rows["signoff"]["Request Count"]) == USERS
    assert int(rows["Aggregated"]["Failure Count"]) == 0


def test_locust_users_sign_in_and_sell_over_mutual_tls(tmp_path: Path, capsys: object) -> None:
    # One process (no master), 4 users through the steady scenario against a switch that asks
    # for a client certificate: every user's terminal signs in once, over TLS, with no failure.
    pki = make_pki(tmp_path)
    main(["fleet", "locustfile"])
    locustfile = capsys.readouterr().out.strip()  # type: ignore[attr-defined]
    users = 4
    server = ServerTls(cert=str(pki.server_cert), key=str(pki.server_key), client_ca=str(pki.ca))
    with threaded_switch(tmp_path, users, tls=server) as port:
        run = subprocess.run(
            [sys.executable, "-m", "locust", "-f", locustfile, "--headless", "-u", str(users), "-r", str(users),
             "-t", "4s", "--csv", str(tmp_path / "run"), "--host", f"127.0.0.1:{port}", "--scenario", "steady",
             "--terminals-per-worker", str(users), "--host-tls", "--host-tls-ca", str(pki.ca),
             "--host-tls-cert", str(pki.client_cert), "--host-tls-key", str(pki.client_key)],
            capture_output=True, text=True, cwd=tmp_path, timeout=90)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with (tmp_path / "run_stats.csv").open() as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    assert int(rows["signin"]["Request Count"]) == users
    assert int(rows["Aggregated"]["Failure Count"]) == 0, run.stderr[-3000:]
    assert int(rows["echo"]["Request Count"]) > 0


def test_locust_without_tls_names_its_refusal_by_a_tls_switch(tmp_path: Path, capsys: object) -> None:
    # The client that does not trust the switch's CA fails every exchange with the TLS reason.
    pki = make_pki(tmp_path)
    main(["fleet", "locustfile"])
    locustfile = capsys.readouterr().out.strip()  # type: ignore[attr-defined]
    server = ServerTls(cert=str(pki.server_cert), key=str(pki.server_key))
    with threaded_switch(tmp_path, 1, tls=server) as port:
        run = subprocess.run(
            [sys.executable, "-m", "locust", "-f", locustfile, "--headless", "-u", "1", "-r", "1", "-t", "2s",
             "--csv", str(tmp_path / "run"), "--host", f"127.0.0.1:{port}", "--scenario", "steady",
             "--terminals-per-worker", "1", "--host-tls", "--host-tls-ca", str(pki.stranger_cert)],
            capture_output=True, text=True, cwd=tmp_path, timeout=90)
    with (tmp_path / "run_failures.csv").open() as f:
        failures = list(csv.DictReader(f))
    assert failures and all("TLS handshake failed: certificate verify failed" in r["Error"] for r in failures), (
        failures, run.stderr[-2000:])
