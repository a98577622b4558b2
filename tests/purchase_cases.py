"""The purchase cases of `tests/data/purchases/*.yaml`, shared by their three runners.

Each file holds `cases`; a case has a `name`, a `graph` (a graph document, or `{file: NAME}`
for a document of `policies/`), optional `policy_rules` (what `approval_rules.yaml` would
hold) and `purchases`: the question (`subject`, `company`, `amount`, `currency` (default EUR),
`cost_center`) and the expected answer (`decision`, `rule`, and where given `approvers`,
`tiers`, `rules`, `limit`; `error: true` for an answer that is an error, never an allow).

The runners: the engine (tests/engine/test_purchase_cases.py), HTTP
(tests/api/test_purchase_cases.py) and the store on fakeredis, Redis and the Cluster
(tests/store/test_approval_rules.py). Each compares the answer as `/v1/purchases/evaluate`
writes it (`answer_json` for the engine's decision).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from groupgate.engine.graph import parse_approval_rules
from groupgate.model import ApprovalRule, PurchaseDecision

REPO = Path(__file__).resolve().parents[1]
CASES_DIR = REPO / "tests" / "data" / "purchases"
CASE_FIELDS = {"name", "graph", "purchases", "policy_rules"}
QUESTION = {"subject", "company", "amount", "currency", "cost_center"}
EXPECTED = {"decision", "rule", "approvers", "tiers", "rules", "limit", "error"}


def load_cases(*, with_policy_rules: bool = True) -> list[Any]:
    """Every case as a pytest parameter (`with_policy_rules=False`: those without)."""
    params = []
    files = sorted(CASES_DIR.glob("*.yaml"))
    assert files, f"no case files in {CASES_DIR}"
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert set(data) == {"cases"}, f"{path.name}: top level must be `cases`"
        for case in data["cases"]:
            assert set(case) <= CASE_FIELDS, f"{path.name}: {case.get('name')}: {sorted(case)}"
            assert {"name", "graph", "purchases"} <= set(case), f"{path.name}: {case}"
            for i, item in enumerate(case["purchases"]):
                assert set(item) <= QUESTION | EXPECTED, f"{case['name']}: purchases[{i}]"
                assert {"subject", "company", "amount", "decision", "rule"} <= set(item)
            if case.get("policy_rules") and not with_policy_rules:
                continue
            params.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return params


def document(case: dict[str, Any], tenant: str) -> dict[str, Any]:
    """The case's graph document, for `tenant`."""
    doc = case["graph"]
    if set(doc) == {"file"}:
        doc = json.loads((REPO / "policies" / doc["file"]).read_text(encoding="utf-8"))
    return {**doc, "tenant": tenant}


def policy_rules(case: dict[str, Any]) -> tuple[ApprovalRule, ...]:
    return parse_approval_rules(case.get("policy_rules") or [], "policy_rules")


def policy_file(case: dict[str, Any]) -> str:
    """The case's tenant-wide rules as `approval_rules.yaml` would hold them."""
    return yaml.safe_dump({"approval_rules": case.get("policy_rules") or []})


def question(item: dict[str, Any]) -> dict[str, Any]:
    """The body of `/v1/purchases/evaluate` for one purchase (without the tenant)."""
    body = {
        "subject": {"id": item["subject"]},
        "company": item["company"],
        "amount": item["amount"],
        "currency": item.get("currency", "EUR"),
    }
    if "cost_center" in item:
        body["cost_center"] = item["cost_center"]
    return body


def answer_json(result: PurchaseDecision) -> dict[str, Any]:
    """The engine's decision as `/v1/purchases/evaluate` writes it (`api/purchases.py`)."""
    tiers = []
    for tier, found in zip(result.tiers, result.eligible, strict=True):
        eligible = {"groups": list(found.groups), "subjects": list(found.subjects)}
        tiers.append({**tier.as_json(), "eligible": eligible})
    return {
        "decision": result.decision,
        "rule": result.rule,
        "approvers": {
            "groups": list(result.approver_groups),
            "subjects": list(result.approver_subjects),
        },
        "limit": result.limit.as_json() if result.limit is not None else None,
        "tiers": tiers,
        "rules": list(result.rules),
        "error": result.error is not None,
    }


def mismatches(item: dict[str, Any], answer: dict[str, Any]) -> list[str]:
    """What of `answer` differs from what `item` expects (empty: it is as expected)."""
    out = []
    expected = {key: item[key] for key in EXPECTED if key in item}
    expected.setdefault("error", False)
    for key, value in expected.items():
        if answer.get(key) != value:
            out.append(f"{key}: expected {value!r}, got {answer.get(key)!r}")
    if out:
        asked = {key: item[key] for key in QUESTION if key in item}
        out.insert(0, f"purchase {asked}:")
    return out
