"""A real PostgreSQL server for the tests, started by the suite itself.

`pg_server` (session scope) runs `initdb` into a temporary directory and `pg_ctl start` on a
free port, listening on 127.0.0.1 only with its Unix socket in that directory, trust
authentication for the local test user, fsync on (the store's durability is what is tested),
and a small footprint (the machine is shared). It is stopped when the session ends, whether the
tests passed or not. initdb and the server refuse to run as root, so as root they run as the
unprivileged `nobody` (with `runuser`), which owns the directory.

Where no PostgreSQL binaries are found (`pg_config --bindir`, /usr/lib/postgresql/*/bin, PATH)
every test that uses the fixture is skipped, saying so.

`pg_url` (per test) is a fresh, empty database on that server, dropped after the test.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

_USER = "switchsim"  # the superuser initdb makes; trust auth, so no password
_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "shared_buffers": "16MB",
    "max_connections": "60",
    "fsync": "on",
    "synchronous_commit": "on",
    "max_wal_size": "128MB",
    "log_min_messages": "warning",
    "dynamic_shared_memory_type": "posix",
}


def find_bindir() -> Path | None:
    """Where initdb and pg_ctl are, or None."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for where in candidates:
        if (where / "initdb").is_file() and (where / "pg_ctl").is_file():
            return where
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    bindir: Path
    root: Path  # the temporary directory: data/, socket/, server.log
    port: int = 0
    running: bool = False

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{_USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = list(args)
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "nobody", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=self.root, check=False)

    def start(self) -> None:
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for where in (self.root, self.socket_dir):
                os.chown(where, nobody.pw_uid, nobody.pw_gid)
        # --no-sync: the cluster's initial files need not survive a crash of this machine
        init = self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", _USER, "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}): {init.stderr.strip() or init.stdout.strip()}")
        last = ""
        for _ in range(3):  # a free port can be taken between the probe and the start
            self.port = _free_port()
            settings = [f"-c {k}={v}" for k, v in _SETTINGS.items()]
            options = " ".join([f"-p {self.port}", f"-k {self.socket_dir}", *settings])
            ctl = self._run(
                str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                "-o", options, "start",
            )  # fmt: skip
            if ctl.returncode == 0:
                self.running = True
                return
            last = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ctl.stderr
        raise RuntimeError(f"pg_ctl start failed three times; server log ends:\n{last}")

    def stop(self) -> None:
        if self.running:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
            self.running = False
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    server = PgServer(bindir, Path(tempfile.mkdtemp(prefix="switchsim-pg-")))
    atexit.register(server.stop)  # also when the session is cut short
    try:
        server.start()
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)


_numbers = itertools.count(1)


async def create_database(server: PgServer, template: str = "template0", name: str = "") -> str:
    """A fresh database on ``server``, a copy of ``template`` (by default empty); its URL."""
    name = name or f"t{os.getpid()}_{next(_numbers)}"
    admin = await asyncpg.connect(server.url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    return server.url(name)


async def drop_database(server: PgServer, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(server.url())
    try:  # FORCE: a store a failed test left open must not keep the database
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pg_url(pg_server: PgServer) -> AsyncIterator[str]:
    url = await create_database(pg_server)
    yield url
    await drop_database(pg_server, url)
