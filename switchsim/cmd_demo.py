"""`switchsim demo`: what `make demo` runs. Grows with the product."""

from __future__ import annotations

import argparse
from typing import Any

from specs.codec import codec_for
from specs.dump import annotate, decode_wire, render_dump
from specs.framing import CupHeader, Tpdu, encode_frame

# The published UnionPay sign-in request (shared/vectors/cup_pos.json, examples[0]).
_SIGNIN_FIELDS = {11: "000105", 41: "00000764", 42: "848100058126002", 60: "00000001003", 63: "001"}


def register(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run the built-in demonstration")
    demo.set_defaults(func=run)


def run(_args: argparse.Namespace) -> int:
    codec = codec_for("cup-pos")
    body = codec.encode(codec.message("0800", _SIGNIN_FIELDS))
    wire = encode_frame(
        codec.dialect.framing,
        body,
        tpdu=Tpdu.from_hex("6000000138"),
        header=CupHeader.from_hex("613100311108"),
    )
    print("UnionPay POS sign-in (0800, 60.3 = 003) as it goes on the wire:")
    print(wire.hex().upper())
    print()
    print(render_dump(annotate(codec, decode_wire(codec, wire))))
    return 0
