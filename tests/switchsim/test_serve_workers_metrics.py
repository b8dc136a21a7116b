"""`serve --workers 2 --metrics-port P`: one port serves the sum of both workers. After a known
run spread over both (the test's own count of what it sent and what each answered), one scrape
shows exactly those exchanges by kind and code, and a terminal served by both workers is signed
in once (then not, after its sign-off on one of them); a worker killed with SIGKILL takes its open
connections out of the sum and leaves its counts in it."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.scrape import Samples, scrape, series, value
from tests.switchsim.cli import Serving
from tests.switchsim.workerwire import Till, cup_config, purchase, worker_pids

EXCHANGES = "switchsim_switch_exchanges_total"
SIGNED_IN = "switchsim_switch_terminals_signed_in"


async def scrape_until(url: str, check: Callable[[Samples], bool], timeout: float = 30) -> Samples:
    """A scrape once ``check(samples)`` holds: each worker syncs its counts once a second."""
    deadline = time.monotonic() + timeout
    while True:
        samples = await asyncio.to_thread(scrape, url)
        if check(samples):
            return samples
        shown = {k: v for k, v in samples.items() if "connections" in k[0] or k[0] in (EXCHANGES, SIGNED_IN)}
        assert time.monotonic() < deadline, f"the scrape never settled: {shown}"
        await asyncio.sleep(0.1)


async def test_one_scrape_sums_both_workers_by_kind_and_code(tmp_path: Path) -> None:
    config = cup_config(tmp_path, tmp_path / "switch.db")
    argv = ["--config", str(config), "--port", "0", "--workers", "2", "--metrics-port", "0"]
    with Serving(argv, tmp_path) as serving:
        pids = worker_pids(serving, 2)
        till = Till(serving.port)
        await till.sign_in("1")
        await till.on("2", "purchase", purchase(till.pos), mac=True)
        await till.on("1", "purchase", purchase(till.pos, pin="654321"), mac=True)
        await till.on("2", "purchase", purchase(till.pos, pin="654321"), mac=True)
        await till.on("2", "echo", till.pos.message("0820", "301"))
        # Signed in on worker 1, served by worker 2 as well: one terminal signed in, not two.
        await scrape_until(serving.metrics_url, lambda s: value(s, SIGNED_IN) == 1)
        await till.on("1", "signoff", till.pos.message("0820", "002"))
        sent = Counter((kind, code) for kind, code, _ in till.exchanges)
        assert {worker for *_, worker in till.exchanges} == {"1", "2"}
        assert sent[("purchase", "00")] == 1 and sent[("purchase", "55")] == 2 and sent[("echo", "97")] >= 2
        samples = await scrape_until(serving.metrics_url, lambda s: (
            sum(series(s, EXCHANGES).values()) == len(till.exchanges)
            and value(s, "switchsim_switch_connections_open") == 0 and value(s, SIGNED_IN) == 0))
        assert series(samples, EXCHANGES) == {
            frozenset({("kind", kind), ("code", code)}): float(n) for (kind, code), n in sent.items()}
        assert value(samples, "switchsim_switch_connections_accepted_total") == till.connections
        # Every purchase, approved or declined, is one ledger commit (an unlabelled histogram).
        assert value(samples, "switchsim_switch_store_commit_seconds_count") == 3
        by_kind = Counter(kind for kind, _code, _worker in till.exchanges)
        for kind, n in by_kind.items():
            assert value(samples, "switchsim_switch_exchange_seconds_count", kind=kind) == n

        held = await till.lane("2")  # an open connection of worker 2
        await scrape_until(serving.metrics_url, lambda s: value(s, "switchsim_switch_connections_open") == 1)
        os.kill(pids[2], signal.SIGKILL)
        serving.wait_log(lambda e: any(x.get("event") == "worker_died" for x in e))
        after = await scrape_until(serving.metrics_url, lambda s: value(s, "switchsim_switch_connections_open") == 0)
        held.close()
    # What the dead worker had counted (and synced) is still in the sum.
    for labels, counted in series(samples, EXCHANGES).items():
        assert series(after, EXCHANGES)[labels] >= counted
