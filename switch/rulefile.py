"""Response rules as testers write them: the TOML format, read into a `RuleSet`.

A rule says "when a request looks like this, answer with that code / answer late / say nothing /
hang up". Rules are evaluated in file order and the first whose every condition holds wins
(`switch/ruleset.py`); a request no rule matches is handled normally. The rule parts and their
checks are `switch/rules.py`; this module reads the file and names where a mistake is.

Format (TOML), either a standalone file (`switchsim serve --rules FILE`, which may hold nothing
but `[[rules]]`) or the same `[[rules]]` array inside the switch config:

    [[rules]]
    name = "decline amounts ending in 51"
    match = { mti = "0200", processing_code = "000000", amount_last_digits = "51" }
    action = { respond = "51" }

    [[rules]]
    name = "host too slow for terminal 00000764"
    match = { terminal = "00000764", mti = "0200" }
    action = { delay_ms = 35000 }

    [[rules]]
    name = "swallow pre-auths"
    match = { mti = "0100" }
    action = { drop = true }

Every rule has a `name` (unique, shown in logs and errors), a `match` table and an `action`
table, nothing else. `match = {}` matches every request.

match keys (all optional; a rule matches when every key given holds):
    mti                 "0200"        4 digits, the request MTI
    processing_code     "000000"      6 digits, field 3
    message_type        "22"          2 digits, field 60.1
    amount_eq           100           field 4 equals this, in minor units (100 = 1.00)
    amount_min          100           field 4 >= this (inclusive)
    amount_max          99999         field 4 <= this (inclusive); not with amount_eq
    amount_last_digits  "51"          1-12 digits field 4 ends with (000000001251 ends with 51)
    pan_prefix          "622202"      1-19 digits; the PAN is field 2, else field 35 up to its
                                      separator (D, or = or D in ASCII dialects)
    terminal            "00000764"    8 characters, field 41
    merchant            "848100058126002"  15 characters, field 42
    time_from, time_to  "22:00"       local wall-clock window [from, to), minute precision,
                                      both or neither; from > to wraps midnight ("22:00" to
                                      "06:00" is 22:00:00 up to 05:59:59); from = to is refused
A condition on a field the request does not carry (or carries malformed, such as a field 60 too
short for 60.1 or a track 2 without a separator) does not hold.

action, exactly one of:
    respond = "51"                answer with this field 39 (two of 0-9 A-Z)
    respond = "00", delay_ms = N  the same, N ms late
    delay_ms = N                  handle the request normally, answer N ms late
    drop = true                   never answer (the terminal times out and reverses)
    close = true                  close the connection without answering
    issuer_script = "72"          handle normally; a chip answer's 55 also carries this issuer
      script_commands = ["..."]   script template (71 or 72) with these commands (86, hex APDUs)
      script_id = "00000001"      and this script identifier (9F18, optional) (docs/chip.md)
delay_ms is 1 to 3,600,000 (an hour), to catch seconds written as milliseconds twice over.

A mistake is a `switch.config.ConfigError` naming file, rule and key:
`rules.toml: rules[1] (host too slow).match.terminal: must be 8 characters, got 7`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from specs.tlv import Tlv
from switch.config import ConfigError
from switch.rules import Action, ActionKind, Match, Rule, RuleError
from switch.ruleset import RuleSet

_MATCH_KEYS = frozenset(f.name for f in fields(Match))
_ACTION_KEYS = ("respond", "delay_ms", "drop", "close", "issuer_script", "script_commands", "script_id")


def load_rules(path: str | Path) -> RuleSet:
    """A standalone rules file: nothing but a `[[rules]]` array."""
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(source, "file", exc.strerror or "cannot read") from None
    except UnicodeDecodeError:
        raise ConfigError(source, "file", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "file", f"not valid TOML: {exc}") from None
    unknown = set(data) - {"rules"}
    if unknown:
        raise ConfigError(source, "top level", f"unknown keys {sorted(unknown)}: a rules file holds only [[rules]]")
    return parse_rules(data.get("rules", []), source)


def parse_rules(data: list[Any], source: str = "<rules>") -> RuleSet:
    """The `[[rules]]` array of a rules file or of the switch config, as parsed TOML."""
    if not isinstance(data, list):
        raise ConfigError(source, "rules", "must be an array of tables ([[rules]])")
    seen: dict[str, int] = {}
    rules = []
    for index, raw in enumerate(data):
        rule = _rule(source, index, raw)
        if rule.name in seen:
            raise ConfigError(source, f"rules[{index}].name", f"{rule.name!r} is already rules[{seen[rule.name]}]")
        seen[rule.name] = index
        rules.append(rule)
    return RuleSet(tuple(rules))


def _rule(source: str, index: int, raw: object) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(source, where, "must be a table with name, match and action")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(source, f"{where}.name", "must be non-empty text")
    where = f"{where} ({name})"
    unknown = sorted(set(raw) - {"name", "match", "action"})
    if unknown:
        raise ConfigError(source, f"{where}.{unknown[0]}", "unknown key (a rule has name, match and action)")
    for key in ("match", "action"):
        if not isinstance(raw.get(key), dict):
            raise ConfigError(source, f"{where}.{key}", 'must be a table, e.g. match = { mti = "0200" }')
    try:
        return Rule(name, _match(raw["match"]), _action(raw["action"]))
    except _PartError as exc:
        key = f".{exc.error.key}" if exc.error.key else ""
        raise ConfigError(source, f"{where}.{exc.part}{key}", exc.error.problem) from None


class _PartError(Exception):
    def __init__(self, part: str, error: RuleError) -> None:
        super().__init__(part, error)
        self.part = part
        self.error = error


def _match(raw: Mapping[str, Any]) -> Match:
    unknown = sorted(set(raw) - _MATCH_KEYS)
    if unknown:
        known = ", ".join(sorted(_MATCH_KEYS))
        raise _PartError("match", RuleError(unknown[0], f"unknown match key (known: {known})"))
    try:
        return Match(**raw)
    except RuleError as exc:
        raise _PartError("match", exc) from None


def _action(raw: Mapping[str, Any]) -> Action:
    try:
        return _build_action(raw)
    except RuleError as exc:
        raise _PartError("action", exc) from None


def _build_action(raw: Mapping[str, Any]) -> Action:
    unknown = sorted(set(raw) - set(_ACTION_KEYS))
    if unknown:
        raise RuleError(unknown[0], f"unknown action key (known: {', '.join(_ACTION_KEYS)})")
    for flag in ("drop", "close"):
        if flag in raw and raw[flag] is not True:
            raise RuleError(flag, f"must be true (leave {flag} out otherwise)")
    chosen = [key for key in ("respond", "drop", "close", "issuer_script") if key in raw]
    if len(chosen) > 1:
        raise RuleError(chosen[1], f"cannot be combined with {chosen[0]}: an action does one thing")
    delay = raw.get("delay_ms", 0)
    if "delay_ms" in raw and (not isinstance(delay, int) or isinstance(delay, bool) or delay < 1):
        raise RuleError("delay_ms", f"must be a whole number of milliseconds, 1 or more, got {delay!r}")
    for key in ("script_commands", "script_id"):
        if key in raw and chosen[:1] != ["issuer_script"]:
            raise RuleError(key, "goes with issuer_script")
    if not chosen:
        if "delay_ms" not in raw:
            raise RuleError("", "needs one of respond, delay_ms, drop, close, issuer_script")
        return Action(ActionKind.DELAY, delay_ms=delay)
    if chosen[0] == "issuer_script":
        return Action(ActionKind.SCRIPT, delay_ms=delay, script=_script(raw))
    kind = {"respond": ActionKind.RESPOND, "drop": ActionKind.DROP, "close": ActionKind.CLOSE}[chosen[0]]
    return Action(kind, code=raw.get("respond"), delay_ms=delay)


_HEX = re.compile(r"[0-9A-F]+")


def _script(raw: Mapping[str, Any]) -> bytes:
    """The 71/72 template of an issuer_script action: 9F18 (when given), then one 86 a command."""
    template = raw.get("issuer_script")
    if template not in ("71", "72"):
        when = '"71" (before the second GENERATE AC) or "72" (after)'
        raise RuleError("issuer_script", f"must be {when}, got {template!r}")
    commands = raw.get("script_commands")
    if not isinstance(commands, list) or not commands:
        raise RuleError("script_commands", "must be a non-empty list of commands as hex (APDUs)")
    children = []
    ident = raw.get("script_id")
    if ident is not None:
        if not (isinstance(ident, str) and len(ident) == 8 and _HEX.fullmatch(ident)):
            raise RuleError("script_id", "must be 8 hex digits (9F18)")
        children.append(Tlv("9F18", bytes.fromhex(ident)))
    for i, command in enumerate(commands):
        if not (isinstance(command, str) and command and len(command) % 2 == 0 and _HEX.fullmatch(command)):
            raise RuleError(f"script_commands[{i}]", "must be hex digits, two a byte (an APDU)")
        if not 5 <= len(command) // 2 <= 261:
            raise RuleError(f"script_commands[{i}]", "an APDU is 5 to 261 bytes")
        children.append(Tlv("86", bytes.fromhex(command)))
    return Tlv.template(template, children).encode()
