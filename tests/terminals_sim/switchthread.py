"""The real switch (in-process HSM, a temporary SQLite store) on its own event loop in a thread,
for tests that run the CLI, which calls asyncio.run itself."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from specs.tls import ServerTls
from switch.app import RunningSwitch, serve_switch
from switch.config import DeclaredTerminal, SwitchConfig
from terminals_sim.provision import provision_plan


@contextmanager
def threaded_switch(tmp_path: Path, terminals: int, tls: ServerTls | None = None) -> Iterator[int]:
    """A switch that knows the first ``terminals`` of the fleet's default provisioning plan (over
    TLS with ``tls``); yields its port."""
    declared = tuple(DeclaredTerminal(p.merchant, p.terminal, p.tmk) for p in provision_plan(terminals))
    config = SwitchConfig(port=0, db=str(tmp_path / "switch.db"), hsm="inproc", terminals=declared, tls=tls)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, object] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            box["switch"] = loop.run_until_complete(serve_switch(config))
        except BaseException as exc:  # reported to the test below, not lost in the thread
            box["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()
        running = box["switch"]
        assert isinstance(running, RunningSwitch)
        loop.run_until_complete(running.close())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "the switch did not start"
    if "error" in box:
        raise AssertionError(f"the switch did not start: {box['error']!r}")
    try:
        running = box["switch"]
        assert isinstance(running, RunningSwitch)
        yield running.port
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(15)
