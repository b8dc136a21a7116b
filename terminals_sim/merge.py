"""Merging fleet reports (report.py's schema) from several processes or machines into one.

What a merge holds, for reports ``r1 ... rn``:

- counts (exchanges, ok, failures by kind, response codes, by_kind) are the sums;
- latency: the histograms are added bucket by bucket (histogram.py), so the merged
  percentiles are those of all the samples pooled, within the same 1/256; max and mean exact;
- ``tps_over_time`` is aligned on the wall-clock second (``t``): the points of every report for
  one Unix second are added, their histograms too, and p50/p99 read again from the sum; a
  second no report covers, between the first and the last, is an empty point (a gap);
- ``started_at`` is the earliest start, ``duration_s`` runs from there to the latest end, and
  ``tps`` is the merged exchanges over that span (so shards that did not run at the same time
  are not reported as if they had);
- ``terminals`` is the sum: each report is taken as its own shard of terminals;
- ``max_connected`` is the largest, over the merged seconds, of the sum of each report's peak in
  that second, and never less than the largest of the reports' own ``max_connected``. A sum of
  the reports' ``max_connected`` would add peaks reached at different times; the per-second sum
  adds only peaks of the same second, so it is exact when connections are held for the second
  (a fleet's usual habit) and otherwise an upper bound by at most the churn within one second;
- the problems are summed by text and the 20 most frequent kept (a problem outside every
  report's own 20 is not seen);
- the thresholds and the verdict are judged again on the merged figures.

Every input is checked first: a wrong schema, a missing key or a value of the wrong type is a
``ReportError`` that names the file and the key.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from terminals_sim.histogram import Histogram, HistogramError, buckets_from_json
from terminals_sim.report import SCHEMA, KindPart, RunParts, SecondPart, assemble
from terminals_sim.verdict import ThresholdError, Thresholds


class ReportError(ValueError):
    """A report that cannot be read or merged; the message names the file and the key."""


def _get(doc: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in doc:
        raise ReportError(f"{where}: missing {key!r}")
    return doc[key]


def _int(doc: Mapping[str, Any], key: str, where: str) -> int:
    value = _get(doc, key, where)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ReportError(f"{where}.{key}: must be a whole number, got {value!r}")
    return value


def _number(doc: Mapping[str, Any], key: str, where: str) -> float:
    value = _get(doc, key, where)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ReportError(f"{where}.{key}: must be a number, got {value!r}")
    return float(value)


def _object(doc: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = _get(doc, key, where)
    if not isinstance(value, dict):
        raise ReportError(f"{where}.{key}: must be an object")
    return value


def _counts(doc: Mapping[str, Any], key: str, where: str) -> Counter[str]:
    obj = _object(doc, key, where)
    return Counter({name: _int(obj, name, f"{where}.{key}") for name in obj})


def _str(doc: Mapping[str, Any], key: str, where: str) -> str:
    value = _get(doc, key, where)
    if not isinstance(value, str):
        raise ReportError(f"{where}.{key}: must be a string, got {value!r}")
    return value


def parse_report(doc: Any, where: str) -> tuple[RunParts, Thresholds]:
    """A report document back into its parts, checked; ``where`` names it in errors."""
    if not isinstance(doc, dict):
        raise ReportError(f"{where}: not a JSON object")
    schema = doc.get("schema")
    if schema != SCHEMA:
        raise ReportError(f"{where}: schema is {schema!r}, this version merges {SCHEMA!r} reports only")
    try:
        started = datetime.fromisoformat(_str(doc, "started_at", where)).timestamp()
    except ValueError:
        raise ReportError(f"{where}.started_at: not an ISO 8601 time: {doc['started_at']!r}") from None
    by_kind: dict[str, KindPart] = {}
    kinds = _object(doc, "by_kind", where)
    try:
        for name, k in kinds.items():
            at = f"{where}.by_kind.{name}"
            if not isinstance(k, dict):
                raise ReportError(f"{at}: must be an object")
            by_kind[name] = KindPart(
                exchanges=_int(k, "exchanges", at),
                ok=_int(k, "ok", at),
                failures=_int(k, "failures", at),
                failure_kinds=_counts(k, "failure_kinds", at),
                response_codes=_counts(k, "response_codes", at),
                latency=Histogram.from_json(_get(k, "latency_histogram", at), f"{at}.latency_histogram"),
            )
        points = _get(doc, "tps_over_time", where)
        if not isinstance(points, list):
            raise ReportError(f"{where}.tps_over_time: must be a list")
        seconds = []
        for n, p in enumerate(points):
            at = f"{where}.tps_over_time[{n}]"
            if not isinstance(p, dict):
                raise ReportError(f"{at}: must be an object")
            seconds.append(SecondPart(
                t=_int(p, "t", at),
                exchanges=_int(p, "exchanges", at),
                failures=_int(p, "failures", at),
                connected=_int(p, "connected", at),
                response_codes=_counts(p, "response_codes", at),
                failure_kinds=_counts(p, "failure_kinds", at),
                latency=buckets_from_json(_get(p, "latency_buckets", at), f"{at}.latency_buckets"),
            ))
        thresholds = Thresholds.from_json(_get(doc, "thresholds", where), f"{where}.thresholds")
    except (HistogramError, ThresholdError) as exc:
        raise ReportError(str(exc)) from None
    problems: Counter[str] = Counter()
    for n, p in enumerate(_get(_object(doc, "expectations", where), "problems", f"{where}.expectations")):
        at = f"{where}.expectations.problems[{n}]"
        if not isinstance(p, dict):
            raise ReportError(f"{at}: must be an object")
        problems[_str(p, "text", at)] += _int(p, "count", at)
    merged_from = _get(doc, "merged_from", where)
    if not isinstance(merged_from, list):
        raise ReportError(f"{where}.merged_from: must be a list")
    parts = RunParts(
        target=_str(doc, "target", where),
        scenario=_str(doc, "scenario", where),
        terminals=_int(doc, "terminals", where),
        started_at=started,
        duration_s=_number(doc, "duration_s", where),
        timeout_ms=_number(doc, "timeout_ms", where),
        by_kind=by_kind,
        seconds=seconds,
        max_connected=_int(doc, "max_connected", where),
        problems=problems,
        merged_from=merged_from or [{
            "target": doc["target"], "scenario": doc["scenario"], "terminals": doc["terminals"],
            "started_at": doc["started_at"], "exchanges": doc.get("exchanges"),
        }],
    )
    return parts, thresholds


def load_report(path: Path) -> tuple[RunParts, Thresholds]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    return parse_report(doc, str(path))


def _distinct(values: Sequence[str]) -> str:
    return ", ".join(dict.fromkeys(values))


def merge_parts(parts: Sequence[RunParts]) -> RunParts:
    if not parts:
        raise ReportError("nothing to merge")
    start = min(p.started_at for p in parts)
    end = max(p.started_at + p.duration_s for p in parts)
    by_kind: dict[str, KindPart] = {}
    by_second: dict[int, SecondPart] = {}
    problems: Counter[str] = Counter()
    for p in parts:
        for name, k in p.by_kind.items():
            by_kind.setdefault(name, KindPart()).add(k)
        for s in p.seconds:
            by_second.setdefault(s.t, SecondPart(t=s.t)).add(s)
        problems.update(p.problems)
    seconds = []
    if by_second:
        seconds = [by_second.get(t) or SecondPart(t=t) for t in range(min(by_second), max(by_second) + 1)]
    max_connected = max([p.max_connected for p in parts] + [s.connected for s in seconds])
    return RunParts(
        target=_distinct([p.target for p in parts]),
        scenario=_distinct([p.scenario for p in parts]),
        terminals=sum(p.terminals for p in parts),
        started_at=start,
        duration_s=end - start,
        timeout_ms=max(p.timeout_ms for p in parts),
        by_kind=by_kind,
        seconds=seconds,
        max_connected=max_connected,
        problems=problems,
        merged_from=[entry for p in parts for entry in p.merged_from],
    )


def merge_reports(paths: Sequence[Path], thresholds: Thresholds | None = None) -> dict[str, Any]:
    """The merged report of the files at ``paths``, judged against ``thresholds``, or when
    None against the thresholds every input was judged against (they must agree)."""
    loaded = [load_report(path) for path in paths]
    if thresholds is None:
        given = {t for _, t in loaded}
        if len(given) > 1:
            raise ReportError(
                "the reports were judged against different thresholds; give the ones to judge the "
                "merged report against (--max-p99-ms, --min-tps, --max-failure-ratio)"
            )
        thresholds = given.pop()
    return assemble(merge_parts([p for p, _ in loaded]), thresholds)
