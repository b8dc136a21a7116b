"""JUnit XML, the one writer for every switchsim result that a CI server reads (the conformance
checks, the fleet's verdict).

The file is the common subset CI servers read (Jenkins, GitLab, GitHub test reporters)::

    <testsuites>
      <testsuite name=... tests=N failures=F skipped=S errors="0" time=SECONDS>
        <properties><property name=... value=.../></properties>
        <testcase classname=... name=... time=SECONDS>
          <failure message="one line" type=...>more lines</failure>   (a failed case)
          <skipped message="why"/>                                   (a skipped case)
          <system-out>what was measured</system-out>                 (optional)
        </testcase>
      </testsuite>
    </testsuites>
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One test case; at most one of ``failure`` and ``skipped`` (their one-line messages)."""

    classname: str
    name: str
    seconds: float = 0.0
    failure: str | None = None
    failure_type: str = "Failure"
    failure_text: str = ""
    skipped: str | None = None
    output: str = ""

    def __post_init__(self) -> None:
        if self.failure is not None and self.skipped is not None:
            raise ValueError(f"test case {self.name!r} cannot both fail and be skipped")


def junit_tree(
    suite: str, cases: Sequence[Case], *, properties: Mapping[str, str] | None = None, seconds: float | None = None
) -> ET.Element:
    total = sum(c.seconds for c in cases) if seconds is None else seconds
    element = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(cases)),
        failures=str(sum(c.failure is not None for c in cases)),
        skipped=str(sum(c.skipped is not None for c in cases)),
        errors="0",
        time=f"{total:.3f}",
    )
    if properties:
        props = ET.SubElement(element, "properties")
        for name, value in properties.items():
            ET.SubElement(props, "property", name=name, value=value)
    for c in cases:
        case = ET.SubElement(element, "testcase", classname=c.classname, name=c.name, time=f"{c.seconds:.3f}")
        if c.failure is not None:
            failure = ET.SubElement(case, "failure", message=c.failure, type=c.failure_type)
            failure.text = c.failure_text or c.failure
        elif c.skipped is not None:
            ET.SubElement(case, "skipped", message=c.skipped)
        if c.output:
            ET.SubElement(case, "system-out").text = c.output
    root = ET.Element("testsuites")
    root.append(element)
    ET.indent(root)
    return root


def write_junit(
    path: Path,
    suite: str,
    cases: Sequence[Case],
    *,
    properties: Mapping[str, str] | None = None,
    seconds: float | None = None,
) -> None:
    """Write one testsuite of ``cases`` to ``path`` (its directory is created);
    ``seconds`` is the suite's time, by default the cases' sum."""
    root = junit_tree(suite, cases, properties=properties, seconds=seconds)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
