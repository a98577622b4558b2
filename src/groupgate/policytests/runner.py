"""Run validated suites in-process, on the store `groupgate serve` uses.

Each suite gets its own embedded store (fakeredis, as `serve --demo` and `groupgate check`
run), its graph imported through the same `import_graph` the admin API calls, and the same
policy loader and compiled engine: a case answers exactly what the server would answer.
A case that raises (an unknown company, say) is an error, reported as a failure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from groupgate.errors import GroupgateError
from groupgate.policytests.sections import Context, Outcome, registered
from groupgate.policytests.suite import Case, Suite
from groupgate.store.service import GraphService


@dataclass(frozen=True, slots=True)
class Result:
    """One case's result; `error` is set when the case raised instead of answering."""

    suite: Suite
    case: Case
    outcome: Outcome
    seconds: float
    error: bool = False

    @property
    def passed(self) -> bool:
        return self.outcome.passed


async def run_suite(suite: Suite) -> list[Result]:
    """Run every case of `suite` against a fresh embedded store holding its graph."""
    service = await GraphService.open(suite.catalog, None, poll_interval=60.0)
    results: list[Result] = []
    try:
        await service.admin.import_graph(suite.tenant, suite.document)
        context = Context(service, suite.tenant, suite.catalog, suite.graph)
        types = registered()
        for case in suite.cases:
            start = time.perf_counter()
            try:
                outcome = await types[case.section].run(case.spec, context)
                error = False
            except GroupgateError as exc:
                outcome, error = Outcome(False, f"error: {exc.detail}"), True
            results.append(Result(suite, case, outcome, time.perf_counter() - start, error))
    finally:
        await service.close()
    return results


async def run_suites(suites: list[Suite]) -> list[Result]:
    """Run the suites one after the other; results in suite and case order."""
    results: list[Result] = []
    for suite in suites:
        results += await run_suite(suite)
    return results
