"""The human-readable field reference of a dialect, generated from its data (never by hand)."""

from __future__ import annotations

from specs.dialect import Dialect, Encoding


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
        + (" (digits for n/z, bytes otherwise)" if dialect.length_encoding is Encoding.BCD else ""),
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
    return "\n".join(lines) + "\n"
