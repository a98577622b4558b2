"""What `groupgate test` prints, and its JUnit XML.

The text report lists each failure (suite file, case path and name, what was expected and
what came back, the explain trace), then one summary line:
`3 suites, 41 cases: 40 passed, 1 failed`. The JUnit XML has one `<testsuite>` per suite and
one `<testcase>` per case (`classname` the suite file, `name` `<path> <case name>`), a
`<failure>` or `<error>` holding the same detail, as CI systems (GitLab, Jenkins, GitHub
actions' reporters) read it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from groupgate.policytests.runner import Result
from groupgate.policytests.suite import Suite


def failure_text(result: Result) -> str:
    """The lines of one failure, for the terminal and for the XML."""
    case = result.case
    head = f"FAIL {case.at.file}:{case.at.path} {case.name!r} (suite {result.suite.name!r})"
    return "\n".join(
        [head, f"  {result.outcome.message}", *(f"  {d}" for d in result.outcome.detail)]
    )


def summary(suites: Sequence[Suite], results: Sequence[Result]) -> str:
    failed = sum(1 for r in results if not r.passed)
    return (
        f"{len(suites)} suite{'s' * (len(suites) != 1)}, {len(results)} cases: "
        f"{len(results) - failed} passed, {failed} failed"
    )


def text_report(suites: Sequence[Suite], results: Sequence[Result], verbose: bool = False) -> str:
    lines: list[str] = []
    for result in results:
        if not result.passed:
            lines.append(failure_text(result))
        elif verbose:
            case = result.case
            lines.append(
                f"ok   {case.at.file}:{case.at.path} {case.name!r}: {result.outcome.message}"
            )
    lines.append(summary(suites, results))
    return "\n".join(lines)


def junit(suites: Sequence[Suite], results: Sequence[Result]) -> bytes:
    """The results as JUnit XML (UTF-8, with declaration)."""
    root = ET.Element("testsuites", name="groupgate test")
    by_suite: dict[int, list[Result]] = {id(s): [] for s in suites}
    for result in results:
        by_suite[id(result.suite)].append(result)
    totals = [0, 0, 0]
    for suite in suites:
        own = by_suite[id(suite)]
        errors = sum(1 for r in own if r.error)
        failures = sum(1 for r in own if not r.passed and not r.error)
        node = ET.SubElement(
            root,
            "testsuite",
            name=suite.name,
            file=suite.file,
            tests=str(len(own)),
            failures=str(failures),
            errors=str(errors),
            time=f"{sum(r.seconds for r in own):.6f}",
        )
        for result in own:
            case = ET.SubElement(
                node,
                "testcase",
                classname=suite.file,
                name=f"{result.case.at.path} {result.case.name}",
                time=f"{result.seconds:.6f}",
            )
            if not result.passed:
                tag = "error" if result.error else "failure"
                item = ET.SubElement(case, tag, message=result.outcome.message)
                item.text = failure_text(result)
        totals[0] += len(own)
        totals[1] += failures
        totals[2] += errors
    root.set("tests", str(totals[0]))
    root.set("failures", str(totals[1]))
    root.set("errors", str(totals[2]))
    ET.indent(root)
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return out + b"\n"
