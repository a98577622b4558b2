"""Run the decision cases in `tests/engine/cases/*.yaml` against both evaluators.

Each file holds `cases`, each a graph document (`graph`, tenant optional) and `checks`:
`{subject, action, resource: {type, ...}, allow}`. Every check runs through the compiled
profile (`check`) and the reference evaluator (`evaluate`); they must agree with each other and
with `allow`. Every case must prove at least one allow and one deny, so no rule is tested on
one side only. (The vendor cases moved to `tests/engine/suites/vendors_test.yaml`, the
`groupgate test` suite format, run by `test_suites.py` with the same two requirements.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import both, graph, resource

CASES_DIR = Path(__file__).parent / "cases"
CHECK_FIELDS = {"subject", "action", "resource", "allow"}
RESOURCE_FIELDS = {
    "type",
    "id",
    "company",
    "restrictions",
    "vendor",
    "owner",
    "customer",
    "properties",
}


def load_cases() -> list[Any]:
    params = []
    files = sorted(CASES_DIR.glob("*.yaml"))
    assert files, f"no case files in {CASES_DIR}"
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert set(data) == {"cases"}, f"{path.name}: top level must be `cases`"
        for case in data["cases"]:
            assert set(case) == {"name", "graph", "checks"}, f"{path.name}: {case.get('name')}"
            params.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return params


@pytest.mark.parametrize("case", load_cases())
def test_decision_case(case: dict[str, Any]) -> None:
    g = graph(case["graph"])
    outcomes = set()
    failures = []
    for i, item in enumerate(case["checks"]):
        assert set(item) == CHECK_FIELDS, f"checks[{i}] has fields {sorted(item)}"
        assert set(item["resource"]) <= RESOURCE_FIELDS, f"checks[{i}].resource"
        attrs = dict(item["resource"])
        res = resource(attrs.pop("type"), **attrs)
        compiled, reference = both(g, item["subject"], item["action"], res)
        outcomes.add(item["allow"])
        if compiled.allow != item["allow"] or reference.allow != item["allow"]:
            failures.append(
                f"checks[{i}] {item['subject']} {item['action']} {item['resource']}: "
                f"expected allow={item['allow']}, compiled={compiled.allow} "
                f"({compiled.reason}), reference={reference.allow} ({reference.reason})"
            )
        if compiled.allow:
            # An allow always names the group that granted it.
            assert compiled.group in g.groups and reference.group in g.groups
    assert not failures, "\n".join(failures)
    assert outcomes == {True, False}, "a case must prove both an allow and a deny"
