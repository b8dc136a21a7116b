"""`switchsim decode`, `switchsim encode` and `switchsim specs`: the wire layer from a shell."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn

from specs import loader, reference
from specs.catalogue_loader import catalogue_for
from specs.codec import codec_for
from specs.dump import annotate, decode_wire, from_json, partial_dump, render_dump, to_json
from specs.errors import FramingError, SpecError, WireError
from switchsim.errors import EXIT_OK, UsageError


def register(sub: Any) -> None:
    dec = sub.add_parser("decode", help="decode a wire frame (hex) into an annotated dump or JSON")
    dec.add_argument("--dialect", default="cup-pos", help="dialect name or .toml file")
    dec.add_argument("--body", action="store_true", help="input starts at the MTI (no framing)")
    dec.add_argument("--json", action="store_true", help="print one JSON object")
    dec.add_argument("--unmasked", action="store_true", help="show PAN, tracks, PIN and keys")
    dec.add_argument("hex", help="the frame as hex, or - to read stdin")
    dec.set_defaults(func=_decode)

    enc = sub.add_parser("encode", help="encode a JSON object (as decode --json prints) to hex")
    enc.add_argument("--dialect", default="cup-pos", help="dialect name or .toml file")
    enc.add_argument("json", help="the message as JSON, or - to read stdin")
    enc.set_defaults(func=_encode)

    specs = sub.add_parser("specs", help="dialect data: list or show the generated reference")
    specs_sub = specs.add_subparsers(dest="specs_command", required=True)
    specs_sub.add_parser("list", help="list the built-in dialects").set_defaults(func=_list)
    show = specs_sub.add_parser("show", help="print a dialect's field reference or message table")
    show.add_argument("name")
    show.add_argument("--messages", action="store_true", help="the request kinds of its message catalogue")
    show.set_defaults(func=_show)


def _read(arg: str) -> str:
    if arg != "-":
        return arg
    # Bytes, decoded here: the locale's error handler would turn bad bytes into other errors.
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("standard input is not UTF-8 text") from None


def _fail(message: str) -> NoReturn:
    raise UsageError(message)


def _decode(args: argparse.Namespace) -> int:
    text = "".join(_read(args.hex).split())
    try:
        wire = bytes.fromhex(text)
    except ValueError:
        return _fail("input is not hexadecimal")
    codec = codec_for(args.dialect)
    try:
        decoded = decode_wire(codec, wire, body_only=args.body)
    except FramingError as exc:
        return _fail(str(exc))
    except WireError as exc:
        # What could be read, field by field, then where and why the rest could not.
        if not args.json:
            print(render_dump(partial_dump(codec, wire, body_only=args.body, unmasked=args.unmasked)))
        return _fail(str(exc))
    if args.json:
        print(json.dumps(to_json(decoded, unmasked=args.unmasked)))
    else:
        print(render_dump(annotate(codec, decoded, unmasked=args.unmasked)))
    return EXIT_OK


def _encode(args: argparse.Namespace) -> int:
    try:
        obj = json.loads(_read(args.json))
    except json.JSONDecodeError as exc:
        return _fail(f"input is not JSON: {exc.msg} at position {exc.pos}")
    try:
        wire = from_json(codec_for(args.dialect), obj)
    except (WireError, SpecError) as exc:
        return _fail(str(exc))
    print(wire.hex().upper())
    return EXIT_OK


def _list(_args: argparse.Namespace) -> int:
    names = loader.available()
    width = max(len(name) for name in names) + 1
    for name in names:
        print(f"{name:<{width}} {loader.load(name).description}")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    try:
        dialect = loader.load(args.name)
        text = reference.render_messages(catalogue_for(dialect)) if args.messages else reference.render(dialect)
        print(text, end="")
    except SpecError as exc:
        return _fail(str(exc))
    return EXIT_OK
