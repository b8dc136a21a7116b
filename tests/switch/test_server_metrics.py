"""The switch's /metrics after a known run over real sockets: the fleet's exchanges (its own
count of what it sent and what came back), a malformed frame, a stream that cannot be framed and
a response rule, each exactly once in the scrape by kind and code; the terminals signed in, the
connections, the store commits and the HSM commands behind them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from specs.metrics import SwitchMetrics, serve_metrics
from specs.testcards import DEFAULT_TEST_CARDS
from switch.app import serve_switch
from switch.config import DeclaredCard, DeclaredTerminal, SwitchConfig
from terminals_sim.fleet import FleetConfig, run_fleet
from terminals_sim.outcome import Kind
from terminals_sim.provision import provision_plan
from terminals_sim.scenario import parse_scenario
from terminals_sim.terminal import TerminalProfile, VirtualTerminal
from tests.scrape import scrape, series, value

FLEET = 4
CARD = DEFAULT_TEST_CARDS[0]
SCENARIO = parse_scenario(
    f'card = "{CARD.pan}"\n'
    '[[setup]]\nstep = "signin"\n[[setup]]\nstep = "operator_signin"\n'
    '[[setup]]\nstep = "purchase"\namount = "1.00"\n'
    '[[mix]]\nstep = "echo"\nweight = 3\nexpect = ["00", "51"]\n'
    '[[mix]]\nstep = "status_upload"\nexpect = ["00", "51"]\n[[mix]]\nstep = "param_download"\n', "metrics")
RULE = {"name": "decline 0820 of terminal 2", "match": {"terminal": "00000002", "mti": "0820"},
        "action": {"respond": "51"}}


async def test_scrape_counts_exactly_what_was_sent(tmp_path: Path) -> None:
    plan = provision_plan(FLEET)
    cards = tuple(DeclaredCard(c.pan, c.expiry, c.pin, c.balance_cents, c.limit_cents, c.service_code,
                               c.status.value) for c in DEFAULT_TEST_CARDS)
    config = SwitchConfig(port=0, db=str(tmp_path / "switch.db"), hsm="inproc", cards=cards, rules=(RULE,),
                          terminals=tuple(DeclaredTerminal(p.merchant, p.terminal, p.tmk) for p in plan))
    metrics = SwitchMetrics()
    running = await serve_switch(config, observer=metrics)
    try:
        result = await run_fleet(FleetConfig("127.0.0.1", running.port, FLEET, SCENARIO, exchanges=60, random_seed=5))
        # A sign-in cut short inside its last field (63): readable MTI, undecodable message.
        profile = TerminalProfile(plan[0].merchant, plan[0].terminal, plan[0].tmk)
        whole = VirtualTerminal(profile).start(Kind.SIGNIN)
        cut = (int.from_bytes(whole[:2], "big") - 2).to_bytes(2, "big") + whole[2:-2]
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(cut)
        length = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 5), "big")
        await reader.readexactly(length)
        writer.close()
        # A stream that cannot be framed: a length over the 8 KiB frame limit.
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(b"\xff\xff" + bytes(16))
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        async with asyncio.timeout(5):
            while running.server.connections:
                await asyncio.sleep(0.01)
        with serve_metrics(metrics) as endpoint:
            # The terminals signed in are counted in the store once a second (switch/signedin.py).
            async with asyncio.timeout(5):
                while value(samples := await asyncio.to_thread(scrape, endpoint.url),
                            "switchsim_switch_terminals_signed_in") != FLEET:
                    await asyncio.sleep(0.05)
    finally:
        await running.close()

    stats = result.stats
    assert stats.exchanges == 60
    sent = {frozenset({("kind", k.value), ("code", code)}): float(n)
            for k, counts in stats.by_kind.items() for code, n in counts.response_codes.items()}
    sent[frozenset({("kind", "malformed"), ("code", "30")})] = 1.0
    assert series(samples, "switchsim_switch_exchanges_total") == sent
    for k, counts in stats.by_kind.items():
        assert value(samples, "switchsim_switch_exchange_seconds_count", kind=k.value) == counts.exchanges
    declined = sum(c.response_codes.get("51", 0) for c in stats.by_kind.values())
    assert declined > 0  # terminal 2 sent 0820s, the rule answered them
    assert series(samples, "switchsim_switch_rules_fired_total") == {
        frozenset({("rule", RULE["name"]), ("action", "respond")}): float(declined)}
    approved_purchases = stats.by_kind[Kind.PURCHASE].response_codes["00"]
    assert approved_purchases == FLEET
    assert value(samples, "switchsim_switch_store_commit_seconds_count") == approved_purchases
    assert value(samples, "switchsim_switch_connections_accepted_total") == FLEET + 2
    assert value(samples, "switchsim_switch_connections_open") == 0
    assert series(samples, "switchsim_switch_connections_closed_total") == {
        frozenset({("reason", "closed")}): FLEET + 1.0, frozenset({("reason", "framing")}): 1.0}
    assert series(samples, "switchsim_switch_wire_errors_total") == {
        frozenset({("layer", "format")}): 1.0, frozenset({("layer", "framing")}): 1.0}
    # Each sign-in asks the HSM for working keys (A0) and checks its MAC-bearing requests (M8).
    assert value(samples, "switchsim_switch_hsm_command_seconds_count", command="A0") >= FLEET
    assert value(samples, "switchsim_switch_hsm_command_seconds_count", command="M8") > 0
    assert series(samples, "switchsim_switch_hsm_failures_total") == {}


def test_serve_cli_serves_metrics(tmp_path: Path) -> None:
    import re
    import socket
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "switchsim.cli", "serve", "--db", str(tmp_path / "s.db"), "--port", "0",
         "--metrics-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("metrics on http://127.0.0.1:"), first
        listening = proc.stdout.readline()
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", listening)
        assert found, listening
        # An echo from a terminal this empty store does not know: 03, unknown merchant.
        plan = provision_plan(1)[0]
        echo = VirtualTerminal(TerminalProfile(plan.merchant, plan.terminal, plan.tmk)).start(Kind.ECHO)
        with socket.create_connection(("127.0.0.1", int(found.group(1))), timeout=10) as sock:
            sock.sendall(echo)
            head = sock.recv(2)
            assert len(head) == 2
        samples = scrape(first.split()[-1])
        assert value(samples, "switchsim_switch_exchanges_total", kind="echo", code="03") == 1
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
