"""What TLS costs on the purchase load: the same switch with and without ``serve --tls-cert``,
the same pre-encoded purchases with PIN and MAC (bench/switch_tps.py's), the same client.

usage: python bench/tls.py [--shared ../shared] [--count 3000] [--rounds 3] [--connects 300]

Two switch processes run side by side (in-process HSM, a SQLite store each): one plaintext,
one TLS (a test CA from `switchsim tls make-test-ca`, EC P-256, TLS 1.3 as negotiated here).
Each terminal signs in on its own switch. The load is ../shared/bench/blast.py's connection
and runner (a cheap pipelining client), driven in this process so that it can speak TLS too:
pre-encoded purchases at 1 connection x depth 1 and 10 x 8, and the per-exchange habit of
UnionPay terminals (connect, handshake, one purchase, close; one at a time). The plaintext
and TLS runs alternate, ``--rounds`` times each, and the best of each is printed with the
ratio TLS / plaintext. The client shares the machine with the switch, and TLS costs it too.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import ssl
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from harness import ROOT, free_port, start_switch, stop, wait_port
from switch_tps import purchases, sign_in, write_config

from specs.tls import ClientTls
from switchsim.testca import make_test_ca


def _blast(shared: Path) -> ModuleType:
    """../shared/bench/blast.py as a module: its Conn and Runner, unchanged."""
    spec = importlib.util.spec_from_file_location("blast", shared / "bench" / "blast.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def pipelined(blast: Any, port: int, frames: Path, conns: int, depth: int, count: int,
                    tls: ssl.SSLContext | None) -> dict[str, float]:
    """blast.py's main, with TLS when ``tls`` is given; timed from the first connect, as blast.py times."""
    loop = asyncio.get_running_loop()
    runner = blast.Runner(blast.load_frames(str(frames)), count, depth)
    opened = []
    started = time.perf_counter()
    for _ in range(conns):
        opened.append(await loop.create_connection(lambda: blast.Conn(runner), "127.0.0.1", port, ssl=tls,
                                                   server_hostname="127.0.0.1" if tls else None))
    await asyncio.wait_for(runner.done, 120)
    seconds = time.perf_counter() - started
    for transport, _ in opened:
        transport.close()
    assert runner.received == count, f"{runner.received} of {count} answered"
    out = {"tps": runner.received / seconds}
    if runner.lat:
        lat = sorted(runner.lat)
        out["p50_ms"] = lat[len(lat) // 2] * 1000
        out["p99_ms"] = lat[int(len(lat) * 0.99) - 1] * 1000
    return out


async def per_exchange(blast: Any, port: int, frames: Path, count: int, tls: ssl.SSLContext | None) -> float:
    """Exchanges per second, each on its own connection (connect, handshake, one purchase, close)."""
    wires = blast.load_frames(str(frames))[:count]
    started = time.perf_counter()
    for frame in wires:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls,
                                                       server_hostname="127.0.0.1" if tls else None)
        writer.write(frame)
        head = await reader.readexactly(2)
        await reader.readexactly(int.from_bytes(head, "big"))
        writer.close()
        await writer.wait_closed()
    return len(wires) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connects", type=int, default=300, help="exchanges of the per-exchange run")
    args = parser.parse_args()
    blast = _blast(Path(args.shared))
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        ca = make_test_ca(tmp / "tls")
        client = ClientTls(ca=str(ca.path("ca.pem"))).context()
        plain_port, tls_port = free_port(), free_port()
        plain = start_switch(write_config(tmp, "plain.db"), plain_port)
        secure = start_switch(write_config(tmp, "tls.db"), tls_port, "--tls-cert", str(ca.path("server.pem")),
                              "--tls-key", str(ca.path("server.key")))
        try:
            wait_port(plain_port)
            wait_port(tls_port)  # a bare connect: the TLS switch logs it as a handshake not begun
            keys = {None: sign_in(plain_port), "tls": sign_in(tls_port, client)}
            ports = {None: plain_port, "tls": tls_port}
            stan = {None: 2, "tls": 2}

            def frames(which: str | None, n: int) -> Path:
                pik, mak = keys[which]
                path = purchases(tmp / f"{which}-{stan[which]}.frames", pik, mak, stan[which], n)
                stan[which] += n
                return path

            def run(which: str | None, conns: int, depth: int, n: int) -> dict[str, float]:
                ctx = client if which else None
                return asyncio.run(pipelined(blast, ports[which], frames(which, n), conns, depth, n, ctx))

            for which in ports:  # warm both: first connections, SQLite pages, code paths
                run(which, 4, 4, 500)
            print("purchase with PIN (MAC verify, PIN verify, ledger commit, response MAC): TLS vs plaintext, "
                  f"best of {args.rounds} alternating rounds")
            head = ("load", "plain TPS", "TLS TPS", "TLS/plain", "plain p99", "TLS p99")
            print("{:>22} {:>10} {:>9} {:>9} {:>9} {:>8}".format(*head))
            for conns, depth in ((1, 1), (10, 8)):
                best: dict[str | None, dict[str, float]] = {}
                for _ in range(args.rounds):
                    for which in ports:
                        got = run(which, conns, depth, args.count)
                        if which not in best or got["tps"] > best[which]["tps"]:
                            best[which] = got
                p, t = best[None], best["tls"]
                p99 = (f"{p['p99_ms']:>8.2f}ms {t['p99_ms']:>6.2f}ms" if "p99_ms" in p else f"{'-':>9} {'-':>8}")
                print(f"{f'{conns} x {depth} pipelined':>22} {p['tps']:>10.0f} {t['tps']:>9.0f} "
                      f"{t['tps'] / p['tps']:>9.3f} {p99}")
            rates: dict[str | None, float] = {}
            for _ in range(args.rounds):
                for which in ports:
                    ctx = client if which else None
                    got_rate = asyncio.run(per_exchange(blast, ports[which], frames(which, args.connects),
                                                        args.connects, ctx))
                    rates[which] = max(rates.get(which, 0.0), got_rate)
            print(f"{'connection per exchange':>22} {rates[None]:>10.0f} {rates['tls']:>9.0f} "
                  f"{rates['tls'] / rates[None]:>9.3f}")
        finally:
            stop(plain, secure)


if __name__ == "__main__":
    main()
