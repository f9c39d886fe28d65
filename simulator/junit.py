"""JUnit XML for scenario checks, the format CI servers display.

One ``<testsuite>`` per scenario file, one ``<testcase>`` per threshold
expression (plus one for the golden summary when there is one). A breached
threshold is a ``<failure>`` with the observed value and the file:line that
declares it; a scenario that could not be loaded or run is an ``<error>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .errors import ScenarioError
from .regression import CheckResult

__all__ = ["junit_xml", "write_junit"]


def _suite(check: CheckResult) -> ET.Element:
    name = check.name or check.path.stem
    suite = ET.Element("testsuite", name=name, file=str(check.path), time=f"{check.seconds:.3f}")
    classname = f"scenarios.{name}"
    tests = failures = errors = 0
    if check.error is not None:
        tests, errors = 1, 1
        case = ET.SubElement(
            suite,
            "testcase",
            classname=classname,
            name="load and run",
            file=str(check.path),
            time=f"{check.seconds:.3f}",
        )
        kind = "bad input" if isinstance(check.error, ScenarioError) else "run error"
        first = str(check.error).splitlines()[0] if str(check.error) else kind
        error = ET.SubElement(case, "error", type=type(check.error).__name__, message=f"{kind}: {first}")
        error.text = str(check.error)
    for outcome in check.outcomes:
        tests += 1
        t = outcome.threshold
        line = outcome.where.rpartition(":")[2]
        attrs = {"classname": classname, "name": f"{t.key}: {t.expression}", "file": str(check.path), "time": "0"}
        if line.isdigit():
            attrs["line"] = line
        case = ET.SubElement(suite, "testcase", attrs)
        if not outcome.ok:
            failures += 1
            failure = ET.SubElement(
                case, "failure", type="threshold", message=f"{t.key} {t.expression}: observed {outcome.shown}"
            )
            failure.text = f"{outcome.where}: threshold {t.key}: {t.expression} breached, observed {outcome.shown}"
    if check.golden is not None:
        tests += 1
        case = ET.SubElement(
            suite,
            "testcase",
            classname=classname,
            name=f"golden summary {check.golden.name}",
            file=str(check.path),
            time="0",
        )
        if check.golden_diff:
            failures += 1
            failure = ET.SubElement(
                case,
                "failure",
                type="golden",
                message=f"summary differs from {check.golden} in {len(check.golden_diff)} value(s)",
            )
            failure.text = "\n".join(check.golden_diff)
    out = ET.SubElement(suite, "system-out")
    out.text = "\n".join(check.lines())
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", "0")
    return suite


def junit_xml(checks: list[CheckResult]) -> str:
    """The JUnit XML document for *checks*."""
    root = ET.Element("testsuites", name="smtp-outage check")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    seconds = 0.0
    for check in checks:
        suite = _suite(check)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        seconds += check.seconds
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{seconds:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: str | Path, checks: list[CheckResult]) -> Path:
    """Write the JUnit XML for *checks* to *path*."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml(checks), encoding="utf-8")
    return path
