"""Codec cost per message: the fast path beside the reference path and raw pyiso8583, same run.

usage: python bench/codec.py [--n 20000] [--rounds 5]
Prints microseconds per decode and encode (best of ``--rounds``) by three routes: ``fast``, the
codec as the switch runs it (specs/fastcodec.py, falling back to pyiso8583 only on a bad
message); ``ref``, the same codec forced down its reference path (pyiso8583 plus the codec's
own checks, what every message took before the fast path); ``raw``, bare pyiso8583 with the
very spec the dialect builds. ``speedup`` is ref / fast; ``vs raw`` is fast / raw, what the
codec costs beside bare pyiso8583.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import iso8583
from harness import CUP_PURCHASE_0200, per_call_us

from specs.codec import Codec, codec_for
from specs.message import Message

CASES: dict[str, tuple[str, str, dict[int, str]]] = {
    "iso87-binary 0800": (
        "iso87-binary",
        "0800",
        {7: "1122123456", 11: "000123", 70: "301"},
    ),
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
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{'message':<24} {'op':<7} {'fast us':>8} {'ref us':>8} {'raw us':>8} {'speedup':>8} {'vs raw':>7}")
    for label, (dialect, mti, fields) in CASES.items():
        measure(label, dialect, mti, fields, args.n, args.rounds)


def measure(label: str, dialect: str, mti: str, fields: dict[int, str], n: int, rounds: int) -> None:
    codec: Codec = codec_for(dialect)
    message: Message = codec.message(mti, fields)
    body = codec.encode(message)
    assert codec._fast.decode(body) is not None, "the fast path must take this message"
    assert codec._encode_reference(message)[0] == body
    spec = codec._spec
    raw_doc = {"t": mti, **{str(k): v for k, v in message.fields.items()}}
    decode = best_of(
        (
            lambda: codec.decode(body),
            lambda: codec._decode(body, True, fast_path=False),
            lambda: iso8583.decode(body, spec),
        ),
        n,
        rounds,
    )
    encode = best_of(
        (
            lambda: codec.encode(message),
            lambda: codec._encode_reference(message),
            lambda: iso8583.encode(dict(raw_doc), spec),
        ),
        n,
        rounds,
    )
    for op, (fast, ref, raw) in (("decode", decode), ("encode", encode)):
        print(f"{label:<24} {op:<7} {fast:>8.1f} {ref:>8.1f} {raw:>8.1f} {ref / fast:>7.1f}x {fast / raw:>7.2f}")


def best_of(routes: tuple[Callable[[], object], ...], n: int, rounds: int) -> tuple[float, ...]:
    """Microseconds per call of each route, best of ``rounds``; the routes take turns within
    each round, so a shared machine's load falls on all of them alike."""
    best = [float("inf")] * len(routes)
    for _ in range(rounds):
        for i, route in enumerate(routes):
            best[i] = min(best[i], per_call_us(route, n, 1))
    return tuple(best)


if __name__ == "__main__":
    main()
