"""What a live view shows of a /metrics endpoint, computed from two scrapes (sans-I/O).

``parse`` reads the Prometheus text format; ``summarise(previous, current)`` turns two scrapes
into one ``RoleView`` per role whose families it finds (specs/metrics.py ``FAMILIES``: a switch,
an HSM, a fleet, or several in one scrape): exchanges per second over the interval, response
codes so far, p50/p99 over the interval (from the histogram's buckets, interpolated within a
bucket as Prometheus's ``histogram_quantile`` does), connections, terminals signed in, the
health of the HSM as the switch sees it (or as the HSM itself counts), failures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from specs.metrics import FAMILIES

Labels = frozenset[tuple[str, str]]
Samples = Mapping[tuple[str, Labels], float]


@dataclass(frozen=True, slots=True)
class Scrape:
    time: float  # seconds, any monotonic clock
    samples: Samples


def parse(text: str, at: float) -> Scrape:
    samples: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return Scrape(at, samples)


def roles_in(scrape: Scrape) -> tuple[str, ...]:
    """The roles whose main family is in the scrape, in FAMILIES order."""
    names = {name for name, _ in scrape.samples}
    found = []
    for role, families in FAMILIES.items():
        main = families[0]
        if any(n.startswith(main) for n in names):
            found.append(role)
    return tuple(found)


def _sum(samples: Samples, name: str, **match: str) -> float:
    wanted = set(match.items())
    return sum(v for (n, labels), v in samples.items() if n == name and wanted <= labels)


def _by(samples: Samples, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for (n, labels), v in samples.items():
        if n == name:
            key = dict(labels).get(label, "")
            out[key] = out.get(key, 0.0) + v
    return out


def _buckets(samples: Samples, name: str) -> dict[float, float]:
    """Cumulative bucket counts of a histogram, summed over its other labels, by upper bound."""
    out: dict[float, float] = {}
    for (n, labels), v in samples.items():
        if n == f"{name}_bucket":
            le = float(dict(labels)["le"])
            out[le] = out.get(le, 0.0) + v
    return out


def quantile(q: float, cumulative: Mapping[float, float]) -> float | None:
    """The q-quantile (0..1) of a histogram given as cumulative counts by upper bound; None
    when it holds no observation. Within a bucket the value is interpolated linearly; past the
    last finite bound, that bound."""
    bounds = sorted(cumulative)
    if not bounds or cumulative[bounds[-1]] <= 0:
        return None
    total = cumulative[bounds[-1]]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank and count > below:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound if not math.isinf(bound) else lower, count
    return lower


def _delta(current: Mapping[float, float], previous: Mapping[float, float] | None) -> dict[float, float]:
    if previous is None:
        return dict(current)
    return {le: v - previous.get(le, 0.0) for le, v in current.items()}


@dataclass(frozen=True, slots=True)
class HsmHealth:
    """The HSM as the switch sees it (its commands to it), or as the HSM counts itself."""

    commands_per_s: float
    p99_ms: float | None
    failures: tuple[tuple[str, int], ...]  # error code (or transport) -> count so far
    failing: bool  # failures went up during the interval

    @property
    def status(self) -> str:
        return "failing" if self.failing else "ok"


@dataclass(frozen=True, slots=True)
class RoleView:
    role: str
    total: int  # exchanges (HSM: commands) so far
    per_second: float  # over the interval; 0 without a previous scrape
    codes: tuple[tuple[str, int], ...]  # response codes (HSM: error codes) so far, most first
    p50_ms: float | None  # over the interval (the whole run without a previous scrape)
    p99_ms: float | None
    connections_open: int
    connections_accepted: int
    closed: tuple[tuple[str, int], ...]
    wire_errors: int
    failures: tuple[tuple[str, int], ...]  # fleet: failure kinds; switch: rules fired; HSM: -
    signed_in: int | None  # switch only
    hsm: HsmHealth | None


_EXCHANGES = {"switch": "switchsim_switch_exchanges_total", "hsm": "switchsim_hsm_commands_total",
              "fleet": "switchsim_fleet_exchanges_total"}
_CODE_LABEL = {"switch": "code", "hsm": "error", "fleet": "code"}
_LATENCY = {"switch": "switchsim_switch_exchange_seconds", "hsm": "switchsim_hsm_command_seconds",
            "fleet": "switchsim_fleet_exchange_seconds"}


def _ranked(counts: Mapping[str, float]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(((k, int(v)) for k, v in counts.items() if v), key=lambda kv: (-kv[1], kv[0])))


def summarise(previous: Scrape | None, current: Scrape) -> tuple[RoleView, ...]:
    return tuple(_role(role, previous, current) for role in roles_in(current))


def _role(role: str, previous: Scrape | None, current: Scrape) -> RoleView:
    now = current.samples
    before = previous.samples if previous is not None else None
    p = f"switchsim_{role}"
    total = _sum(now, _EXCHANGES[role])
    elapsed = current.time - previous.time if previous is not None else 0.0
    per_second = (total - _sum(before, _EXCHANGES[role])) / elapsed if before is not None and elapsed > 0 else 0.0
    latency = _delta(_buckets(now, _LATENCY[role]), _buckets(before, _LATENCY[role]) if before is not None else None)
    p50, p99 = quantile(0.5, latency), quantile(0.99, latency)
    if role == "fleet":
        failures = _ranked(_by(now, f"{p}_failures_total", "failure"))
    elif role == "switch":
        failures = _ranked(_by(now, f"{p}_rules_fired_total", "rule"))
    else:
        failures = ()
    return RoleView(
        role=role,
        total=int(total),
        per_second=per_second,
        codes=_ranked(_by(now, _EXCHANGES[role], _CODE_LABEL[role])),
        p50_ms=p50 * 1000 if p50 is not None else None,
        p99_ms=p99 * 1000 if p99 is not None else None,
        connections_open=int(_sum(now, f"{p}_connections_open")),
        connections_accepted=int(_sum(now, f"{p}_connections_accepted_total")),
        closed=_ranked(_by(now, f"{p}_connections_closed_total", "reason")),
        wire_errors=int(_sum(now, f"{p}_wire_errors_total")),
        failures=failures,
        signed_in=int(_sum(now, f"{p}_terminals_signed_in")) if role == "switch" else None,
        hsm=_hsm(role, previous, current, elapsed),
    )


def _hsm(role: str, previous: Scrape | None, current: Scrape, elapsed: float) -> HsmHealth | None:
    now = current.samples
    before = previous.samples if previous is not None else None
    if role not in ("switch", "hsm"):
        return None
    latency_name = "switchsim_switch_hsm_command_seconds" if role == "switch" else "switchsim_hsm_command_seconds"
    failures = _hsm_failures(role, now)
    count_now = _sum(now, f"{latency_name}_count")
    rate = 0.0
    failing = False
    if before is not None and elapsed > 0:
        rate = (count_now - _sum(before, f"{latency_name}_count")) / elapsed
        earlier = sum(_hsm_failures(role, before).values())
        failing = sum(failures.values()) > earlier
    latency = _delta(_buckets(now, latency_name), _buckets(before, latency_name) if before is not None else None)
    p99 = quantile(0.99, latency)
    return HsmHealth(rate, p99 * 1000 if p99 is not None else None, _ranked(failures), failing)


def _hsm_failures(role: str, samples: Samples) -> dict[str, float]:
    """Error answers (and transport failures) by code; 01 is a verification's no, not a failure."""
    if role == "switch":
        return _by(samples, "switchsim_switch_hsm_failures_total", "error")
    return {k: v for k, v in _by(samples, "switchsim_hsm_commands_total", "error").items() if k not in ("00", "01")}


def codes_line(codes: Iterable[tuple[str, int]]) -> str:
    return "  ".join(f"{code}: {n:,}" for code, n in codes) or "-"
