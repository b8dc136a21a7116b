"""Purchase-with-PIN TPS through the whole switch path, beside the bare echo host, same client.

usage: python bench/switch_tps.py [--shared ../shared] [--count 4000] [--log-exchanges on|off]

The switch runs as its own process (in-process HSM, SQLite store). One terminal signs in; then
pre-encoded purchases (each with its own STAN, a PIN block under the session PIK and the
UnionPay POS MAC under the MAK) are driven by ../shared/bench/blast.py. Every purchase costs the
switch: decode, MAC verify (M8), PIN verify (BC), card checks, one ledger commit with the
balance change, MAC on the answer (M6), journal and log. The same frames go to
../shared/bench/echo_limit.py for the ceiling of a Python host on this machine.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import tempfile
from pathlib import Path

from harness import ROOT, blast, free_port, start_echo, start_switch, stop, wait_port

from hsm_sim.ciphers import tdes_ecb_decrypt, tdes_ecb_encrypt
from hsm_sim.mac import cup_pos_mac
from hsm_sim.pinblock import PinBlockFormat, build_pinblock
from specs.codec import codec_for
from specs.framing import CupHeader, Tpdu, decode_frame, encode_frame
from specs.message import Message

MERCHANT, TERMINAL = "848100058126002", "00000764"
TMK = bytes.fromhex("11" * 16)
PAN, PIN = "6222021234567890123", "123456"
CODEC = codec_for("cup-pos")
TPDU, HEADER = Tpdu.from_hex("6000000000"), CupHeader.from_hex("603100000000")


def wire(message: Message, mak: bytes | None = None) -> bytes:
    if mak is not None:
        body = CODEC.encode(message.replace(f64="0" * 16), validate=False)
        message = message.replace(f64=cup_pos_mac(mak, body[:-8]).hex().upper())
    return encode_frame(CODEC.dialect.framing, CODEC.encode(message), tpdu=TPDU, header=HEADER)


def write_config(tmp: Path, db: str = "bench.db") -> Path:
    """The switch's config: the terminal, and the card with a balance no run exhausts; ``db`` a
    file name in ``tmp``, or a store URL (postgresql://...)."""
    url = "://" in db
    config = tmp / ("store-url.toml" if url else f"{Path(db).stem}.toml")
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\ndb = "{db if url else tmp / db}"\n\n'
        f'[[terminals]]\nmerchant = "{MERCHANT}"\nterminal = "{TERMINAL}"\ntmk = "{TMK.hex()}"\n\n'
        f'[[cards]]\npan = "{PAN}"\nexpiry = "3012"\npin = "{PIN}"\nbalance = 900000000000\n'
    )
    return config


def sign_in(port: int, tls: ssl.SSLContext | None = None) -> tuple[bytes, bytes]:
    """(PIK, MAK) in clear, as the terminal's PED holds them (over TLS with ``tls``)."""
    request = CODEC.message("0800", {11: "000001", 41: TERMINAL, 42: MERCHANT, 60: "00000001003", 63: "001"})
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        tls.wrap_socket(raw, server_hostname="127.0.0.1") if tls is not None else raw as s,
    ):
        s.sendall(wire(request))
        data = b""
        while len(data) < 2 or len(data) < 2 + int.from_bytes(data[:2], "big"):
            data += s.recv(4096)
    reply = CODEC.decode(decode_frame(CODEC.dialect.framing, data).body)
    keys = bytes.fromhex(reply[62])
    return tdes_ecb_decrypt(TMK, keys[:16]), tdes_ecb_decrypt(TMK, keys[20:28])


def purchases(path: Path, pik: bytes, mak: bytes, first_stan: int, n: int) -> Path:
    block = tdes_ecb_encrypt(pik, build_pinblock(PinBlockFormat.ISO0, PIN, PAN)).hex().upper()
    frames = bytearray()
    for stan in range(first_stan, first_stan + n):
        message = CODEC.message(
            "0200",
            {
                3: "000000",
                4: "000000000100",
                11: f"{stan:06d}",
                22: "021",
                25: "00",
                26: "12",
                35: f"{PAN}D30121010000",
                41: TERMINAL,
                42: MERCHANT,
                49: "156",
                52: block,
                53: "2600000000000000",
                60: "22000001000",
            },
        )
        frames += wire(message, mak)
    path.write_bytes(bytes(frames))
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--log-exchanges", choices=("on", "off"), default="on", help="serve --log-exchanges")
    args = parser.parse_args()
    shared = Path(args.shared)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        config = write_config(tmp)
        switch_port, echo_port = free_port(), free_port()
        switch, echo = (
            start_switch(config, switch_port, "--log-exchanges", args.log_exchanges),
            start_echo(shared, echo_port),
        )
        try:
            wait_port(switch_port)
            wait_port(echo_port)
            pik, mak = sign_in(switch_port)
            stan = 2
            frames = purchases(tmp / "warm.frames", pik, mak, stan, 500)
            result = blast(shared, switch_port, frames, 4, 500)
            assert result["received"] == 500, result
            stan += 500
            print("purchase with PIN (MAC verify, PIN verify, ledger commit, response MAC) vs bare echo host")
            head = ("conns x depth", "switch TPS", "p50 ms", "p99 ms", "echo TPS", "ratio")
            print("{:>13} {:>10} {:>7} {:>7} {:>9} {:>6}".format(*head))
            for conns, depth in ((1, 1), (1, 8), (10, 1), (10, 8)):
                frames = purchases(tmp / f"p{stan}.frames", pik, mak, stan, args.count)
                stan += args.count
                ours = blast(shared, switch_port, frames, conns, args.count, depth)
                base = blast(shared, echo_port, frames, conns, args.count, depth)
                p50, p99 = ours.get("p50_ms", float("nan")), ours.get("p99_ms", float("nan"))
                print(
                    f"{f'{conns} x {depth}':>13} {ours['tps']:>10.0f} {p50:>7.2f} {p99:>7.2f} "
                    f"{base['tps']:>9.0f} {ours['tps'] / base['tps']:>6.3f}"
                )
        finally:
            stop(switch, echo)


if __name__ == "__main__":
    main()
