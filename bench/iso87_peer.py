"""Our switch in the iso87-binary dialect beside the Python peer iso8583sim 1.6.0 (run only,
never imported) and the bare echo host, on the same 0800 network-management load, same client.

usage: python bench/iso87_peer.py [--shared ../shared] [--count 20000] [--rounds 3] [--log-exchanges on|off]

iso8583sim is installed on first use into /tmp/sim-venv, outside the repository
(`python3 -m venv /tmp/sim-venv && /tmp/sim-venv/bin/pip install iso8583sim==1.6.0`) and started
with `serve --format ascii-binary --header 2b` (ASCII MTI, binary bitmap, 2-byte binary length:
our iso87-binary). If it cannot be installed, only our figures and the echo host are printed.
The "in-loop journal" row is our switch with `serve --journal-process off`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import ROOT, blast, free_port, start_echo, start_switch, stop, wait_port

from specs.codec import codec_for
from specs.framing import encode_frame

SIM_VENV = Path("/tmp/sim-venv")
LOADS = ((1, 1), (10, 8))  # connections x requests in flight on each
# The same switch with `serve --journal-process off`: the journal masked and written in its loop
# (docs/store.md, "The journal process"), the baseline of what the process takes off the loop.
IN_LOOP = "in-loop journal"


def frames(path: Path, n: int) -> Path:
    codec = codec_for("iso87-binary")
    out = bytearray()
    for stan in range(1, n + 1):
        message = codec.message("0800", {7: "1122123456", 11: f"{stan % 1_000_000:06d}", 70: "301"})
        out += encode_frame(codec.dialect.framing, codec.encode(message))
    path.write_bytes(bytes(out))
    return path


def write_config(tmp: Path) -> Path:
    config = tmp / "switch.toml"
    config.write_text(f'[server]\nhost = "127.0.0.1"\ndialect = "iso87-binary"\ndb = "{tmp / "s.db"}"\n')
    return config


def start_peer(port: int) -> subprocess.Popen[bytes] | None:
    exe = SIM_VENV / "bin" / "iso8583sim"
    if not exe.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(SIM_VENV)], check=True)
            subprocess.run([str(SIM_VENV / "bin" / "pip"), "install", "-q", "iso8583sim==1.6.0"], check=True)
        except subprocess.CalledProcessError:
            return None
    return subprocess.Popen(
        [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), "--format", "ascii-binary", "--header", "2b"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each host once per load in each")
    parser.add_argument("--log-exchanges", choices=("on", "off"), default="on", help="serve --log-exchanges")
    args = parser.parse_args()
    shared = Path(args.shared)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        config = write_config(tmp)
        (tmp / "in-loop").mkdir()
        in_loop_config = write_config(tmp / "in-loop")  # a store of its own
        load = frames(tmp / "nm.frames", args.count)
        ports = {"switchsim": free_port(), IN_LOOP: free_port(), "echo host": free_port(), "iso8583sim": free_port()}
        procs = [
            start_switch(config, ports["switchsim"], "--log-exchanges", args.log_exchanges),
            start_switch(
                in_loop_config, ports[IN_LOOP], "--log-exchanges", args.log_exchanges, "--journal-process", "off"
            ),
            start_echo(shared, ports["echo host"]),
        ]
        peer = start_peer(ports["iso8583sim"])
        if peer is None:
            del ports["iso8583sim"]
            print("iso8583sim could not be installed: its row is missing")
        else:
            procs.append(peer)
        try:
            for port in ports.values():
                wait_port(port)
            print("0800 network management (70 = 301), iso87-binary framing, blast.py client")
            for port in ports.values():  # warm-up: imports, caches, the first connections
                blast(shared, port, load, 4, min(args.count, 2000))
            print(f"{'round':>5} {'host':<15} {'conns x depth':>13} {'TPS':>8} {'p50 ms':>7} {'p99 ms':>7}")
            # Each round runs every host once per load, one after the other, so that the ratios
            # of a round are measured side by side; the median over rounds evens out a machine
            # whose load moves.
            ratios: dict[tuple[str, int, int], list[float]] = {}
            for round_ in range(1, args.rounds + 1):
                for conns, depth in LOADS:
                    tps: dict[str, float] = {}
                    for name, port in ports.items():
                        result = blast(shared, port, load, conns, args.count, depth)
                        tps[name] = result["tps"]
                        p50, p99 = result.get("p50_ms", float("nan")), result.get("p99_ms", float("nan"))
                        print(
                            f"{round_:>5} {name:<15} {f'{conns} x {depth}':>13} {result['tps']:>8.0f} "
                            f"{p50:>7.3f} {p99:>7.3f}"
                        )
                    for name in tps:
                        if name != "switchsim":
                            ratios.setdefault((name, conns, depth), []).append(tps["switchsim"] / tps[name])
            for conns, depth in LOADS:
                parts = [
                    f"switchsim / {name} {statistics.median(values):.2f} (rounds: "
                    + " ".join(f"{v:.2f}" for v in values)
                    + ")"
                    for (name, c, d), values in ratios.items()
                    if (c, d) == (conns, depth)
                ]
                print(f"{conns} x {depth}, median of {args.rounds}: " + ", ".join(parts))
        finally:
            stop(*procs)


if __name__ == "__main__":
    main()
