"""`groupgate test`: the repository's suites pass, failures carry their trace, bad suites
are refused with the file and the path inside it, and new section types plug in.

The repository's suites: `policies/tests/` (the demo graph), the AuthZEN examples'
`tests/`, and `tests/engine/suites/` (engine case tables in the suite format, run against
`policies/`).
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from groupgate.cli import main
from groupgate.model import Catalog, Graph, Money
from groupgate.policytests import Context, Loader, Outcome, SuiteError, discover, run_suites
from groupgate.policytests import sections as registry
from groupgate.policytests.at import At
from groupgate.policytests.checks import CheckSpec

from .helpers import POLICIES, REPO

ENGINE_SUITES = REPO / "tests" / "engine" / "suites"

GRAPH = """
graph:
  groups:
    - {id: viewers, name: Viewers, kind: user, role: viewer}
  companies:
    - {id: c, name: C, account_limit: {amount: "100.00", currency: EUR}}
  subjects:
    - {id: vera, kind: employee, groups: [viewers]}
    - {id: buyer, kind: customer, companies: {c: [buyer]}}
    - {id: admin, kind: customer, companies: {c: [admin]}}
"""


def write(tmp_path: Path, body: str, name: str = "x_test.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["test", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_repository_suites_pass(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, str(POLICIES))
    assert status == 0, out
    assert out.strip().splitlines()[-1] == "3 suites, 36 cases: 36 passed, 0 failed"
    for example in ("authzen-todo", "authzen-search"):
        assert discover([POLICIES / "examples" / example]), f"{example} has no suite"


def test_engine_case_tables_run_as_suites() -> None:
    suites = Loader(POLICIES).load(discover([ENGINE_SUITES]))
    assert suites
    results = asyncio.run(run_suites(suites))
    failed = [r for r in results if not r.passed]
    assert not failed, [(r.case.at, r.outcome.message) for r in failed]
    for suite in suites:
        # As the case tables required: every suite proves an allow and a deny.
        outcomes = {c.spec.allow for c in suite.cases if isinstance(c.spec, CheckSpec)}
        assert outcomes == {True, False}, suite.name


def test_a_failure_prints_its_trace_writes_junit_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write(
        tmp_path,
        "name: mixed\n"
        + GRAPH
        + """
checks:
  - {name: vera reads orders, subject: vera, action: read, resource: {type: orders},
     expect: allow}
  - {name: vera updates orders, subject: vera, action: update, resource: {type: orders},
     expect: allow}
  - {name: reason mismatch, subject: vera, action: read, resource: {type: orders},
     expect: allow, reason: no such words}
purchases:
  - {name: over the limit, subject: buyer, company: c, amount: "150.00", currency: EUR,
     expect: {decision: allow}}
  - {name: admin approves, subject: buyer, company: c, amount: "150.00", currency: EUR,
     expect: {decision: approval_required, rule: buyer_over_limit, approvers: [admin]}}
