"""The human-readable references of a dialect, generated from its data (never by hand): the
field reference and the message table of its catalogue."""

from __future__ import annotations

from pathlib import Path

from specs.catalogue import Catalogue, MessageKind
from specs.dialect import Dialect, Encoding
from specs.response import render_meanings


def render(dialect: Dialect) -> str:
    fmt = dialect.framing
    lines = [
        f"# {dialect.name}",
        "",
        dialect.description,
        "",
        f"Source: {dialect.source}" if dialect.source else "",
        "",
        "## Frame",
        "",
        " | ".join(
            part
            for part in (
                f"length ({fmt.length.value})" if fmt.length.size else "",
                "TPDU (5 bytes)" if fmt.tpdu else "",
                "UnionPay header (6 bytes)" if fmt.cup_header else "",
                f"MTI ({dialect.mti_encoding.value})",
                f"bitmap ({dialect.bitmap_encoding.value})",
                "fields",
            )
            if part
        ),
        f"Maximum frame: {fmt.max_frame} bytes.",
        f"Numeric data: {dialect.numeric_encoding.value}; "
        f"LL/LLL lengths: {dialect.length_encoding.value}"
        + (" (digits for n/z, bytes otherwise)" if dialect.length_encoding is Encoding.BCD else "")
        + "; b fields: "
        + (
            "hex text, two characters a byte (an LL/LLL length counts bytes)"
            if dialect.binary_encoding is Encoding.HEX
            else "raw bytes"
        ),
        "",
        "## Fields",
        "",
        f"{'no':>3}  {'format':<10} {'align':<6} {'mask':<6} name",
    ]
    for spec in dialect.fields.values():
        align = spec.align.value if spec.type.counts_digits else ""
        mask = spec.sensitivity.value if spec.sensitivity.value != "none" else ""
        note = f" ({spec.note})" if spec.note else ""
        lines.append(f"{spec.number:>3}  {spec.format_label():<10} {align:<6} {mask:<6} {spec.name}{note}")
        for sub in spec.subfields:
            opt = ", optional" if sub.optional else ""
            lines.append(f"{'':>5}{sub.id:<8} {sub.length} long{opt}: {sub.name}")
    if dialect.messages:
        lines += [
            "",
            "## Messages",
            "",
            "A response's mandatory set is an approval's (39 = 00); any other answer carries its refusal set.",
            "",
            f"{'MTI':<5} {'mandatory':<30} {'refusal':<8} {'forbidden':<22} name",
        ]
        for rule in dialect.messages.values():
            mand = ",".join(str(n) for n in sorted(rule.mandatory))
            refusal = "-" if rule.refusal is None else ",".join(str(n) for n in sorted(rule.refusal))
            forb = ",".join(str(n) for n in sorted(rule.forbidden))
            lines.append(f"{rule.mti:<5} {mand:<30} {refusal:<8} {forb:<22} {rule.name}")
    for table in dialect.code_tables:
        lines += ["", f"## Codes: {table.name} ({table.field})", ""]
        lines += [f"{code:>5}  {text}" for code, text in table.codes.items()]
    if 39 in dialect.fields:  # one table for every dialect (specs/response.py)
        lines += ["", "## Codes: response (39)", "", render_meanings().rstrip("\n")]
    return "\n".join(lines) + "\n"


def render_messages(catalogue: Catalogue) -> str:
    """The message table of a catalogue: every request kind, as ``specs show NAME --messages``."""
    code_head = catalogue.network_code_field
    type_head = catalogue.type_code_field
    icc = catalogue.icc
    chip_heads = ["22", str(icc.field)] if icc is not None else []
    rows = [["kind", "MTI", "answer", "3", *([type_head] if type_head else []), code_head, *chip_heads, "MAC",
             "needs", "echoed"]]
    for kind in catalogue.kinds.values():
        row = [kind.name, kind.mti, kind.response_mti, _cell(kind, kind.processing_code, "3", None)]
        if type_head:
            row.append(_cell(kind, kind.type_code, type_head, catalogue.default_type_code))
        row.append(_cell(kind, "/".join(kind.network_codes), code_head, catalogue.default_network_code))
        if icc is not None:
            row.append("/".join(f"{mode}x" for mode in kind.entry_modes) or "-")
            row.append(f"{kind.icc}{' +ARQC' if kind.arqc else ''}" if kind.icc else "-")
        row += ["yes" if kind.maced else "no", kind.needs.value, " ".join(kind.echo)]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines = [
        f"# {catalogue.name} messages",
        "",
        catalogue.description,
        "",
        f"Dialects: {', '.join(catalogue.dialects)}. Generated from {Path(catalogue.source).name}.",
        "",
        "## Requests",
        "",
        *table,
        "",
        "A kind is routed by the values it shows; (00): what its request sends, not routed on;",
        "orig.: repeated from the original request; echoed: what the answer must give back",
        "unchanged when the request carried it.",
        "",
        "## What each kind is",
        "",
    ]
    lines += [f"{kind.name:<{widths[0]}}  {kind.title}" for kind in catalogue.kinds.values() if kind.title]
    if icc is not None:
        lines += ["", f"## Field {icc.field} (ICC data) tag lists", ""]
        lines.append(f"22 = 05x/07x: the chip was read; {icc.condition_field} = {icc.fallback_value}: fallback "
                     f"to the stripe; {icc.read_capability_field}: the terminal's read capability.")
        lines.append("A kind's 55 carries its list in this order; (tag): may be left out; +ARQC: the host")
        lines.append("verifies the card's ARQC and answers 91 = ARPC || ARC.")
        lines.append("")
        for tags in icc.lists.values():
            shown = " ".join(f"({t})" if t in tags.optional else t for t in tags.tags)
            lines.append(f"{tags.name:<{widths[0]}}  {shown}")
    for kind in catalogue.kinds.values():
        if kind.key_layouts:
            lines += ["", f"## Field 62 of the {kind.name} answer", ""]
            lines += [f"{mode}  {lay.length} bytes: {lay.describe()}" for mode, lay in kind.key_layouts.items()]
    unmatched = sorted(catalogue.unmatched.items())
    lines += ["", "## Requests no kind serves", ""]
    lines += [f"{mti}  answered {code} when its codes match no kind" for mti, code in unmatched]
    lines.append("any other request is answered 40")
    return "\n".join(lines) + "\n"


def _cell(kind: MessageKind, declared: str | None, item: str, default: str | None) -> str:
    """A routing value as the table shows it: declared, repeated, only sent, or absent."""
    if declared:
        return declared
    if _parent(item) in kind.from_original:
        return "orig."
    return f"({default})" if default else "-"


def _parent(item: str) -> int:
    return int(item.partition(".")[0])
