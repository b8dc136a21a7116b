"""Locust drives switchsim's virtual terminals: each Locust user is one terminal running a
scenario (the TOML of terminals_sim/scenarios, or a file), and every exchange is one Locust
request (name = the step kind, its response time, and on a failure an exception naming the
failure kind and why).

    locust -f "$(switchsim fleet locustfile)" --host 127.0.0.1:5800 --scenario steady ...

Run it as Locust runs anything: alone, or ``--master`` with ``--worker`` processes on any
number of machines. Terminal numbers are sharded by worker: worker ``w`` (Locust's worker
index, 0 alone) owns terminals ``--first-terminal + w * --terminals-per-worker`` onwards, and
each of its users takes the lowest number no running user holds, so no two users share a
terminal. The switch must know every terminal a run can reach: provision
``workers * --terminals-per-worker`` of them (``switchsim fleet --provision``) with the same
``--seed`` and ``--merchant-prefix``.

The steps are the fleet's own (terminals_sim/fleet.py ``TerminalDriver``: sign-in before what
needs keys, the host's follow-ups, reversals owed, prerequisites), run on gevent through
terminals_sim/blocking.py. Setup steps run when a user starts, one mix step per Locust task
with the scenario's think time as ``wait_time``, teardown when the user stops. In a distributed
run the master, as the run ends, asks every worker to stop its users (each runs its teardown) and
waits for them before it quits, so the teardown's exchanges are in the master's statistics.

Over TLS (a switch run with ``serve --tls-cert --tls-key``), add ``--host-tls`` and, as
``fleet run``'s ``--tls-ca``, ``--tls-cert`` and ``--tls-key``, ``--host-tls-ca`` (the CA to
trust; default the system's) and ``--host-tls-cert`` / ``--host-tls-key`` (the client's, for
mutual TLS): Locust's own ``--tls-cert`` and ``--tls-key`` serve its web UI. The master hands
its options to its workers, so the files must be at the same paths on every worker's machine.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from locust import User, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from specs.catalogue import DEFAULT_DIALECT
from specs.framing import Frame
from specs.observer import NullObserver
from specs.tls import ClientTls
from terminals_sim.blocking import Blocking, BlockingConnection, drive
from terminals_sim.fleet import DEFAULT_TIMEOUT, Fleet, FleetConfig, TerminalDriver
from terminals_sim.outcome import Failure
from terminals_sim.provision import DEFAULT_FIRST_TERMINAL, DEFAULT_MERCHANT_PREFIX, DEFAULT_SEED, provision_plan
from terminals_sim.scenario import Scenario, Step, load_scenario

DEFAULT_PER_WORKER = 1000
TEARDOWN = "switchsim_teardown"  # master -> workers: stop your users now (teardown included)
TORN_DOWN = "switchsim_torn_down"  # worker -> master: done, statistics sent
_TEARDOWN_SLACK = 10.0  # seconds the master waits beyond the teardown's own timeouts


def _options(parser: Any) -> None:
    group = parser.add_argument_group("switchsim")
    group.add_argument("--scenario", default="steady", help="built-in scenario name or TOML file (default steady)")
    group.add_argument("--terminals-per-worker", type=int, default=DEFAULT_PER_WORKER,
                       help=f"terminal numbers each worker owns (default {DEFAULT_PER_WORKER})")
    group.add_argument("--first-terminal", type=int, default=DEFAULT_FIRST_TERMINAL,
                       help=f"the first terminal number (default {DEFAULT_FIRST_TERMINAL})")
    group.add_argument("--seed", default=DEFAULT_SEED, help="TMK derivation seed shared with the switch")
    group.add_argument("--merchant-prefix", default=DEFAULT_MERCHANT_PREFIX, help="merchant id prefix")
    group.add_argument("--dialect", default=DEFAULT_DIALECT, help=f"the host's dialect (default {DEFAULT_DIALECT})")
    group.add_argument("--exchange-timeout", type=float, default=DEFAULT_TIMEOUT,
                       help=f"seconds to wait for each answer (default {DEFAULT_TIMEOUT:g})")
    # Locust's own --tls-cert/--tls-key serve its web UI: these name the connection to --host.
    group.add_argument("--host-tls", action="store_true", help="connect to --host over TLS (fleet run --tls)")
    group.add_argument("--host-tls-ca", default=None, help="CA certificates to trust (default: the system's)")
    group.add_argument("--host-tls-cert", default=None, help="client certificate, for mutual TLS")
    group.add_argument("--host-tls-key", default=None, help="its private key (default: in the certificate file)")


events.init_command_line_parser.add_listener(_options)  # type: ignore[no-untyped-call]


def _on_init(environment: Environment, **_kw: Any) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        runner.register_message(TORN_DOWN, _on_torn_down)
    elif isinstance(runner, WorkerRunner):
        runner.register_message(TEARDOWN, _teardown, concurrent=True)


def _teardown(environment: Environment, msg: Any, **_kw: Any) -> None:
    """Worker: stop every user (on_stop runs each one's teardown), send the statistics, say so."""
    runner = environment.runner
    assert isinstance(runner, WorkerRunner)
    runner.stop()
    runner._send_stats()  # the statistics the teardown made, before the master quits
    runner.send_message(TORN_DOWN)


_torn_down: set[str] = set()


def _on_torn_down(environment: Environment, msg: Any, **_kw: Any) -> None:
    _torn_down.add(msg.node_id)


def _on_stopping(environment: Environment, **_kw: Any) -> None:
    """Master: as the run ends, let the workers tear down before quitting (bounded)."""
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return
    options = environment.parsed_options
    timeout = float(getattr(options, "exchange_timeout", DEFAULT_TIMEOUT)) * 4 + _TEARDOWN_SLACK
    workers = {client.id for client in runner.clients.all}
    _torn_down.clear()
    runner.send_message(TEARDOWN)
    deadline = time.monotonic() + timeout
    while not workers <= _torn_down and time.monotonic() < deadline:
        time.sleep(0.1)  # gevent's: the master's message loop runs meanwhile


events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]
events.test_stopping.add_listener(_on_stopping)  # type: ignore[no-untyped-call]