""",
    )
    report = tmp_path / "out" / "junit.xml"
    report.parent.mkdir()
    status, out, _ = run(capsys, str(suite), "--policies", str(POLICIES), "--junit", str(report))
    assert status == 1
    assert out.strip().splitlines()[-1] == "1 suite, 5 cases: 2 passed, 3 failed"
    assert f"FAIL {suite}:checks[1] 'vera updates orders'" in out
    assert "expected allow, got deny (no group grants update on orders)" in out
    assert "explain:" in out and "group viewers:" in out
    assert "expected a reason containing 'no such words'" in out
    assert "expected decision allow, got approval_required" in out
    assert "rule: buyer_over_limit" in out and "approvers: ['admin']" in out
    root = ET.parse(report).getroot()  # noqa: S314 - our own output
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "3", "0")
    cases = root.findall("testsuite/testcase")
    assert [c.get("name") for c in cases][:2] == [
        "checks[0] vera reads orders",
        "checks[1] vera updates orders",
    ]
    failure = cases[1].find("failure")
    assert failure is not None and "explain:" in (failure.text or "")
    assert cases[0].find("failure") is None


INVALID = [
    (
        "checks:\n  - {name: a, subject: vera, action: read, resource: {type: orders}, "
        "expect: allow, expected: deny}",
        "checks[0].expected: unknown key",
    ),
    (
        "checks:\n  - {name: a, subject: vera, action: read, resource: {type: orders}, "
        "expect: true}",
        "checks[0].expect: expected one of allow, deny, got 'bool'",
    ),
    (
        "checks:\n  - {name: a, subject: vera, action: read, resource: {type: orders}, "
        "expect: allow}\n  - {name: a, subject: vera, action: read, resource: {type: orders}, "
        "expect: allow}",
        "checks[1].name: a case named 'a' comes earlier",
    ),
    (
        "checks:\n  - {name: a, subject: nobody, action: read, resource: {type: orders}, "
        "expect: deny}",
        "checks[0].subject: the suite's graph has no subject 'nobody'",
    ),
    (
        "checks:\n  - {name: a, subject: vera, action: fly, resource: {type: orders}, "
        "expect: deny}",
        "checks[0].action: 'orders' has no action 'fly'",
    ),
    (
        "checks:\n  - {name: a, subject: vera, action: read, resource: {type: order}, "
        "expect: deny}",
        "checks[0].resource.type: unknown resource type 'order'",
    ),
    (
        "checks:\n  - {name: a, subject: vera, action: read, "
        "resource: {type: orders, restrictions: DE}, expect: deny}",
        "checks[0].resource.restrictions: expected a list, got str",
    ),
    (
        "checks:\n  - {subject: vera, action: read, resource: {type: orders}, expect: deny}",
        "checks[0].name: expected a non-empty string, got null",
    ),
    (
        "purchases:\n  - {name: a, subject: buyer, company: c, amount: 150.0, currency: EUR, "
        "expect: {decision: allow}}",
        "purchases[0].amount: expected a decimal string",
    ),
    (
        "purchases:\n  - {name: a, subject: buyer, company: c, amount: '1', currency: EUR, "
        "expect: {decision: allowed}}",
        "purchases[0].expect.decision: expected one of",
    ),
    (
        "purchases:\n  - {name: a, subject: buyer, company: d, amount: '1', currency: EUR, "
        "expect: {decision: allow}}",
        "purchases[0].company: the suite's graph has no company 'd'",
    ),
    (
        "purchases:\n  - {name: a, subject: buyer, company: c, amount: '1', currency: EUR, "
        "expect: {decision: allow, approvers: admin}}",
        "purchases[0].expect.approvers: expected a list, got str",
    ),
    ("approvals: []", "approvals: unknown key"),
    ("checks: {}", "checks: expected a list, got dict"),
]


@pytest.mark.parametrize(("cases", "error"), INVALID)
def test_an_invalid_suite_names_file_and_path_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cases: str, error: str
) -> None:
    suite = write(tmp_path, "name: bad\n" + GRAPH + cases + "\n")
    status, out, err = run(capsys, str(suite), "--policies", str(POLICIES))
    assert status == 2 and out == ""
    assert err.startswith(f"groupgate test: error: {suite}:"), err
    assert error in err, err


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("name: g\ngraph: {subjects: [{id: v, kind: robot}]}\n", ":graph.subjects[0].kind: "),
        ("name: g\nfixture: missing.json\n", ":fixture: "),
        ("name: g\n" + GRAPH + "fixture: x.json\n", ": name the graph: either"),
        ("name: g\n" + GRAPH, ": no cases"),
        ("name: a\nname: b\n", "not valid YAML"),
        ("suites: []\n", ":suites: expected at least one suite"),
        ("- just a list\n", ": expected a mapping, got list"),
    ],
)
def test_invalid_suite_documents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, error: str
) -> None:
    suite = write(tmp_path, body)
    status, _, err = run(capsys, str(suite), "--policies", str(POLICIES))
    assert status == 2 and error in err, err


def test_a_fixture_error_names_the_fixture_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "g.yaml").write_text("subjects: [{id: v, kind: employee, groups: [nope]}]\n")
    suite = write(tmp_path, "name: g\nfixture: g.yaml\nchecks: []\n")
    status, _, err = run(capsys, str(suite), "--policies", str(POLICIES))
    assert status == 2
    assert f"{tmp_path / 'g.yaml'}:subjects[0].groups[0]: unknown group 'nope'" in err


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, str(tmp_path))
    assert status == 2 and "no test suites (files named *_test.yaml)" in err
    suite = write(tmp_path, "name: g\n" + GRAPH + "checks: []\n")
    status, _, err = run(capsys, str(suite))  # tmp_path is in no policy directory
    assert status == 2 and "no policy directory above it" in err


class Echo:
    """A section type registered by a test: its cases pass when `ok` is true."""

    name = "echo"

    def parse(self, item: dict[str, Any], at: At, graph: Graph, catalog: Catalog) -> bool:
        if set(item) != {"ok"} or not isinstance(item["ok"], bool):
            raise at.fail("expected only `ok: true|false`")
        return bool(item["ok"])

    async def run(self, spec: bool, context: Context) -> Outcome:
        assert context.tenant == "test" and "vera" in context.graph.subjects
        return Outcome(spec, f"echo {spec}")


def test_a_registered_section_type_runs_without_touching_the_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(registry._SECTIONS, "echo", Echo())
    suite = write(
        tmp_path,
        "name: e\n" + GRAPH + "echo:\n  - {name: passes, ok: true}\n  - {name: fails, ok: false}\n",
    )
    suites = Loader(POLICIES).load([suite])
    results = asyncio.run(run_suites(suites))
    assert [(r.case.name, r.passed) for r in results] == [("passes", True), ("fails", False)]
    bad = write(tmp_path, "name: e\n" + GRAPH + "echo:\n  - {name: x, ok: 1}\n", "b_test.yaml")
    with pytest.raises(SuiteError, match=r"b_test.yaml:echo\[0\]: expected only"):
        Loader(POLICIES).load([bad])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Echo())


def test_a_case_that_raises_is_an_error_in_junit(tmp_path: Path) -> None:
    from groupgate.policytests import junit

    class Boom(Echo):
        name = "boom"

        async def run(self, spec: bool, context: Context) -> Outcome:
            one = Money(Decimal("1"), "EUR")
            await context.service.decider.purchase(context.tenant, "vera", "nowhere", one)
            return Outcome(True)

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry._SECTIONS, "boom", Boom())
        suites = Loader(POLICIES).load(
            [write(tmp_path, "name: b\n" + GRAPH + "boom: [{name: x, ok: true}]\n")]
        )
        results = asyncio.run(run_suites(suites))
    assert results[0].error and "unknown company 'nowhere'" in results[0].outcome.message
    root = ET.fromstring(junit(suites, results))  # noqa: S314 - our own output
    assert root.get("errors") == "1" and root.find("testsuite/testcase/error") is not None


FLOWS = """
flows:
  - name: over the limit, an admin approves
    subject: buyer
    company: c
    amount: "500.00"
    currency: EUR
    steps:
      - {approve: buyer, expect: refused}
      - {approve: admin, expect: PENDING}
