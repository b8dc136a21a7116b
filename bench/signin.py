"""Sign-ins per second through the whole switch (TCP, in-process HSM, SQLite journal), beside
the bare echo host ../shared/bench/echo_limit.py measured in the same run with the same client.

usage: python bench/signin.py [--shared ../shared] [--count 3000]

Both hosts are driven by ../shared/bench/blast.py (a deliberately cheap client) with the same
pre-encoded 0800 sign-in frames (60.3 = 003, 100 registered terminals), at 1, 10 and 100
concurrent connections, one request in flight each (so latency is per request). Each sign-in
costs the switch three A0 and three BU host commands, a session write, audit and journal lines.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import ROOT, blast, free_port, stop, wait_port

from specs.codec import codec_for
from specs.framing import CupHeader, Tpdu, encode_frame

N_TERMINALS = 100


def ids(i: int) -> tuple[str, str]:
    return f"{898100000000000 + i // 10:015d}", f"{10000000 + i:08d}"


def write_setup(tmp: Path) -> tuple[Path, Path]:
    codec = codec_for("cup-pos")
    config = ["[server]", 'host = "127.0.0.1"', f'db = "{tmp / "bench.db"}"', "idle_timeout = 600", ""]
    frames = bytearray()
    for i in range(N_TERMINALS):
        merchant, terminal = ids(i)
        config += [
            "[[terminals]]",
            f'merchant = "{merchant}"',
            f'terminal = "{terminal}"',
            f'tmk = "{i:032X}"',
            "",
        ]
        body = codec.encode(
            codec.message("0800", {11: f"{i + 1:06d}", 41: terminal, 42: merchant, 60: "00000001003", 63: "001"})
        )
        frames += encode_frame(
            codec.dialect.framing,
            body,
            tpdu=Tpdu.from_hex("6000000000"),
            header=CupHeader.from_hex("603100000000"),
        )
    (tmp / "switch.toml").write_text("\n".join(config))
    (tmp / "signin.frames").write_bytes(bytes(frames))
    return tmp / "switch.toml", tmp / "signin.frames"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args()
    shared = Path(args.shared)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        config, frames = write_setup(tmp)
        switch_port, echo_port = free_port(), free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        switch = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "switchsim.cli",
                "serve",
                "--config",
                str(config),
                "--port",
                str(switch_port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
        )
        echo = subprocess.Popen(
            [sys.executable, str(shared / "bench" / "echo_limit.py"), str(echo_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(switch_port)
            wait_port(echo_port)
            blast(shared, switch_port, frames, 10, 500)  # warm-up
            head = ("conns", "switch/s", "p50 ms", "p99 ms", "echo/s", "echo p50", "ratio")
            print("{:>5} {:>9} {:>7} {:>7} {:>9} {:>8} {:>6}".format(*head))
            for conns in (1, 10, 100):
                ours = blast(shared, switch_port, frames, conns, args.count)
                base = blast(shared, echo_port, frames, conns, args.count)
                p50, p99 = ours.get("p50_ms", 0), ours.get("p99_ms", 0)
                print(
                    f"{conns:>5} {ours['tps']:>9.0f} {p50:>7.2f} {p99:>7.2f} "
                    f"{base['tps']:>9.0f} {base.get('p50_ms', 0):>8.3f} {ours['tps'] / base['tps']:>6.3f}"
                )
        finally:
            stop(switch, echo)


if __name__ == "__main__":
    main()
