"""Codec cost per message: switchsim's codec beside raw pyiso8583 on the same message, same run.

usage: python bench/codec.py [--n 20000]
Prints microseconds per decode and encode and the ratio ours / raw pyiso8583 (the baseline is
pyiso8583 with the very spec our dialect builds, so the ratio is what our layer adds).
"""

from __future__ import annotations

import argparse

import iso8583
from harness import CUP_PURCHASE_0200, per_call_us

from specs.codec import Codec, codec_for
from specs.message import Message

CASES: dict[str, tuple[str, str, dict[int, str]]] = {
    "cup-pos 0200 purchase": (
        "cup-pos",
        "0200",
        CUP_PURCHASE_0200,
    ),
    "cup-pos 0800 sign-in": (
        "cup-pos",
        "0800",
        {11: "000105", 41: "00000764", 42: "848100058126002", 60: "00000001003", 63: "001"},
    ),
    "iso87-binary 0200": (
        "iso87-binary",
        "0200",
        {
            2: "4761739001010010",
            3: "000000",
            4: "000000010000",
            7: "1122123456",
            11: "000123",
            12: "123456",
            13: "1122",
            14: "2512",
            22: "051",
            25: "00",
            35: "4761739001010010=25121011234",
            37: "000000000123",
            41: "00000764",
            42: "848100058126002",
            49: "156",
            52: "0123456789ABCDEF",
        },
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    print(f"{'message':<24} {'op':<7} {'ours us':>9} {'pyiso8583 us':>13} {'ratio':>7}")
    for label, (dialect, mti, fields) in CASES.items():
        measure(label, dialect, mti, fields, args.n)


def measure(label: str, dialect: str, mti: str, fields: dict[int, str], n: int) -> None:
    codec: Codec = codec_for(dialect)
    message: Message = codec.message(mti, fields)
    body = codec.encode(message)
    spec = codec._spec
    raw_doc = {"t": mti, **{str(k): v for k, v in message.fields.items()}}
    ours_dec = per_call_us(lambda: codec.decode(body), n)
    raw_dec = per_call_us(lambda: iso8583.decode(body, spec), n)
    ours_enc = per_call_us(lambda: codec.encode(message), n)
    raw_enc = per_call_us(lambda: iso8583.encode(dict(raw_doc), spec), n)
    print(f"{label:<24} {'decode':<7} {ours_dec:>9.1f} {raw_dec:>13.1f} {ours_dec / raw_dec:>7.2f}")
    print(f"{label:<24} {'encode':<7} {ours_enc:>9.1f} {raw_enc:>13.1f} {ours_enc / raw_enc:>7.2f}")


if __name__ == "__main__":
    main()
