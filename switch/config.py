"""Switch configuration: server limits, session policy, parameters, declared terminals, operators,
cards and response rules, from one TOML file a team keeps in its own repository.

`examples/switch.toml` is the reference: every key this loader accepts, each with a comment
(tests/switch/test_config.py checks that the two agree, and that the README names no key the
loader refuses). `ACCEPTED_KEYS` is the loader's side of that comparison. A mistake names the
file, the key and what was expected: `switch.toml: server.port: must be 0 to 65535, got 70000`;
an unknown key is a mistake too, so a typo never silently does nothing.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specs.icrecords import AidParameters, CaPublicKey
from specs.tls import ServerTls
from switch.icparams import AID_KEYS, BLACKLIST_KEYS, CAPK_KEYS, IcParamError, parse_aid, parse_blacklist, parse_capk


class ConfigError(Exception):
    def __init__(self, source: str, where: str, problem: str) -> None:
        super().__init__(f"{source}: {where}: {problem}")


@dataclass(frozen=True, slots=True)
class DeclaredTerminal:
    merchant: str
    terminal: str
    tmk: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class DeclaredOperator:
    merchant: str
    terminal: str
    operator_id: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class DeclaredCard:
    pan: str = field(repr=False)
    expiry: str
    pin: str = field(repr=False)
    balance: int  # minor units
    limit: int = 0
    service_code: str = "201"
    status: str = "active"
    # A chip card: its IMK-AC in clear (None: derived from the fleet's seed, as the shared test
    # cards' are) and its PAN sequence number.
    chip: bool = False
    imk_ac: bytes | None = field(default=None, repr=False)
    psn: str = "01"


@dataclass(frozen=True, slots=True)
class SwitchConfig:
    host: str = "127.0.0.1"
    port: int = 5800
    dialect: str = "cup-pos"
    db: str = "switchsim.db"
    hsm: str = "inproc"
    idle_timeout: float = 300.0
    frame_timeout: float = 10.0
    max_connections: int = 10000
    max_pipeline: int = 32  # requests queued per connection before reading pauses
    acquirer_id: str = "00000000001"
    key_lifetime: float = 86400.0
    max_operator_failures: int = 3  # also the wrong-PIN count that locks a test card's PIN
    unknown_reversal: str = "00"  # answer to a reversal whose original is unknown (00 or 25)
    # [chip] (docs/chip.md)
    arqc_failure_code: str = "59"  # 39 of a chip request whose ARQC does not verify (59 or A7)
    announce_downloads: bool = False  # header requirement 4/5/7 while a terminal's IC data is stale
    download_part_entries: int = 0  # list entries per 0830 part; 0: as many as field 62 holds
    capks: tuple[CaPublicKey, ...] = ()  # [[capk]]: replace or add to the shipped CA keys
    aids: tuple[AidParameters, ...] = ()  # [[aid]]: replace or add to the shipped AIDs
    blacklist: tuple[str, ...] = field(default=(), repr=False)  # [[blacklist]] PANs or prefixes
    parameters: Mapping[str, str] = field(default_factory=dict)
    terminals: tuple[DeclaredTerminal, ...] = ()
    operators: tuple[DeclaredOperator, ...] = ()
    cards: tuple[DeclaredCard, ...] = ()
    # Response rules as parsed TOML ([[rules]] in this file) and an optional rules file; the
    # switch builds its switch.ruleset.RuleSet from both (config first, then the file).
    rules: tuple[Any, ...] = ()
    rules_file: str | None = None
    source: str = "<config>"
    # [checks] (docs/diagnostics.md): refuse (30) what the field checks find instead of warning
    strict_checks: bool = False
    currency: str = "156"  # field 49 the switch expects (CNY)
    # `serve --keep-raw` only (no file key): the journal and a capture keep frames unmasked
    keep_raw: bool = False
    capture: str | None = None  # `serve --capture FILE.pcap` only: every frame in and out, as pcap
    # `serve --log-exchanges off` only: no info line per answered exchange (load runs); declines,
    # refusals and errors are still logged
    log_exchanges: bool = True
    tls: ServerTls | None = None  # `serve --tls-cert/--tls-key/--tls-client-ca` only: TLS on the listener


_Kind = type | tuple[type, ...]
_NUMBER = (int, float)

_SERVER_KEYS: dict[str, _Kind] = {
    "host": str,
    "port": int,
    "dialect": str,
    "db": str,
    "hsm": str,
    "idle_timeout": _NUMBER,
    "frame_timeout": _NUMBER,
    "max_connections": int,
    "max_pipeline": int,
    "acquirer_id": str,
}
_SESSION_KEYS: dict[str, _Kind] = {
    "key_lifetime": _NUMBER,
    "max_operator_failures": int,
    "unknown_reversal": str,
}
_CHECKS_KEYS: dict[str, _Kind] = {
    "strict": bool,
    "currency": str,
}
_CHIP_KEYS: dict[str, _Kind] = {
    "arqc_failure_code": str,
    "announce_downloads": bool,
    "download_part_entries": int,
}
_TERMINAL_KEYS = frozenset({"merchant", "terminal", "tmk"})
_OPERATOR_KEYS = frozenset({"merchant", "terminal", "id", "password"})
_CARD_KEYS = frozenset(
    {"pan", "expiry", "pin", "balance", "limit", "service_code", "status", "chip", "imk_ac", "psn"}
)
_TABLES = frozenset(
    {"server", "session", "checks", "chip", "parameters", "terminals", "operators", "cards", "capk", "aid",
     "blacklist", "rules"}
)
# [checks] keys and the SwitchConfig fields they set
_CHECKS_FIELDS = {"strict": "strict_checks", "currency": "currency"}

#: Every key the loader accepts, by table (``[server]``, ``[session]``) or array of tables
#: (``[[terminals]]``, ...). ``[parameters]`` takes any 2-digit tag and ``[[rules]]`` is
#: switch/rulefile.py's format, so neither is listed here.
ACCEPTED_KEYS: Mapping[str, frozenset[str]] = {
    "server": frozenset(_SERVER_KEYS),
    "session": frozenset(_SESSION_KEYS),
    "checks": frozenset(_CHECKS_KEYS),
    "chip": frozenset(_CHIP_KEYS),
    "terminals": _TERMINAL_KEYS,
    "operators": _OPERATOR_KEYS,
    "cards": _CARD_KEYS,
    "capk": CAPK_KEYS,
    "aid": AID_KEYS,
    "blacklist": BLACKLIST_KEYS,
}

# Settings that must be above zero, and the ones that are counts of at least one.
_POSITIVE = ("idle_timeout", "frame_timeout", "key_lifetime")
_AT_LEAST_ONE = ("max_connections", "max_pipeline", "max_operator_failures")
_MAX_AMOUNT = 999_999_999_999  # field 4: 12 digits of minor units


def load_config(path: str | Path) -> SwitchConfig:
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(source, "file", exc.strerror or "cannot read") from None
    except UnicodeDecodeError:
        raise ConfigError(source, "file", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "file", f"not valid TOML: {exc}") from None
    return parse_config(data, source)


def parse_config(data: Mapping[str, Any], source: str = "<config>") -> SwitchConfig:
    unknown = set(data) - _TABLES
    if unknown:
        known = ", ".join(sorted(_TABLES))
        raise ConfigError(source, "top level", f"unknown tables {sorted(unknown)} (known: {known})")
    values: dict[str, Any] = {}
    for table, allowed in (
        ("server", _SERVER_KEYS), ("session", _SESSION_KEYS), ("checks", _CHECKS_KEYS), ("chip", _CHIP_KEYS)
    ):
        section = _table(source, table, data.get(table, {}))
        for key, value in section.items():
            where = f"{table}.{key}"
            if key not in allowed:
                raise ConfigError(source, where, f"unknown setting (known: {', '.join(sorted(allowed))})")
            if not isinstance(value, allowed[key]) or (isinstance(value, bool) and allowed[key] is not bool):
                raise ConfigError(source, where, f"wrong type {type(value).__name__}")
            _check_setting(source, where, key, value)
            values[_CHECKS_FIELDS[key] if table == "checks" else key] = value
    params = _table(source, "parameters", data.get("parameters", {}))
    for tag, value in params.items():
        if not (tag.isascii() and tag.isdigit() and len(tag) == 2):
            raise ConfigError(source, f"parameters.{tag}", "keys are 2-digit tags")
        if not isinstance(value, str):
            raise ConfigError(source, f"parameters.{tag}", f"must be text, got {type(value).__name__}")
    terminals = tuple(_terminal(source, i, raw) for i, raw in enumerate(_array(source, "terminals", data)))
    operators = tuple(_operator(source, i, raw) for i, raw in enumerate(_array(source, "operators", data)))
    cards = tuple(_card(source, i, raw) for i, raw in enumerate(_array(source, "cards", data)))
    try:
        capks = tuple(parse_capk(raw, f"capk[{i}]") for i, raw in enumerate(_array(source, "capk", data)))
        aids = tuple(parse_aid(raw, f"aid[{i}]") for i, raw in enumerate(_array(source, "aid", data)))
        blacklist = tuple(
            parse_blacklist(raw, f"blacklist[{i}]") for i, raw in enumerate(_array(source, "blacklist", data))
        )
    except IcParamError as exc:
        raise ConfigError(source, exc.where, exc.problem) from None
    rules = data.get("rules", [])
    if not isinstance(rules, list):
        raise ConfigError(source, "rules", "must be an array of tables ([[rules]])")
    return SwitchConfig(
        **values,
        parameters=dict(params),
        terminals=terminals,
        operators=operators,
        cards=cards,
        capks=capks,
        aids=aids,
        blacklist=blacklist,
        rules=tuple(rules),
        source=source,
    )


def _check_setting(source: str, where: str, key: str, value: Any) -> None:
    if key == "port" and not 0 <= value <= 0xFFFF:
        raise ConfigError(source, where, f"must be 0 to 65535, got {value}")
    if key in _POSITIVE and not (math.isfinite(value) and value > 0):
        raise ConfigError(source, where, f"must be a positive number of seconds, got {value}")
    if key in _AT_LEAST_ONE and value < 1:
        raise ConfigError(source, where, f"must be at least 1, got {value}")
    if key in ("host", "dialect", "db", "hsm") and not value.strip():
        raise ConfigError(source, where, "must not be empty")
    if key == "acquirer_id" and not (value.isascii() and value.isdigit() and 1 <= len(value) <= 11):
        raise ConfigError(source, where, f"must be 1 to 11 digits (field 32), got {value!r}")
    if key == "currency" and not (value.isascii() and value.isdigit() and len(value) == 3):
        raise ConfigError(source, where, f"must be a 3-digit ISO 4217 code (field 49), got {value!r}")
    if key == "unknown_reversal" and value not in ("00", "25"):
        raise ConfigError(source, where, f"must be '00' or '25', got {value!r}")
    if key == "arqc_failure_code" and value not in ("59", "A7"):
        raise ConfigError(source, where, f"must be '59' or 'A7', got {value!r}")
    if key == "download_part_entries" and value < 0:
        raise ConfigError(source, where, f"must be 0 (as many as fit) or more, got {value}")


def _table(source: str, name: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(source, name, f"must be a table ([{name}]), got {type(value).__name__}")
    return value


def _array(source: str, name: str, data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ConfigError(source, name, f"must be an array of tables ([[{name}]])")
    allowed = ACCEPTED_KEYS[name]
    for index, item in enumerate(value):
        unknown = sorted(set(item) - allowed)
        if unknown:
            raise ConfigError(
                source, f"{name}[{index}].{unknown[0]}", f"unknown key (known: {', '.join(sorted(allowed))})"
            )
    return value


def _ids(source: str, where: str, raw: Mapping[str, Any]) -> tuple[str, str]:
    merchant, terminal = raw.get("merchant"), raw.get("terminal")
    if not isinstance(merchant, str) or len(merchant) != 15:
        raise ConfigError(source, f"{where}.merchant", "must be 15 characters")
    if not isinstance(terminal, str) or len(terminal) != 8:
        raise ConfigError(source, f"{where}.terminal", "must be 8 characters")
    return merchant, terminal


def _terminal(source: str, index: int, raw: Mapping[str, Any]) -> DeclaredTerminal:
    where = f"terminals[{index}]"
    merchant, terminal = _ids(source, where, raw)
    tmk = raw.get("tmk")
    try:
        key = bytes.fromhex(tmk) if isinstance(tmk, str) else b""
    except ValueError:
        key = b""
    if len(key) not in (8, 16, 24):
        raise ConfigError(source, f"{where}.tmk", "must be 16, 32 or 48 hex digits")
    return DeclaredTerminal(merchant, terminal, key)


def _operator(source: str, index: int, raw: Mapping[str, Any]) -> DeclaredOperator:
    where = f"operators[{index}]"
    merchant, terminal = _ids(source, where, raw)
    op_id, password = raw.get("id"), raw.get("password")
    if not isinstance(op_id, str) or len(op_id) != 2 or not op_id.isdigit():
        raise ConfigError(source, f"{where}.id", "must be two digits")
    if not isinstance(password, str) or not password.isdigit() or not 4 <= len(password) <= 12:
        raise ConfigError(source, f"{where}.password", "must be 4 to 12 digits")
    return DeclaredOperator(merchant, terminal, op_id, password)


def card_problem(
    pan: object, expiry: object, pin: object, balance: object, limit: object, service_code: object, status: object
) -> tuple[str, str] | None:
    """The first thing wrong with a test card's data, as (key, problem), or None: one set of
    rules for `[[cards]]` here and for `switchsim card add` (switch/cards.py)."""
    if not _digits(pan, 12, 19):
        return "pan", "must be 12 to 19 digits"
    if not (_digits(expiry, 4, 4) and isinstance(expiry, str) and 1 <= int(expiry[2:]) <= 12):
        return "expiry", "must be YYMM (month 01 to 12)"
    if not _digits(pin, 4, 12):
        return "pin", "must be 4 to 12 digits"
    for key, value in (("balance", balance), ("limit", limit)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_AMOUNT:
            return key, f"must be a whole number of minor units (fen), 0 to {_MAX_AMOUNT}"
    if not _digits(service_code, 3, 3):
        return "service_code", "must be 3 digits"
    if status not in ("active", "blocked"):
        return "status", "must be 'active' or 'blocked'"
    return None


def _digits(value: object, low: int, high: int) -> bool:
    return isinstance(value, str) and value.isascii() and value.isdigit() and low <= len(value) <= high


def chip_problem(chip: object, imk_ac: object, psn: object) -> tuple[str, str] | None:
    """The first thing wrong with a card's chip profile, as (key, problem), or None: one set of
    rules for `[[cards]]` and for `switchsim card add --chip`."""
    if not isinstance(chip, bool):
        return "chip", "must be true or false"
    if imk_ac is not None and not chip:
        return "imk_ac", "goes with chip = true"
    if imk_ac is not None and (not isinstance(imk_ac, bytes) or len(imk_ac) != 16):
        return "imk_ac", "must be 32 hex digits (a double-length key)"
    if not _digits(psn, 2, 2):
        return "psn", "must be 2 digits (the PAN sequence number, 00 when the card has none)"
    return None


def _card(source: str, index: int, raw: Mapping[str, Any]) -> DeclaredCard:
    imk_raw = raw.get("imk_ac")
    imk: object = imk_raw
    if isinstance(imk_raw, str):
        try:
            imk = bytes.fromhex(imk_raw)
        except ValueError:
            imk = imk_raw
    problem = chip_problem(raw.get("chip", False), imk, raw.get("psn", "01"))
    if problem is not None:
        raise ConfigError(source, f"cards[{index}].{problem[0]}", problem[1])
    card = DeclaredCard(
        pan=raw.get("pan"),  # type: ignore[arg-type]  # checked just below
        expiry=raw.get("expiry"),  # type: ignore[arg-type]
        pin=raw.get("pin"),  # type: ignore[arg-type]
        balance=raw.get("balance", 0),
        limit=raw.get("limit", 0),
        service_code=raw.get("service_code", "201"),
        status=raw.get("status", "active"),
        chip=raw.get("chip", False),
        imk_ac=imk if isinstance(imk, bytes) else None,
        psn=raw.get("psn", "01"),
    )
    problem = card_problem(card.pan, card.expiry, card.pin, card.balance, card.limit, card.service_code, card.status)
    if problem is not None:
        raise ConfigError(source, f"cards[{index}].{problem[0]}", problem[1])
    return card
