"""JUnit XML for CI dashboards, written with the standard library only."""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from crashkit.harness.scenarios.loader import ScenarioError
from crashkit.harness.scenarios.results import ScenarioResult


def junit_xml(
    results: Sequence[ScenarioResult], errors: Sequence[ScenarioError]
) -> ET.ElementTree[ET.Element]:
    """One testcase per scenario; a bad file is a testcase with an <error>, one that does
    not apply to the backend (or, in real mode, to a machine without FUSE) <skipped>."""
    skipped = sum(1 for r in results if r.not_applicable is not None)
    failures = sum(
        1 for r in results if r.error is None and r.not_applicable is None and not r.passed
    )
    crashed = sum(1 for r in results if r.error is not None) + len(errors)
    suite = ET.Element(
        "testsuite",
        name="crashkit.scenarios",
        tests=str(len(results) + len(errors)),
        failures=str(failures),
        errors=str(crashed),
        skipped=str(skipped),
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for r in results:
        case = ET.SubElement(
            suite, "testcase", classname=_classname(r.path), name=r.name, time=f"{r.seconds:.3f}"
        )
        if r.not_applicable is not None:  # (never a pass: the run tested nothing)
            ET.SubElement(case, "skipped", message=f"not applicable: {r.not_applicable}")
        elif r.error is not None:
            node = ET.SubElement(case, "error", message=r.first_failure)
            node.text = r.error
        elif not r.passed:
            node = ET.SubElement(case, "failure", message=r.first_failure)
            node.text = "\n".join(f"{c.name}: {c.message}" for c in r.failures)
    for e in errors:
        case = ET.SubElement(
            suite, "testcase", classname=_classname(e.file), name=Path(e.file).stem, time="0"
        )
        node = ET.SubElement(case, "error", message=str(e))
        node.text = str(e)
    ET.indent(suite)
    return ET.ElementTree(suite)


def _classname(path: str) -> str:
    """The scenario's folder, relative to the working directory when inside it, dotted."""
    folder = Path(path).resolve().parent
    with contextlib.suppress(ValueError):  # outside the working directory: keep it whole
        folder = folder.relative_to(Path.cwd())
    return folder.as_posix().strip("/").replace("/", ".") or "scenarios"


def write_junit(
    path: str, results: Sequence[ScenarioResult], errors: Sequence[ScenarioError]
) -> None:
    """Write the report, creating its folder (as pytest's `--junit-xml` does). Raises OSError."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    junit_xml(results, errors).write(path, encoding="utf-8", xml_declaration=True)
