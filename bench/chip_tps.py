"""Chip purchase TPS through the whole switch path, beside the magnetic purchase with PIN in the
same run, same client (docs/chip.md).

usage: python bench/chip_tps.py [--shared ../shared] [--count 3000]

The switch runs as its own process (in-process HSM, SQLite store). One terminal signs in; then
pre-encoded chip purchases (22 = 051, a PIN block, field 55 in the sale order with an ARQC the
card computed for its own ATC) are driven by ../shared/bench/blast.py. Beyond a magnetic
purchase, each costs the switch: 55 parsed and its mandatory tags checked, the ARQC input
rebuilt, one KQ (verify + ARPC) to the HSM and 91 in the answer. The baseline is the same
number of magnetic purchases with PIN (bench/switch_tps.py's frames) against the same switch.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harness import ROOT, blast, free_port, start_switch, stop, wait_port
from switch_tps import MERCHANT, PIN, TERMINAL, TMK, purchases, sign_in, wire

from hsm_sim.ciphers import tdes_ecb_encrypt
from hsm_sim.emv import Cryptograms, Scheme, arqc_data, icc_master_key, pan_psn_block
from hsm_sim.pinblock import PinBlockFormat, build_pinblock
from specs.codec import codec_for
from specs.tlv import Tlv, build

CODEC = codec_for("cup-pos")
CHIP_PAN, PSN = "6228000100001", "01"
IMK = bytes.fromhex("F0C34A8124CEE0A91A0B034AA97D6EAC")  # the published PBOC example's IMK-AC
IAD = bytes.fromhex("07010103A000000100000000000000000000")
_SALE = ("9F26", "9F27", "9F10", "9F37", "9F36", "95", "9A", "9C", "9F02", "5F2A", "82", "9F1A", "9F03", "9F33",
         "9F34", "9F35", "84")


def chip_purchases(path: Path, pik: bytes, mak: bytes, first_stan: int, n: int, first_atc: int) -> Path:
    card_key = icc_master_key(IMK, pan_psn_block(CHIP_PAN, PSN))
    block = tdes_ecb_encrypt(pik, build_pinblock(PinBlockFormat.ISO0, PIN, CHIP_PAN)).hex().upper()
    frames = bytearray()
    for i in range(n):
        atc = (first_atc + i).to_bytes(2, "big")
        values = {
            "9F02": bytes.fromhex("000000000100"), "9F03": bytes(6), "9F1A": b"\x01\x56", "95": bytes(5),
            "5F2A": b"\x01\x56", "9A": bytes.fromhex("261201"), "9C": b"\x00", "9F37": (i + 1).to_bytes(4, "big"),
            "82": b"\x7c\x00", "9F36": atc, "9F10": IAD, "9F27": b"\x80", "9F33": bytes.fromhex("E0E1C8"),
            "9F34": bytes.fromhex("420300"), "9F35": b"\x22", "84": bytes.fromhex("A000000333010101"),
        }
        objects = {tag: Tlv(tag, value) for tag, value in values.items()}
        card = Cryptograms.of(Scheme.PBOC, card_key, atc, values["9F37"])
        objects["9F26"] = Tlv("9F26", card.arqc(arqc_data(Scheme.PBOC, objects)))
        message = CODEC.message(
            "0200",
            {
                2: CHIP_PAN, 3: "000000", 4: "000000000100", 11: f"{first_stan + i:06d}", 14: "3012", 22: "051",
                23: "0" + PSN, 25: "00", 26: "12", 41: TERMINAL, 42: MERCHANT, 49: "156", 52: block,
                53: "2600000000000000", 55: build(objects[t] for t in _SALE).hex().upper(), 60: "2200000100060",
            },
        )
        frames += wire(message, mak)
    path.write_bytes(bytes(frames))
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args()
    shared = Path(args.shared)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        config = tmp / "switch.toml"
        config.write_text(
            f'[server]\nhost = "127.0.0.1"\ndb = "{tmp / "bench.db"}"\n\n'
            f'[[terminals]]\nmerchant = "{MERCHANT}"\nterminal = "{TERMINAL}"\ntmk = "{TMK.hex()}"\n\n'
            f'[[cards]]\npan = "6222021234567890123"\nexpiry = "3012"\npin = "{PIN}"\nbalance = 900000000000\n\n'
            f'[[cards]]\npan = "{CHIP_PAN}"\nexpiry = "3012"\npin = "{PIN}"\nbalance = 900000000000\n'
            f'service_code = "220"\nchip = true\nimk_ac = "{IMK.hex().upper()}"\npsn = "{PSN}"\n'
        )
        port = free_port()
        switch = start_switch(config, port)
        try:
            wait_port(port)
            pik, mak = sign_in(port)
            stan, atc = 2, 1
            warm = chip_purchases(tmp / "warm.frames", pik, mak, stan, 300, atc)
            result = blast(shared, port, warm, 4, 300)
            assert result["received"] == 300, result
            stan, atc = stan + 300, atc + 300
            print("chip purchase (55, ARQC verify + ARPC by KQ, 91) vs magnetic purchase with PIN, same switch")
            head = ("conns x depth", "chip TPS", "p50 ms", "p99 ms", "stripe TPS", "ratio")
            print("{:>13} {:>9} {:>7} {:>7} {:>10} {:>6}".format(*head))
            for conns, depth in ((1, 1), (10, 1), (10, 8)):
                # one connection, one in flight: the ATCs reach the switch in order
                chips = chip_purchases(tmp / f"c{stan}.frames", pik, mak, stan, args.count, atc)
                stan, atc = stan + args.count, atc + args.count
                stripe = purchases(tmp / f"m{stan}.frames", pik, mak, stan, args.count)
                stan += args.count
                ours = blast(shared, port, chips, conns, args.count, depth)
                base = blast(shared, port, stripe, conns, args.count, depth)
                p50, p99 = ours.get("p50_ms", float("nan")), ours.get("p99_ms", float("nan"))
                print(
                    f"{f'{conns} x {depth}':>13} {ours['tps']:>9.0f} {p50:>7.2f} {p99:>7.2f} "
                    f"{base['tps']:>10.0f} {ours['tps'] / base['tps']:>6.3f}"
                )
        finally:
            stop(switch)


if __name__ == "__main__":
    main()
