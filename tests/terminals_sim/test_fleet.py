"""The fleet over real sockets (127.0.0.1, port 0) against the small fake host."""

from __future__ import annotations

import time

from terminals_sim.fleet import FleetConfig, TokenBucket, run_fleet
from terminals_sim.outcome import Failure, Kind
from terminals_sim.scenario import Scenario, parse_scenario
from tests.terminals_sim.fakehost import provisioned_host, serve_fake_host

ECHO_ONLY = parse_scenario('[[setup]]\nstep = "signin"\n[[mix]]\nstep = "echo"\n', "echo-only")


def _config(port: int, scenario: Scenario, **kw: object) -> FleetConfig:
    args: dict[str, object] = {"host": "127.0.0.1", "port": port, "terminals": 3, "scenario": scenario,
                               "random_seed": 7, "timeout": 2.0}
    args.update(kw)
    return FleetConfig(**args)  # type: ignore[arg-type]


async def test_steady_mix_without_think_time_runs_clean() -> None:
    host = provisioned_host(4)
    server, port = await serve_fake_host(host)
    scenario = parse_scenario(
        '[[setup]]\nstep = "signin"\n[[setup]]\nstep = "operator_signin"\n'
        '[[mix]]\nstep = "echo"\nweight = 3\n[[mix]]\nstep = "status_upload"\n'
        '[[mix]]\nstep = "param_download"\n', "t")
    result = await run_fleet(_config(port, scenario, terminals=4, exchanges=40))
    server.close()
    stats = result.stats
    assert stats.exchanges == 40 and stats.ok == 40 and stats.failed == 0
    assert stats.by_kind[Kind.SIGNIN].exchanges == 4
    assert stats.by_kind[Kind.OPERATOR_SIGNIN].exchanges == 4
    assert stats.response_codes == {"00": 40}
    assert result.expectations_held
    assert host.connections == 4  # persistent: one connection per terminal
    # every terminal's requests reached the host with its own ids and increasing STANs
    by_terminal: dict[str, list[int]] = {}
    for m in host.seen:
        by_terminal.setdefault(m[41], []).append(int(m[11]))
    assert len(by_terminal) == 4
    assert all(stans == sorted(stans) for stans in by_terminal.values())


async def test_per_exchange_habit_opens_a_connection_per_exchange() -> None:
    host = provisioned_host(2)
    server, port = await serve_fake_host(host)
    scenario = parse_scenario('connection = "per-exchange"\n[[setup]]\nstep = "signin"\n'
                              '[[mix]]\nstep = "echo"\n', "short")
    result = await run_fleet(_config(port, scenario, terminals=2, exchanges=10))
    server.close()
    assert result.stats.exchanges == 10 and result.stats.failed == 0
    assert host.connections == 10


async def test_wrong_check_values_fail_the_run() -> None:
    server, port = await serve_fake_host(provisioned_host(2, wrong_cv=True))
    result = await run_fleet(_config(port, ECHO_ONLY, terminals=2, exchanges=6))
    server.close()
    assert result.stats.failures[Failure.BAD_CHECK_VALUE] >= 2
    assert not result.expectations_held


async def test_a0_makes_the_terminal_sign_in_again() -> None:
    server, port = await serve_fake_host(provisioned_host(1, force_code={"301": "A0"}))
    result = await run_fleet(_config(port, ECHO_ONLY, terminals=1, exchanges=5))
    server.close()
    stats = result.stats
    # signin, echo (A0), signin (follow-up), echo, echo
    assert stats.by_kind[Kind.SIGNIN].exchanges == 2
    assert stats.by_kind[Kind.ECHO].response_codes == {"A0": 1, "00": 2}
    assert stats.failures[Failure.UNEXPECTED_CODE] == 1


async def test_processing_requirement_1_triggers_parameter_downloads() -> None:
    server, port = await serve_fake_host(provisioned_host(1, requirement=1))
    result = await run_fleet(_config(port, ECHO_ONLY, terminals=1, exchanges=9))
    server.close()
    stats = result.stats
    # signin, pd, echo, pd, echo, pd, echo, pd, echo: a download never follows a download
    assert stats.by_kind[Kind.SIGNIN].exchanges == 1
    assert stats.by_kind[Kind.PARAM_DOWNLOAD].exchanges == 4
    assert stats.by_kind[Kind.ECHO].exchanges == 4
    assert stats.failed == 0


async def test_a_host_that_never_answers_gives_timeouts() -> None:
    server, port = await serve_fake_host(provisioned_host(2, silent=True))
    started = time.monotonic()
    result = await run_fleet(_config(port, ECHO_ONLY, terminals=2, exchanges=2, timeout=0.2))
    server.close()
    assert result.stats.failures[Failure.TIMEOUT] == 2
    assert time.monotonic() - started < 2.0
    assert not result.expectations_held


async def test_refused_connections_are_counted() -> None:
    server, port = await serve_fake_host(provisioned_host(1))
    server.close()
    await server.wait_closed()
    result = await run_fleet(_config(port, ECHO_ONLY, terminals=1, exchanges=2))
    assert result.stats.failures[Failure.REFUSED] == 2


async def test_duration_ends_the_run_and_teardown_signs_off() -> None:
    host = provisioned_host(2)
    server, port = await serve_fake_host(host)
    scenario = parse_scenario('think_ms = 20\n[[setup]]\nstep = "signin"\n[[mix]]\nstep = "echo"\n'
                              '[[teardown]]\nstep = "signoff"\n', "t")
    started = time.monotonic()
    result = await run_fleet(_config(port, scenario, terminals=2, duration=0.5))
    server.close()
    assert 0.5 <= time.monotonic() - started < 2.0
    assert result.stats.by_kind[Kind.SIGNOFF].exchanges == 2
    assert result.stats.failed == 0
    assert len(result.stats.seconds) >= 1


async def test_global_rate_caps_exchanges_per_second() -> None:
    server, port = await serve_fake_host(provisioned_host(4))
    started = time.monotonic()
    result = await run_fleet(_config(port, ECHO_ONLY, terminals=4, exchanges=31, rate=100.0))
    elapsed = time.monotonic() - started
    server.close()
    assert result.stats.exchanges == 31
    # 100/s with a burst of 5: the last of 31 exchanges cannot start before ~0.26 s
    assert elapsed >= 0.25


async def test_token_bucket_spaces_callers_at_the_rate() -> None:
    bucket = TokenBucket(rate=200.0, burst=1.0)
    started = time.monotonic()
    for _ in range(21):
        await bucket.acquire()
    assert time.monotonic() - started >= 0.095  # 20 waits of 5 ms after the first token
