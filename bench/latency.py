"""Purchase-with-PIN latency at fixed offered rates, beside the bare echo host at the same rates.

usage: python bench/latency.py [--shared ../shared] [--rates 250,500,1000,2000] [--seconds 5]
                               [--conns 10] [--log-exchanges on|off]

../shared/bench/blast.py keeps a number of requests in flight, so it measures throughput; a load
tester asks the other question: at N purchases a second, how long does each one wait? This
client is open loop: over `--conns` connections it sends the pre-encoded purchases of
bench/switch_tps.py (MAC verify, PIN verify, ledger commit, response MAC) on a fixed schedule,
whatever the answers do, and times each answer from the moment its request was due (so a host
that falls behind is charged for the queue it builds, not hidden by a client that waits). The
echo host (../shared/bench/echo_limit.py) gets the same frames at the same rates: its figures
are what this client and the machine cost on their own. A rate the host cannot keep up shows
as an achieved rate below the offered one and a p99 that grows with the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import struct
import tempfile
import time
from collections import deque
from pathlib import Path

import switch_tps
from harness import ROOT, free_port, start_echo, start_switch, stop, wait_port

TICK = 0.001  # seconds between two sends of what is due: the schedule's resolution


class _Conn(asyncio.Protocol):
    def __init__(self, latencies: list[float], done: asyncio.Event, expected: int) -> None:
        self.due: deque[float] = deque()  # when each request in flight was due, in order
        self.latencies, self.done, self.expected = latencies, done, expected
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, frame: bytes, due: float) -> None:
        assert self.transport is not None
        self.due.append(due)
        self.transport.write(frame)

    def data_received(self, data: bytes) -> None:
        buf, now = self.buf + data, time.perf_counter()
        while len(buf) >= 2:
            (n,) = struct.unpack(">H", buf[:2])
            if len(buf) < 2 + n:
                break
            buf = buf[2 + n :]
            if n and self.due:  # answers come back in the order of the requests
                self.latencies.append(now - self.due.popleft())
                if len(self.latencies) >= self.expected:
                    self.done.set()
        self.buf = buf


def split_frames(data: bytes) -> list[bytes]:
    frames, at = [], 0
    while at < len(data):
        (n,) = struct.unpack(">H", data[at : at + 2])
        frames.append(data[at : at + 2 + n])
        at += 2 + n
    return frames


async def paced(port: int, frames: list[bytes], rate: float, conns: int) -> dict[str, float]:
    """Send ``frames`` at ``rate`` a second over ``conns`` connections; the achieved rate and
    the latency quantiles in ms (from each request's due time)."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    done = asyncio.Event()
    protocols = []
    for _ in range(conns):
        _t, proto = await loop.create_connection(lambda: _Conn(latencies, done, len(frames)), "127.0.0.1", port)
        protocols.append(proto)
    start = time.perf_counter()
    sent = 0
    while sent < len(frames):
        now = time.perf_counter()
        while sent < len(frames) and start + sent / rate <= now:
            protocols[sent % conns].send(frames[sent], start + sent / rate)
            sent += 1
        await asyncio.sleep(TICK)
    with contextlib.suppress(TimeoutError):  # what is still unanswered is reported as such
        await asyncio.wait_for(done.wait(), timeout=30)
    elapsed = time.perf_counter() - start
    for proto in protocols:
        assert proto.transport is not None
        proto.transport.close()
    ordered = sorted(latencies)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000 if ordered else float("nan")

    return {
        "answered": len(ordered),
        "tps": len(ordered) / elapsed,
        "p50": q(0.50),
        "p99": q(0.99),
        "p999": q(0.999),
        "max": ordered[-1] * 1000 if ordered else float("nan"),
        "mean": statistics.fmean(ordered) * 1000 if ordered else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--rates", default="250,500,1000,2000", help="offered purchases a second, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of load at each rate")
    parser.add_argument("--conns", type=int, default=10)
    parser.add_argument("--log-exchanges", choices=("on", "off"), default="on", help="serve --log-exchanges")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    shared = Path(args.shared)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        config = switch_tps.write_config(tmp)
        switch_port, echo_port = free_port(), free_port()
        switch = start_switch(config, switch_port, "--log-exchanges", args.log_exchanges)
        echo = start_echo(shared, echo_port)
        try:
            wait_port(switch_port)
            wait_port(echo_port)
            pik, mak = switch_tps.sign_in(switch_port)
            stan = 2
            warm = split_frames(switch_tps.purchases(tmp / "warm.frames", pik, mak, stan, 500).read_bytes())
            stan += 500
            asyncio.run(paced(switch_port, warm, 500, args.conns))
            print(f"purchase with PIN at fixed offered rates, {args.conns} connections, {args.seconds:g} s each;")
            print("latency from each request's due time, ms")
            head = ("offered/s", "host", "achieved/s", "p50", "p99", "p99.9", "max")
            print("{:>9} {:<7} {:>10} {:>7} {:>7} {:>7} {:>7}".format(*head))
            for rate in rates:
                n = int(rate * args.seconds)
                path = switch_tps.purchases(tmp / f"p{stan}.frames", pik, mak, stan, n)
                stan += n
                frames = split_frames(path.read_bytes())
                for name, port in (("switch", switch_port), ("echo", echo_port)):
                    r = asyncio.run(paced(port, frames, rate, args.conns))
                    lost = f"  ({n - int(r['answered'])} unanswered)" if r["answered"] < n else ""
                    print(
                        f"{rate:>9.0f} {name:<7} {r['tps']:>10.0f} {r['p50']:>7.2f} {r['p99']:>7.2f} "
                        f"{r['p999']:>7.2f} {r['max']:>7.2f}{lost}"
                    )
        finally:
            stop(switch, echo)


if __name__ == "__main__":
    main()
