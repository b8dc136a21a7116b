"""Microseconds per M6, M8 and BC through ``HsmClient`` on the in-process transport, this tree
against the tree before the in-process fast path, in the same run.

usage: python bench/hsm_client.py [--rounds 7] [--calls 3000] [--mac-bytes 150] [--baseline REV]

A cup-pos purchase with PIN costs the switch three HSM commands, and with the default
in-process HSM all three run on the switch's own core: BC (the PIN against the card's PIN under
the LMK), M8 (the request's MAC) and M6 (the response's MAC), each called as
``switch/keyservice.py`` calls it (CUP POS MAC, key type 003; ISO format 0, format code 01).

The baseline is the tree at ``--baseline`` (default: the commit before the fast path), taken out
with ``git archive`` into a temporary directory. Each tree is timed in a process of its own
(this file run with ``--child TREE``); the rounds alternate between the two trees and the best
round of each is kept (a round keeps its quickest chunk of 250 calls), so a burst of other work
on this shared machine moves both alike. Times are CPU time of the timing process
(``time.process_time``), not wall time: what a command costs the switch's core, with the waits
for a core that other processes hold left out.

Every answer is checked against values computed here with ``cryptography`` alone: the CUP POS
MAC as ../shared/vectors/cup_pos.json ("pos_ecb_mac") defines it, the ISO 9564-1 format 0 block
by hand; M8 and BC are also asked once with a wrong MAC and a wrong PIN, which must not verify.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The expected values come from the tests' independent implementations, not from hsm_sim.
from tests.switch.independent import cup_pos_mac, ecb_encrypt

REPO = Path(__file__).resolve().parents[1]
#: The last commit before the in-process fast path (FixedRun, one-encryptor CUP MAC, client).
BASELINE = "c6f4992"
COMMANDS = ("BC", "M8", "M6")
CHUNK = 250  # calls timed together; a round keeps its quickest chunk

# Clear test keys (odd parity). Not secrets: test values for this benchmark.
TPK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
MAK = bytes.fromhex("4C4C4C4C4C4C4C4C8F8F8F8F8F8F8F8F")
PIN = "1234"
ACCOUNT = "400000123456"


def iso0_block(pin: str, account: str) -> bytes:
    pin_field = bytes.fromhex(f"0{len(pin)}{pin}".ljust(16, "F"))
    pan_field = bytes.fromhex("0000" + account)
    return bytes(a ^ b for a, b in zip(pin_field, pan_field, strict=True))


# --- the child: one tree, one round ------------------------------------------------------------


def child(tree: Path, calls: int, mac_bytes: int) -> dict[str, float]:
    sys.path.insert(0, str(tree))
    import hsm_sim
    from hsm_sim.client import HsmClient, MacAlgorithm
    from hsm_sim.commands.lmkpin import encrypt_pin
    from hsm_sim.dispatcher import Dispatcher
    from hsm_sim.lmk import Lmk
    from hsm_sim.transports.inproc import InProcTransport

    if not Path(hsm_sim.__path__[0]).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"imported hsm_sim from {hsm_sim.__path__[0]}, not from {tree}")
    lmk = Lmk.default()
    tpk = "U" + lmk.encrypt_key("002", TPK).hex().upper()
    mak = "U" + lmk.encrypt_key("003", MAK).hex().upper()
    pin_lmk = encrypt_pin(lmk, PIN, ACCOUNT)
    block = ecb_encrypt(TPK, iso0_block(PIN, ACCOUNT)).hex().upper()
    wrong_block = ecb_encrypt(TPK, iso0_block("4321", ACCOUNT)).hex().upper()
    data = bytes(range(256))[:mac_bytes] if mac_bytes <= 256 else os.urandom(mac_bytes)
    mac = cup_pos_mac(MAK, data).decode("ascii")
    wrong_mac = f"{int(mac, 16) ^ 1:08X}"
    client = HsmClient(InProcTransport(Dispatcher(lmk)))
    cup = MacAlgorithm.CUP_POS

    calls_of: dict[str, Callable[[], Awaitable[object]]] = {
        "BC": lambda: client.verify_terminal_pin_comparison(tpk, block, "01", ACCOUNT, pin_lmk),
        "M8": lambda: client.verify_mac("003", mak, data, mac, cup),
        "M6": lambda: client.generate_mac("003", mak, data, cup),
    }

    async def run() -> dict[str, float]:
        checks = {
            "BC": (True, await client.verify_terminal_pin_comparison(tpk, wrong_block, "01", ACCOUNT, pin_lmk)),
            "M8": (True, await client.verify_mac("003", mak, data, wrong_mac, cup)),
            "M6": (mac, None),
        }
        out: dict[str, float] = {}
        for name in COMMANDS:
            call = calls_of[name]
            expected, wrong = checks[name]
            if await call() != expected or wrong not in (None, False):
                raise SystemExit(f"{tree}: {name} answered wrongly")
            for _ in range(200):  # warm up
                await call()
            best = float("inf")
            for _ in range(max(1, calls // CHUNK)):  # the quietest chunk: least disturbed by others
                start = time.process_time()
                for _ in range(CHUNK):
                    await call()
                best = min(best, time.process_time() - start)
            out[name] = best / CHUNK * 1e6
        return out

    return asyncio.run(run())


# --- the parent: alternate the trees, keep the best round --------------------------------------


def extract(rev: str, into: Path) -> None:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "hsm_sim", "specs"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise SystemExit(f"git archive {rev} failed: {archive.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")


def one_round(tree: Path, calls: int, mac_bytes: int) -> dict[str, float]:
    args = [sys.executable, __file__, "--child", str(tree), "--calls", str(calls), "--mac-bytes", str(mac_bytes)]
    done = subprocess.run(args, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": ""})
    if done.returncode != 0:
        raise SystemExit(f"round in {tree} failed:\n{done.stderr}{done.stdout}")
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds per tree (alternating)")
    parser.add_argument("--calls", type=int, default=3000, help="calls of each command per round")
    parser.add_argument("--mac-bytes", type=int, default=150, help="MAC input size (a cup-pos 0200 is ~150)")
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare against")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.calls, args.mac_bytes)))
        return 0

    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"{args.rounds} alternating rounds of {args.calls} calls per command and tree, best round kept; "
        f"MAC input {args.mac_bytes} bytes; baseline {args.baseline}",
        flush=True,
    )
    best: dict[str, dict[str, float]] = {"before": {}, "after": {}}
    with tempfile.TemporaryDirectory(prefix="hsm-baseline-") as tmp:
        extract(args.baseline, Path(tmp))
        trees = {"before": Path(tmp), "after": REPO}
        for _ in range(args.rounds):
            for label, tree in trees.items():
                for name, us in one_round(tree, args.calls, args.mac_bytes).items():
                    best[label][name] = min(us, best[label].get(name, us))
    print(f"\nCPU microseconds per command\n{'command':<34} {'before':>10} {'after':>9} {'ratio':>7}")
    print("-" * 63)
    names = {"BC": "BC verify PIN (comparison)", "M8": "M8 verify CUP POS MAC", "M6": "M6 generate CUP POS MAC"}
    for name in COMMANDS:
        before, after = best["before"][name], best["after"][name]
        print(f"{names[name]:<34} {before:>10.1f} {after:>9.1f} {before / after:>6.2f}x")
    total_before = sum(best["before"].values())
    total_after = sum(best["after"].values())
    label = "a purchase's three (BC + M8 + M6)"
    print(f"{label:<34} {total_before:>10.1f} {total_after:>9.1f} {total_before / total_after:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
