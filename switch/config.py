"""Switch configuration: server limits, session policy, parameters, and declared terminals.

A team keeps its test set-up in a TOML file in its own repository:

    [server]
    host = "127.0.0.1"
    port = 5800
    dialect = "cup-pos"
    db = "switchsim.db"
    hsm = "inproc"            # or tcp://host:port, udp://host:port
    idle_timeout = 300        # seconds without a complete frame in or an answer out
    frame_timeout = 10        # seconds from a frame's first byte to its last
    max_connections = 10000
    acquirer_id = "00000000001"

    [session]
    key_lifetime = 86400      # seconds; then the header asks the terminal to sign in again
    max_operator_failures = 3

    [parameters]              # 0800 60.3=360 answers these in field 62, as tag + value
    "11" = "SWITCHSIM TEST MERCHANT"

    [[terminals]]
    merchant = "848100058126002"
    terminal = "00000764"
    tmk = "11111111111111111111111111111111"

    [[operators]]
    merchant = "848100058126002"
    terminal = "00000764"
    id = "02"
    password = "2222"

    [[cards]]                 # test cards: the PIN goes straight to the HSM, the PAN is not stored
    pan = "6222021234567890123"
    expiry = "3012"
    pin = "123456"
    balance = 100000000       # minor units (fen)
    limit = 5000000
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
    parameters: Mapping[str, str] = field(default_factory=dict)
    terminals: tuple[DeclaredTerminal, ...] = ()
    operators: tuple[DeclaredOperator, ...] = ()
    cards: tuple[DeclaredCard, ...] = ()
    # Response rules as parsed TOML ([[rules]] in this file) and an optional rules file; the
    # switch builds its switch.rules.RuleSet from both (config first, then the file).
    rules: tuple[Any, ...] = ()
    rules_file: str | None = None
    source: str = "<config>"


_SERVER_KEYS: dict[str, type | tuple[type, ...]] = {
    "host": str,
    "port": int,
    "dialect": str,
    "db": str,
    "hsm": str,
    "idle_timeout": (int, float),
    "frame_timeout": (int, float),
    "max_connections": int,
    "max_pipeline": int,
    "acquirer_id": str,
}
_SESSION_KEYS: dict[str, type | tuple[type, ...]] = {
    "key_lifetime": (int, float),
    "max_operator_failures": int,
}


def load_config(path: str | Path) -> SwitchConfig:
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(source, "file", exc.strerror or "cannot read") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "file", f"not valid TOML: {exc}") from None
    return parse_config(data, source)


def parse_config(data: Mapping[str, Any], source: str = "<config>") -> SwitchConfig:
    unknown = set(data) - {"server", "session", "parameters", "terminals", "operators", "cards", "rules"}
    if unknown:
        raise ConfigError(source, "top level", f"unknown tables {sorted(unknown)}")
    values: dict[str, Any] = {}
    for table, allowed in (("server", _SERVER_KEYS), ("session", _SESSION_KEYS)):
        section = data.get(table, {})
        for key, value in section.items():
            if key not in allowed:
                raise ConfigError(source, f"{table}.{key}", "unknown setting")
            if not isinstance(value, allowed[key]) or isinstance(value, bool):
                raise ConfigError(source, f"{table}.{key}", f"wrong type {type(value).__name__}")
            values[key] = value
    if values.get("unknown_reversal", "00") not in ("00", "25"):
        raise ConfigError(source, "session.unknown_reversal", "must be '00' or '25'")
    for key in ("idle_timeout", "frame_timeout", "key_lifetime"):
        if key in values and values[key] <= 0:
            raise ConfigError(source, key, "must be positive")
    params = data.get("parameters", {})
    if not all(isinstance(k, str) and k.isdigit() and len(k) == 2 and isinstance(v, str) for k, v in params.items()):
        raise ConfigError(source, "parameters", "keys are 2-digit tags, values text")
    terminals = tuple(_terminal(source, i, raw) for i, raw in enumerate(data.get("terminals", [])))
    operators = tuple(_operator(source, i, raw) for i, raw in enumerate(data.get("operators", [])))
    cards = tuple(_card(source, i, raw) for i, raw in enumerate(data.get("cards", [])))
    rules = data.get("rules", [])
    if not isinstance(rules, list):
        raise ConfigError(source, "rules", "must be an array of tables ([[rules]])")
    return SwitchConfig(
        **values,
        parameters=dict(params),
        terminals=terminals,
        operators=operators,
        cards=cards,
        rules=tuple(rules),
        source=source,
    )


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


def _card(source: str, index: int, raw: Mapping[str, Any]) -> DeclaredCard:
    where = f"cards[{index}]"
    pan, expiry, pin = raw.get("pan"), raw.get("expiry"), raw.get("pin")
    if not isinstance(pan, str) or not pan.isdigit() or not 12 <= len(pan) <= 19:
        raise ConfigError(source, f"{where}.pan", "must be 12 to 19 digits")
    if not isinstance(expiry, str) or not expiry.isdigit() or len(expiry) != 4:
        raise ConfigError(source, f"{where}.expiry", "must be YYMM")
    if not isinstance(pin, str) or not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise ConfigError(source, f"{where}.pin", "must be 4 to 12 digits")
    for key in ("balance", "limit"):
        if not isinstance(raw.get(key, 0), int) or raw.get(key, 0) < 0:
            raise ConfigError(source, f"{where}.{key}", "must be a whole number of minor units (fen)")
    status = raw.get("status", "active")
    if status not in ("active", "blocked"):
        raise ConfigError(source, f"{where}.status", "must be 'active' or 'blocked'")
    return DeclaredCard(
        pan,
        expiry,
        pin,
        int(raw.get("balance", 0)),
        int(raw.get("limit", 0)),
        str(raw.get("service_code", "201")),
        status,
    )
