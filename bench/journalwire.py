"""What keeping each frame masked in the journal costs per exchange, beside the codec's own work.

usage: python bench/journalwire.py [--n 5000]
For a cup-pos purchase and its answer (PAN and track in both: the answer echoes 2), prints the
microseconds of `switch.journalwire.views` for the request (decoded already: offsets known) and
for the answer (built, so decoded again to find its sensitive bytes), and the ratio to a decode
plus an encode of the same request measured in the same run (what the switch spends anyway).
"""

from __future__ import annotations

import argparse

from harness import CUP_PURCHASE_0200, per_call_us

from specs.codec import codec_for
from specs.framing import Tpdu, encode_frame
from switch.journalwire import views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    n = parser.parse_args().n
    codec = codec_for("cup-pos")
    request = codec.message("0200", CUP_PURCHASE_0200)
    body = codec.encode(request)
    wire = encode_frame(codec.dialect.framing, body, tpdu=Tpdu.from_hex("6000000138"))
    decoded = codec.decode(body)
    answer = codec.message(
        "0210",
        {
            **{k: v for k, v in CUP_PURCHASE_0200.items() if k in (2, 3, 4, 11, 41, 42, 60)},
            39: "00",
            37: "263350000010",
        },
    )
    answer_wire = encode_frame(codec.dialect.framing, codec.encode(answer), tpdu=Tpdu.from_hex("6001380000"))
    baseline = per_call_us(lambda: codec.encode(codec.decode(body)), n)
    incoming = per_call_us(lambda: views(codec, wire, decoded, keep_raw=False), n)
    outgoing = per_call_us(lambda: views(codec, answer_wire, answer, keep_raw=False), n)
    print("journal wire views, cup-pos purchase (us per call; ratio to decode+encode of the request)")
    print(f"  baseline decode+encode  {baseline:8.1f}")
    print(f"  request (offsets known) {incoming:8.1f}  {incoming / baseline:5.2f}")
    print(f"  answer (decoded again)  {outgoing:8.1f}  {outgoing / baseline:5.2f}")


if __name__ == "__main__":
    main()
