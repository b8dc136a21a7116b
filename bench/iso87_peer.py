"""Our switch in the iso87-binary dialect beside the Python peer iso8583sim 1.6.0 (run only,
never imported) and the bare echo host, on the same 0800 network-management load, same client.

usage: python bench/iso87_peer.py [--shared ../shared] [--count 20000] [--log-exchanges on|off]

iso8583sim is installed on first use into /tmp/sim-venv, outside the repository
(`python3 -m venv /tmp/sim-venv && /tmp/sim-venv/bin/pip install iso8583sim==1.6.0`) and started
with `serve --format ascii-binary --header 2b` (ASCII MTI, binary bitmap, 2-byte binary length:
our iso87-binary). If it cannot be installed, only our figures and the echo host are printed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import ROOT, blast, free_port, start_echo, start_switch, stop, wait_port

from specs.codec import codec_for
from specs.framing import encode_frame

SIM_VENV = Path("/tmp/sim-venv")


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
    parser.add_argument("--log-exchanges", choices=("on", "off"), default="on", help="serve --log-exchanges")
    args = parser.parse_args()
    shared = Path(args.shared)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        config = write_config(tmp)
        load = frames(tmp / "nm.frames", args.count)
        ports = {"switchsim": free_port(), "echo host": free_port(), "iso8583sim": free_port()}
        procs = [
            start_switch(config, ports["switchsim"], "--log-exchanges", args.log_exchanges),
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
            print(f"{'host':<11} {'conns x depth':>13} {'TPS':>8} {'p50 ms':>7} {'p99 ms':>7}")
            results: dict[tuple[str, int, int], float] = {}
            for conns, depth in ((1, 1), (10, 8)):
                for name, port in ports.items():
                    result = blast(shared, port, load, conns, args.count, depth)
                    results[(name, conns, depth)] = result["tps"]
                    p50, p99 = result.get("p50_ms", float("nan")), result.get("p99_ms", float("nan"))
                    print(f"{name:<11} {f'{conns} x {depth}':>13} {result['tps']:>8.0f} {p50:>7.3f} {p99:>7.3f}")
            for conns, depth in ((1, 1), (10, 8)):
                ours = results[("switchsim", conns, depth)]
                line = f"{conns} x {depth}: switchsim / echo host {ours / results[('echo host', conns, depth)]:.3f}"
                if ("iso8583sim", conns, depth) in results:
                    line += f", switchsim / iso8583sim {ours / results[('iso8583sim', conns, depth)]:.2f}"
                print(line)
        finally:
            stop(*procs)


if __name__ == "__main__":
    main()