class StepFailed(Exception):
    """An exchange that failed, as Locust lists it: ``failure kind: why``."""


class LocustObserver(NullObserver):
    """The fleet's observer that makes every exchange a Locust request event (its type: the
    dialect)."""

    __slots__ = ("_fire", "_type")

    def __init__(self, environment: Environment, request_type: str) -> None:
        self._fire: Callable[..., None] = environment.events.request.fire
        self._type = request_type

    def exchange_done(self, kind: str, code: str, seconds: float, failure: str = "", reason: str = "") -> None:
        self._fire(
            request_type=self._type,
            name=kind,
            response_time=seconds * 1000.0,
            response_length=0,
            exception=StepFailed(f"{failure}: {reason}" if reason else failure) if failure else None,
            context={"code": code},
        )


class _Shard:
    """What the users of one worker process share: the fleet they belong to, and the terminal
    numbers they may take."""

    def __init__(self, environment: Environment) -> None:
        options = environment.parsed_options
        assert options is not None, "run by locust, which parses the command line"
        host, port = _target(environment.host)
        runner = environment.runner
        worker = getattr(runner, "worker_index", 0) if runner is not None else 0
        self.per_worker = int(options.terminals_per_worker)
        if self.per_worker < 1:
            raise ValueError("--terminals-per-worker must be at least 1")
        self.first = int(options.first_terminal) + max(worker, 0) * self.per_worker
        self.scenario: Scenario = load_scenario(options.scenario)
        config = FleetConfig(
            host=host,
            port=port,
            terminals=self.per_worker,
            scenario=self.scenario,
            seed=options.seed,
            merchant_prefix=options.merchant_prefix,
            first_terminal=self.first,
            duration=math.inf,  # Locust decides when the run ends
            timeout=float(options.exchange_timeout),
            dialect=options.dialect,
            tls=_client_tls(options),
        )
        self.fleet = Fleet(config, observer=LocustObserver(environment, options.dialect))
        self.fmt = self.fleet.fmt
        self._free: list[int] = []
        self._next = 0
        mix = self.scenario.mix
        self.mix = mix
        self.cum_weights = list(accumulate(s.weight for s in mix))

    def take(self) -> int | None:
        """The lowest terminal slot no running user holds; None when all are taken."""
        if self._free:
            return heapq.heappop(self._free)
        if self._next >= self.per_worker:
            return None
        self._next += 1
        return self._next - 1

    def give_back(self, slot: int) -> None:
        heapq.heappush(self._free, slot)


