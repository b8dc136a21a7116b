"""ARQC verification + ARPC (KQ mode 1) per second beside CA, in process and over TCP.

usage: python bench/emv.py [--seconds 3] [--connections 4] [--depth 64] [--tasks 128]

The chip load is KQ mode 1, scheme P (PBOC CVN 01) on the card of emv.json's PBOC example B:
card key from the IMK-AC, PBOC session key, MAC over 37 bytes, ARPC. The baseline, measured in
the same run with the same machinery (bench/hsm.py), is CA (translate a PIN block TPK -> ZPK),
the HSM command every magnetic purchase costs. Rows:

* the crypto core alone (``hsm_sim.emv``: derive, verify, ARPC; no parsing);
* ``Dispatcher.handle`` in a loop (parsing, LMK decryption, the core);
* our TCP server in its own process: C connections x D requests in flight, then one request at
  a time, then through ``TcpTransport`` (our client) with many concurrent callers.

Every KQ answer is checked against the ARPC published in emv.json; CA as bench/hsm.py checks it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from hsm import (
    INPROC,
    SEQUENTIAL,
    Load,
    Measured,
    Result,
    bench_inproc,
    bench_pipelined,
    bench_sequential,
    bench_transport,
    build_loads,
    print_table,
    run_sync,
    start_ours,
    stop,
)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hsm_sim import emv  # noqa: E402
from hsm_sim.dispatcher import Dispatcher  # noqa: E402
from hsm_sim.keys import fix_parity  # noqa: E402
from hsm_sim.lmk import Lmk  # noqa: E402
from switchsim import logs  # noqa: E402

VECTORS = REPO.parent / "shared" / "vectors" / "emv.json"


def kq_load(lmk: Lmk) -> tuple[Load, dict[str, bytes]]:
    """KQ mode 1 scheme P for PBOC example B, expecting its published ARPC for ARC '01'."""
    b = json.loads(VECTORS.read_text())["pboc_cvn01_examples"][1]
    h = bytes.fromhex
    imk = fix_parity(h(b["imk_ac"]))  # DES ignores parity; under the LMK it must be odd
    mk_ac = b"U" + lmk.encrypt_key("109", imk).hex().upper().encode()
    y = h((b["pan"] + b["psn"]).rjust(16, "0")[-16:])
    atc, un, data, arqc = h(b["atc"]), h(b["pboc_input_from_tags"]["9F37"]), h(b["arqc_input"]), h(b["arqc"])
    arc, arpc = h(b["arpc"][0]["arc"]), h(b["arpc"][0]["arpc"])
    message = b"KQ1P" + mk_ac + y + atc + un + f"{len(data):02X}".encode() + data + b";" + arqc + arc
    expected = b"KR00" + arpc
    parts = {"imk": imk, "y": y, "atc": atc, "un": un, "data": data, "arqc": arqc, "arc": arc, "arpc": arpc}
    return Load("KQ", message, lambda answer: answer == expected), parts


def bench_core(parts: dict[str, bytes], seconds: float) -> Measured:
    """hsm_sim.emv alone: what KQ costs without parsing or the LMK."""
    imk, y, atc, un, data, arqc, arc = (parts[k] for k in ("imk", "y", "atc", "un", "data", "arqc", "arc"))

    def once() -> bytes:
        card_key = emv.icc_master_key(imk, y)
        if not emv.verify_arqc(emv.Scheme.PBOC, card_key, atc, un, data, arqc):
            raise SystemExit("the crypto core does not verify the published ARQC")
        return emv.arpc(emv.Scheme.PBOC, card_key, atc, un, arqc, arc)

    if once() != parts["arpc"]:
        raise SystemExit("the crypto core's ARPC is not the published one")

    def step() -> int:
        for _ in range(100):
            once()
        return 100

    return run_sync(step, seconds, None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring window per row")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--depth", type=int, default=64, help="requests in flight per connection")
    parser.add_argument("--tasks", type=int, default=128, help="callers for the TcpTransport rows")
    args = parser.parse_args()
    logs.configure("warning")

    lmk = Lmk.default()
    ca, _, _ = build_loads(lmk)
    kq, parts = kq_load(lmk)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"{args.seconds:g} s per row; median of 0.5 s slices",
        flush=True,
    )
    results: list[Result] = []
    core = "in process: hsm_sim.emv only (no parsing, no LMK)"
    results.append(Result("switchsim", "KQ", core, bench_core(parts, args.seconds)))
    dispatcher = Dispatcher(lmk)
    for load in (ca, kq):
        results.append(Result("switchsim", load.name, INPROC, bench_inproc(load, dispatcher, args.seconds)))

    proc, port = start_ours()
    pipelined = f"TCP, {args.connections} conns x depth {args.depth}, raw client"
    transport = f"TCP via TcpTransport, pool 4, {args.tasks} callers"
    try:
        for load in (ca, kq):
            measured = asyncio.run(bench_pipelined(port, load, args.connections, args.depth, args.seconds, proc.pid))
            results.append(Result("switchsim", load.name, pipelined, measured))
        for load in (ca, kq):
            measured = bench_sequential(port, load, args.seconds, proc.pid)
            results.append(Result("switchsim", load.name, SEQUENTIAL, measured))
        for load in (ca, kq):
            measured = asyncio.run(bench_transport(port, load, args.tasks, args.seconds, proc.pid))
            results.append(Result("switchsim", load.name, transport, measured))
    finally:
        stop(proc)

    print_table(results)
    print()
    rate = {(r.command, r.mode): r.measured.rate for r in results}
    for mode in (INPROC, pipelined, SEQUENTIAL, transport):
        print(f"KQ/CA {mode}: {rate[('KQ', mode)] / rate[('CA', mode)]:.2f}")
    print(f"KQ in Dispatcher.handle vs the crypto core alone: {rate[('KQ', INPROC)] / rate[('KQ', core)]:.2f}")
    cpu = {
        (r.command, r.mode): (r.measured.server_cpu or r.measured.client_cpu or 0) / r.measured.rate * 1e6
        for r in results
    }
    print(
        f"CPU per command in the TCP server: KQ {cpu[('KQ', pipelined)]:.1f} us, CA {cpu[('CA', pipelined)]:.1f} us; "
        f"one core's ceiling over TCP: {1e6 / cpu[('KQ', pipelined)]:,.0f} KQ/s"
    )
    print(f"finished {time.strftime('%Y-%m-%d %H:%M:%S')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
