"""The switch's RSS after floods of short connections, against its RSS before the first flood.

usage: python bench/conn_flood.py [--connections 20000] [--at-once 2000] [--rounds 2]

The switch runs as its own process (`switchsim serve`, SQLite file store); each connection
sends one 0820 echo, reads the answer and closes. RSS comes from /proc/<pid>/status, so this
runs on Linux only. A leak grows round after round; what a burst leaves behind stays at the
level of the first round (the peak of simultaneous connections, kept by CPython's allocator).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

from harness import free_port, start_switch, stop, wait_port

from specs.codec import codec_for
from specs.framing import CupHeader, Tpdu, encode_frame

CODEC = codec_for("cup-pos")
ECHO = encode_frame(
    CODEC.dialect.framing,
    CODEC.encode(CODEC.message("0820", {11: "000001", 41: "00000764", 42: "848100058126002", 60: "00000001301"})),
    tpdu=Tpdu.from_hex("6000000000"),
    header=CupHeader.from_hex("603100000000"),
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmRSS in /proc")


async def one(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(ECHO)
    head = await reader.readexactly(2)
    await reader.readexactly(int.from_bytes(head, "big"))
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def flood(port: int, connections: int, at_once: int) -> None:
    gate = asyncio.Semaphore(at_once)

    async def gated() -> None:
        async with gate:
            await one(port)

    await asyncio.gather(*(gated() for _ in range(connections)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=20000)
    parser.add_argument("--at-once", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        config = Path(tmpdir) / "switch.toml"
        config.write_text(f'[server]\nhost = "127.0.0.1"\ndb = "{Path(tmpdir) / "flood.db"}"\n')
        port = free_port()
        switch = start_switch(config, port)
        try:
            wait_port(port)
            asyncio.run(flood(port, 10, 1))  # warm the code paths first
            time.sleep(1)
            before = rss_mb(switch.pid)
            print(f"{args.connections} short connections a round, {args.at_once} at a time")
            print(f"{'round':>5} {'seconds':>7} {'RSS MB':>7} {'ratio':>6}")
            print(f"{'start':>5} {'':>7} {before:>7.0f} {1:>6.2f}")
            for n in range(1, args.rounds + 1):
                started = time.monotonic()
                asyncio.run(flood(port, args.connections, args.at_once))
                took = time.monotonic() - started
                time.sleep(2)  # let closes and the journal flush settle
                after = rss_mb(switch.pid)
                print(f"{n:>5} {took:>7.0f} {after:>7.0f} {after / before:>6.2f}")
        finally:
            stop(switch)


if __name__ == "__main__":
    main()