"""


def test_a_flow_case_fails_with_its_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "name: f\n" + GRAPH + FLOWS)
    status, out, _ = run(capsys, str(path), "--policies", str(POLICIES))
    assert status == 1
    assert "steps[1]: expected PENDING after approve by admin, got APPROVED" in out
    assert "approve by buyer: refused" in out  # the trace of the steps so far
    fixed = FLOWS.replace("expect: PENDING", "expect: APPROVED")
    path = write(tmp_path, "name: f\n" + GRAPH + fixed)
    assert run(capsys, str(path), "--policies", str(POLICIES))[0] == 0


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("{approve: admin, decline: admin, expect: APPROVED}", "exactly one of"),
        ("{approve: nobody, expect: APPROVED}", "no subject 'nobody'"),
        ("{approve: admin, expect: approved}", "steps[0].expect: expected one of"),
        ("{approve: admin, expect: APPROVED, when: now}", "steps[0].when: unknown key"),
    ],
)
def test_a_malformed_flow_step_names_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], step: str, message: str
) -> None:
    body = FLOWS.split("    steps:")[0] + f"    steps:\n      - {step}\n"
    path = write(tmp_path, "name: f\n" + GRAPH + body)
    status, out, err = run(capsys, str(path), "--policies", str(POLICIES))
    assert status == 2 and message in out + err
