"""Load scenarios as data: what each virtual terminal does, how often, and what it expects.

A scenario file (TOML)::

    name = "steady"
    description = "sign in once, then a steady mix"
    connection = "persistent"         # or "per-exchange": a new TCP connection per exchange
    key_mode = "003"                  # sign-in 60.3: 001, 003 or 004
    think_ms = [200, 800]             # pause before each mix step: a number or [low, high]

    [[setup]]                         # once per terminal, in order
    step = "signin"
    expect = ["00"]                   # field 39 values that count as success (default ["00"])

    [[mix]]                           # then, until the run ends: a weighted random choice
    step = "echo"
    weight = 8

    [[teardown]]                      # once per terminal when the run ends
    step = "signoff"

Steps: signin, operator_signin, operator_signout, password_change, echo, signoff,
param_download, status_upload, and the financial ones (docs/financial.md): purchase, balance,
void, refund, preauth, completion, settlement; with a chip card (docs/chip.md): chip_purchase,
contactless_purchase, chip_balance, chip_void, chip_refund, chip_preauth, and the downloads
ic_download (CA keys, then IC parameters), capk_download, aid_download, blacklist_download.
Financial steps take::

    amount = "88.00"                  # yuan, or a range ["1.00", "500.00"] picked at random;
                                      # needed by purchase and preauth; refund and completion
                                      # default to what is left of their original
    card = "6212340000000001"         # PAN of a test card or of a [[cards]] entry
    with_pin = true                   # default: purchase, balance, preauth yes; others no
    wrong_pin = true                  # key in a PIN that is not the card's
    force_reversal = true             # send, set the answer aside unread as if it never came,
                                      # and reverse (purchase, void, refund, preauth, completion)

A void, refund or completion refers to the terminal's latest eligible transaction; when there
is none the terminal makes one first. Reversals and batch uploads are not steps: the terminal
sends them itself. Top-level keys for selling::

    operator = "00"                   # who signs in for operator_signin (00: supervisor, who
    password = "123456"               # may void and refund); default: the fleet's
    card = "6222021234567890123"      # the card steps use when they name none
                                      # (default: the first of testcards.DEFAULT_TEST_CARDS)
    chip_card = "6222021234567890206" # the card chip steps use when they name none
                                      # (default: testcards.CHIP_CARD)
    [[cards]]                         # more cards: pan, expiry (YYMM), pin,
    pan = "6200000000000000004"       # service_code (default "101", "220" for a chip card),
    expiry = "3012"                   # entry = "swiped" (default), "manual" or "fallback"
    pin = "4321"                      # (swiped with 60.5 = 2: the chip could not be read);
    chip = true                       # a chip card, its IMK-AC imk_ac = "32 hex digits"
    psn = "01"                        # (default: derived from the fleet's seed), psn

Every problem is a `ScenarioError` naming the file, the step and what is wrong.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from specs.testcards import CHIP_CARD, DEFAULT_TEST_CARDS
from terminals_sim.chipcard import ChipProfile
from terminals_sim.financial import (
    CHIP_KINDS,
    FAMILY,
    REVERSIBLE_KINDS,
    SHAPES,
    TRANSACTION_KINDS,
    CardProfile,
    EntryMode,
    parse_amount,
)
from terminals_sim.outcome import Kind
from terminals_sim.workingkeys import KeyMode

_TOP_KEYS = frozenset(
    {"name", "description", "connection", "key_mode", "think_ms", "setup", "mix", "teardown",
     "operator", "password", "card", "chip_card", "cards"}
)
_STEP_KEYS = frozenset({"step", "weight", "expect", "amount", "card", "with_pin", "wrong_pin", "force_reversal"})
_CARD_KEYS = frozenset({"pan", "expiry", "pin", "service_code", "entry", "chip", "imk_ac", "psn"})
_SECTIONS = ("setup", "mix", "teardown")
_NOT_STEPS = {
    Kind.REVERSAL: "the terminal reverses on its own: mark a step force_reversal = true",
    Kind.CHIP_REVERSAL: "the terminal reverses on its own: mark a step force_reversal = true",
    Kind.BATCH_UPLOAD: "the terminal uploads its batch on its own after a settlement answered 95",
    Kind.IC_UPLOAD: "the terminal uploads its chip records on its own after a settlement",
    Kind.IC_UPLOAD_END: "the terminal uploads its chip records on its own after a settlement",
    Kind.SCRIPT_ADVICE: "the terminal sends it on its own after issuer scripts",
    **{
        part: "a part of a download: use ic_download, capk_download, aid_download or blacklist_download"
        for part in (Kind.CAPK_LIST, Kind.CAPK_RECORD, Kind.CAPK_DONE, Kind.AID_LIST, Kind.AID_RECORD,
                     Kind.AID_DONE, Kind.BLACKLIST, Kind.BLACKLIST_DONE)
    },
}
_ENTRY = {"swiped": EntryMode.SWIPED, "manual": EntryMode.MANUAL, "fallback": EntryMode.SWIPED}
DEFAULT_CARD = CardProfile.of(DEFAULT_TEST_CARDS[0])
DEFAULT_CHIP_CARD = CardProfile.of(CHIP_CARD)
_E = TypeVar("_E", bound=StrEnum)


class ScenarioError(Exception):
    def __init__(self, source: str, where: str, problem: str) -> None:
        self.source = source
        self.where = where
        self.problem = problem
        super().__init__(f"{source}: {where}: {problem}")


class ConnectionHabit(StrEnum):
    PERSISTENT = "persistent"
    PER_EXCHANGE = "per-exchange"


@dataclass(frozen=True, slots=True)
class Step:
    kind: Kind
    weight: int = 1
    expect: frozenset[str] = frozenset({"00"})
    amount: tuple[int, int] | None = None  # cents, inclusive range
    card: CardProfile | None = None  # None: the scenario's card
    with_pin: bool | None = None  # None: as the transaction type does by default
    wrong_pin: bool = False
    force_reversal: bool = False


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str = ""
    connection: ConnectionHabit = ConnectionHabit.PERSISTENT
    key_mode: KeyMode = KeyMode.DOUBLE
    think_ms: tuple[float, float] = (0.0, 0.0)
    setup: tuple[Step, ...] = ()
    mix: tuple[Step, ...] = ()
    teardown: tuple[Step, ...] = ()
    operator: str | None = None  # None: the fleet's
    password: str | None = field(default=None, repr=False)
    card: CardProfile = DEFAULT_CARD
    chip_card: CardProfile = DEFAULT_CHIP_CARD  # what chip steps read when they name no card


def builtin_names() -> list[str]:
    folder = resources.files("terminals_sim") / "scenarios"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    if name_or_path in builtin_names():
        source = f"{name_or_path}.toml"
        text = (resources.files("terminals_sim") / "scenarios" / source).read_text(encoding="utf-8")
        return parse_scenario(text, f"built-in {source}")
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join(builtin_names())
        raise ScenarioError(name_or_path, "scenario", f"no such file or built-in (built-ins: {known})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(str(path), "file", "not UTF-8 text") from None
    return parse_scenario(text, str(path))


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, "TOML", str(exc)) from None
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ScenarioError(source, "top level", f"unknown keys {sorted(unknown)}")
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise ScenarioError(source, "name", "must be a non-empty string")
    cards = _cards(source, data.get("cards", []))
    card = _card_ref(source, "card", data.get("card"), cards) or DEFAULT_CARD
    chip_card = _card_ref(source, "chip_card", data.get("chip_card"), cards) or DEFAULT_CHIP_CARD
    if chip_card.chip is None:
        raise ScenarioError(source, "chip_card", "not a chip card (chip = true)")
    operator = data.get("operator")
    if operator is not None and not (isinstance(operator, str) and operator.isdigit() and 1 <= len(operator) <= 3):
        raise ScenarioError(source, "operator", "must be 1 to 3 digits, as a string")
    password = data.get("password")
    if password is not None and not (isinstance(password, str) and password.isdigit() and 4 <= len(password) <= 12):
        raise ScenarioError(source, "password", "must be 4 to 12 digits, as a string")
    sections = {s: _steps(source, s, data.get(s, []), cards) for s in _SECTIONS}
    if not sections["setup"] and not sections["mix"]:
        raise ScenarioError(source, "steps", "needs at least one [[setup]] or [[mix]] step")
    return Scenario(
        name=name,
        description=_string(source, "description", data.get("description", "")),
        connection=_enum(source, "connection", ConnectionHabit, data.get("connection", "persistent")),
        key_mode=_enum(source, "key_mode", KeyMode, data.get("key_mode", "003")),
        think_ms=_think(source, data.get("think_ms", 0)),
        setup=sections["setup"],
        mix=sections["mix"],
        teardown=sections["teardown"],
        operator=operator,
        password=password,
        card=card,
        chip_card=chip_card,
    )


def _steps(source: str, section: str, raw: Any, cards: dict[str, CardProfile]) -> tuple[Step, ...]:
    if not isinstance(raw, list):
        raise ScenarioError(source, section, "must be an array of tables ([[" + section + "]])")
    return tuple(_step(source, f"{section} step {i}", entry, cards) for i, entry in enumerate(raw, 1))


def _step(source: str, where: str, entry: Any, cards: dict[str, CardProfile]) -> Step:
    if not isinstance(entry, dict):
        raise ScenarioError(source, where, "must be a table")
    unknown = set(entry) - _STEP_KEYS
    if unknown:
        raise ScenarioError(source, where, f"unknown keys {sorted(unknown)}")
    name = entry.get("step")
    if name is None:
        raise ScenarioError(source, where, "missing 'step'")
    try:
        kind = Kind(name)
    except ValueError:
        known = ", ".join(k.value for k in Kind)
        raise ScenarioError(source, where, f"unknown step {name!r} (known: {known})") from None
    where = f"{where} ({kind.value})"
    if kind in _NOT_STEPS:
        raise ScenarioError(source, where, f"not a step: {_NOT_STEPS[kind]}")
    selling = {"amount", "card", "with_pin", "wrong_pin", "force_reversal"} & set(entry)
    if selling and kind not in TRANSACTION_KINDS:
        raise ScenarioError(source, where, f"{sorted(selling)} only go with card transactions")
    weight = entry.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        raise ScenarioError(source, where, f"weight must be a positive integer, got {weight!r}")
    expect = entry.get("expect", ["00"])
    if not isinstance(expect, list) or not expect:
        raise ScenarioError(source, where, "expect must be a non-empty array of response codes")
    for code in expect:
        if not (isinstance(code, str) and len(code) == 2 and code.isascii() and code.isalnum()):
            raise ScenarioError(source, where, f"expect: {code!r} is not a two-character response code")
    amount = _amount(source, where, kind, entry.get("amount"))
    card = _card_ref(source, f"{where}: card", entry.get("card"), cards)
    if kind in CHIP_KINDS and card is not None and card.chip is None:
        raise ScenarioError(source, f"{where}: card", f"{kind.value} needs a chip card (chip = true)")
    with_pin = entry.get("with_pin")
    if with_pin is not None and not isinstance(with_pin, bool):
        raise ScenarioError(source, where, "with_pin must be true or false")
    wrong_pin = _flag(source, where, entry, "wrong_pin")
    if wrong_pin and (with_pin is False or (with_pin is None and not SHAPES[kind].pin_by_default)):
        raise ScenarioError(source, where, "wrong_pin needs a PIN: add with_pin = true")
    force_reversal = _flag(source, where, entry, "force_reversal")
    if force_reversal and kind not in REVERSIBLE_KINDS:
        raise ScenarioError(source, where, "force_reversal goes with a request that moves money")
    return Step(kind=kind, weight=weight, expect=frozenset(c.upper() for c in expect), amount=amount,
                card=card, with_pin=with_pin, wrong_pin=wrong_pin, force_reversal=force_reversal)


def _flag(source: str, where: str, entry: dict[str, Any], key: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise ScenarioError(source, where, f"{key} must be true or false")
    return value


def _amount(source: str, where: str, kind: Kind, raw: Any) -> tuple[int, int] | None:
    if raw is None:
        if FAMILY.get(kind) in (Kind.PURCHASE, Kind.PREAUTH, Kind.AUTHORISATION):
            raise ScenarioError(source, where, 'needs an amount, e.g. amount = "88.00"')
        return None
    if FAMILY.get(kind) in (Kind.BALANCE, Kind.VOID):
        raise ScenarioError(source, where, "takes no amount (a void carries its original's)")
    texts = raw if isinstance(raw, list) else [raw]
    if not (1 <= len(texts) <= 2 and all(isinstance(t, str) for t in texts)):
        raise ScenarioError(source, where, 'amount must be "12.34" or ["1.00", "500.00"] (yuan, as strings)')
    try:
        cents = [parse_amount(t) for t in texts]
    except ValueError as exc:
        raise ScenarioError(source, where, str(exc)) from None
    low, high = cents[0], cents[-1]
    if not 0 < low <= high:
        raise ScenarioError(source, where, "amount must be above zero, and a range low <= high")
    return (low, high)


def _cards(source: str, raw: Any) -> dict[str, CardProfile]:
    """The [[cards]] of the scenario and the shared test cards, by PAN."""
    known = {c.pan: CardProfile.of(c) for c in DEFAULT_TEST_CARDS}
    if not isinstance(raw, list):
        raise ScenarioError(source, "cards", "must be an array of tables ([[cards]])")
    for i, entry in enumerate(raw, 1):
        where = f"cards entry {i}"
        if not isinstance(entry, dict):
            raise ScenarioError(source, where, "must be a table")
        unknown = set(entry) - _CARD_KEYS
        if unknown:
            raise ScenarioError(source, where, f"unknown keys {sorted(unknown)}")
        values = {k: entry.get(k) for k in ("pan", "expiry", "pin")}
        if not all(isinstance(v, str) for v in values.values()):
            raise ScenarioError(source, where, "pan, expiry and pin are required, as strings")
        entry_mode = _ENTRY.get(entry.get("entry", "swiped"))
        if entry_mode is None:
            raise ScenarioError(source, where, f"entry must be one of {', '.join(_ENTRY)}")
        chip_flag = entry.get("chip", False)
        if not isinstance(chip_flag, bool):
            raise ScenarioError(source, where, "chip must be true or false")
        try:
            chip = _chip(entry, chip_flag)
            card = CardProfile(pan=entry["pan"], expiry=entry["expiry"], pin=entry["pin"],
                               service_code=str(entry.get("service_code", "220" if chip else "101")),
                               entry=entry_mode, chip=chip, fallback=entry.get("entry") == "fallback")
        except ValueError as exc:
            raise ScenarioError(source, where, str(exc)) from None
        known[card.pan] = card
    return known


def _chip(entry: dict[str, Any], chip: bool) -> ChipProfile | None:
    """A [[cards]] entry's chip: its IMK-AC given, or derived from the fleet's seed."""
    imk, psn = entry.get("imk_ac"), entry.get("psn", "01")
    if not chip:
        if imk is not None or "psn" in entry:
            raise ValueError("imk_ac and psn go with chip = true")
        return None
    if not isinstance(psn, str):
        raise ValueError("psn must be 2 digits, as a string")
    if not (entry["pan"].isdigit() and len(psn) == 2 and psn.isdigit()):
        raise ValueError("a chip card needs a PAN of digits and a psn of 2 digits")
    if imk is None:
        return ChipProfile.derived(entry["pan"], psn)
    try:
        key = bytes.fromhex(imk) if isinstance(imk, str) else b""
    except ValueError:
        key = b""
    if len(key) != 16:
        raise ValueError("imk_ac must be 32 hex digits")
    return ChipProfile.of_imk(key, entry["pan"], psn)


def _card_ref(source: str, where: str, pan: Any, cards: dict[str, CardProfile]) -> CardProfile | None:
    if pan is None:
        return None
    if not isinstance(pan, str) or pan not in cards:
        # Not quoting the value: it may be a real PAN typed by mistake.
        raise ScenarioError(source, where, "not the PAN of a test card or of a [[cards]] entry")
    return cards[pan]


def _string(source: str, where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ScenarioError(source, where, "must be a string")
    return value


def _enum(source: str, where: str, enum: type[_E], value: Any) -> _E:
    try:
        return enum(value)
    except ValueError:
        known = ", ".join(e.value for e in enum)
        raise ScenarioError(source, where, f"{value!r} is not one of {known}") from None


def _think(source: str, value: Any) -> tuple[float, float]:
    if isinstance(value, bool):
        raise ScenarioError(source, "think_ms", "must be a number or [low, high]")
    if isinstance(value, int | float):
        low = high = float(value)
    elif (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        low, high = float(value[0]), float(value[1])
    else:
        raise ScenarioError(source, "think_ms", "must be a number or [low, high]")
    if low < 0 or high < low:
        raise ScenarioError(source, "think_ms", f"needs 0 <= low <= high, got {value!r}")
    return (low, high)