_shard: _Shard | None = None


def _shard_of(environment: Environment) -> _Shard:
    global _shard
    if _shard is None:
        _shard = _Shard(environment)
    return _shard


def _client_tls(options: Any) -> ClientTls | None:
    files = (("--host-tls-ca", options.host_tls_ca), ("--host-tls-cert", options.host_tls_cert),
             ("--host-tls-key", options.host_tls_key))
    if not options.host_tls:
        named = [flag for flag, value in files if value is not None]
        if named:
            raise ValueError(f"{', '.join(named)} given without --host-tls")
        return None
    return ClientTls(ca=options.host_tls_ca, cert=options.host_tls_cert, key=options.host_tls_key)


def _target(host: str | None) -> tuple[str, int]:
    text = (host or "").removeprefix("tcp://").rstrip("/")
    name, sep, port = text.rpartition(":")
    if not sep or not name or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--host must be HOST:PORT (or tcp://HOST:PORT), got {host!r}")
    return name.strip("[]"), int(port)


class _BlockingDriver(TerminalDriver):
    """The fleet's terminal driver over a blocking connection (gevent's sockets)."""

    def __init__(self, shard: _Shard, slot: int) -> None:
        planned = provision_plan(1, shard.fleet.config.seed, shard.fleet.config.merchant_prefix, shard.first + slot)[0]
        super().__init__(shard.fleet, shard.fleet.profile(planned))
        self.shard = shard
        self.link: BlockingConnection | None = None

    async def transmit(self, frame: bytes) -> Frame:
        step: Blocking[Frame] = Blocking(lambda: self._exchange(frame))
        return await step

    def _exchange(self, frame: bytes) -> Frame:
        cfg = self.fleet.config
        link = self.link
        if link is None or not link.usable:
            self.drop_connection()
            link = self.link = BlockingConnection(cfg.host, cfg.port, self.shard.fmt, cfg.timeout, self.fleet.tls)
            self.fleet.stats.connection_opened()
            self.fleet.observer.connection_opened()
        return link.exchange(frame, cfg.timeout)

    async def pause(self, seconds: float) -> None:
        await Blocking(lambda: time.sleep(seconds))  # gevent's, under Locust

    def abandon(self) -> None:
        """After Locust stopped the user in the middle of an exchange: that request gets no
        answer (a sale owes its reversal, as on a real terminal) and its connection is closed,
        so the teardown starts clean. Not counted: the exchange never finished."""
        if self.terminal.awaiting is not None:
            self.drop_connection("stopped")
            self.terminal.fail_pending(Failure.TIMEOUT, "the Locust user was stopped before the answer")

    def drop_connection(self, reason: str = "closed") -> None:
        if self.link is not None:
            self.link.close()
            self.link = None
            self.fleet.stats.connection_closed()
            self.fleet.observer.connection_closed(reason)


class VirtualTerminalUser(User):
    """One virtual terminal through the scenario."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.shard = _shard_of(environment)
        self.slot: int | None = None
        self.driver: _BlockingDriver | None = None

    def wait_time(self) -> float:
        low, high = self.shard.scenario.think_ms
        return random.uniform(low, high) / 1000.0 if high > 0 else 0.0

    def on_start(self) -> None:
        self.slot = self.shard.take()
        if self.slot is None:
            raise StopUser(f"this worker's {self.shard.per_worker} terminals are all in use: "
                           "raise --terminals-per-worker (and provision that many per worker)")
        self.driver = _BlockingDriver(self.shard, self.slot)
        for step in self.shard.scenario.setup:
            self._run(step)

    @task
    def mix(self) -> None:
        shard = self.shard
        if shard.mix:
            self._run(random.choices(shard.mix, cum_weights=shard.cum_weights)[0])

    def on_stop(self) -> None:
        if self.driver is None:
            return
        try:
            self.driver.abandon()
            for step in self.shard.scenario.teardown:
                self._run(step, teardown=True)
        finally:
            self.driver.drop_connection("end")
            if self.slot is not None:
                self.shard.give_back(self.slot)
                self.slot = None
            self.driver = None

    def _run(self, step: Step, *, teardown: bool = False) -> None:
        assert self.driver is not None
        drive(self.driver.step(step, teardown=teardown))
