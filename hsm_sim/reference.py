"""Human-readable reference of every host command this HSM answers, generated from the
``CommandSpec`` objects the parsers read their fields with, so the two cannot drift apart."""

from __future__ import annotations

from hsm_sim.commands.lmkpin import PIN_PAIR
from hsm_sim.dispatcher import COMMANDS, DISABLED_COMMAND, NO_COMMAND_CODE, UNKNOWN_COMMAND
from hsm_sim.errors import ErrorCode
from hsm_sim.hostcmd import MAX_TRAILER, CommandSpec, FieldKind, FieldSpec


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _details(spec: FieldSpec) -> str:
    parts = [spec.description.rstrip(".") + "."] if spec.description else []
    if spec.choices:
        parts.append("Values: " + "; ".join(f"`{code}` {meaning}" for code, meaning in spec.choices) + ".")
    if spec.kind is not FieldKind.KEY and spec.error is not ErrorCode.INPUT_DATA:
        parts.append(f"Invalid: error {spec.error}.")
    return _cell(" ".join(parts))


def _table(fields: tuple[FieldSpec, ...]) -> list[str]:
    lines = ["| Field | Format | Present | Details |", "|---|---|---|---|"]
    for f in fields:
        lines.append(
            f"| {_cell(f.name)} | {_cell(f.wire_format)} | {_cell(f.condition or 'always')} | {_details(f)} |"
        )
    return lines


def _command(spec: CommandSpec) -> list[str]:
    lines = [f"## {spec.code} → {spec.response_code}: {spec.name}", ""]
    if spec.test_mode_only:
        lines += [f"*Test mode only* (otherwise error {DISABLED_COMMAND}).", ""]
    if spec.notes:
        lines += [spec.notes, ""]
    lines += ["Request (after the command code):", ""]
    lines += _table(spec.request) if spec.request else ["(no fields)"]
    lines += ["", "Response (after the response code and error code; only with error 00):", ""]
    lines += _table(spec.response) if spec.response else ["(no fields)"]
    lines += ["", "Error codes:", ""]
    lines += [f"- `{code}` {spec.error_description(code)}" for code in sorted(spec.errors)]
    return [*lines, ""]


def _conventions() -> list[str]:
    return [
        "# Host command reference",
        "",
        "Generated from the command specs in `hsm_sim/commands/`; do not edit by hand.",
        "",
        "## Conventions",
        "",
        "- A request is the 2-character command code followed by its fields; the servers strip "
        "and echo the message header and length prefix.",
        "- A response is the response code (the command code with its second character "
        "incremented: A0→A1, M9→MA), a 2-character error code, then the response fields. Fields "
        "follow only error 00, and error 01 where a command says so.",
        f"- An unknown command code answers error {UNKNOWN_COMMAND} "
        f"({UNKNOWN_COMMAND.description}); a message too short to carry a command code answers "
        f"`{NO_COMMAND_CODE}{ErrorCode.INPUT_DATA}`.",
        f"- An optional X'19' end-message delimiter plus a trailer of up to {MAX_TRAILER} "
        "characters may follow the last field; it is echoed after the response fields.",
        "- Keys: `16H` is a single-length key (also accepted as `Z`+16H); `U`+32H / `T`+48H are "
        "double/triple-length variant-scheme keys; `X`+32H / `Y`+48H are ANSI X9.17 "
        "double/triple-length keys (plain TDES-ECB), valid only under a ZMK or TMK.",
        "- `nB` is n raw bytes (binary EMV data such as the ARQC); `nH` is n hex characters.",
        f"- PIN under LMK: TDES-ECB under LMK pair {PIN_PAIR} of the ISO 9564-1 format 0 block "
        "built from the PIN and the command's 12-digit account number, 16 hex characters. "
        "(payShield's own form is proprietary; clients treat both as opaque.)",
        "- Any internal failure answers error 15 and is logged; it never drops the connection.",
        "",
    ]


def render_reference() -> str:
    """The reference as Markdown: conventions, then every command in code order."""
    lines = _conventions()
    for code in sorted(COMMANDS):
        lines += _command(COMMANDS[code].spec)
    return "\n".join(lines).rstrip() + "\n"
