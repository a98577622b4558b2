"""Run the purchase cases of `tests/data/purchases/*.yaml` over HTTP (`/v1/purchases/evaluate`).

Each case is imported as its own tenant of a server whose policy directory is the
repository's, with `approval_rules.yaml` holding the case's tenant-wide rules.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.purchase_cases import document, load_cases, mismatches, policy_file, question

from .conftest import POLICIES, MakeClient


@pytest.mark.parametrize("case", load_cases())
async def test_purchase_case_over_http(
    make_client: MakeClient, tmp_path: Path, case: dict[str, Any]
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    (policies / "approval_rules.yaml").write_text(policy_file(case), encoding="utf-8")
    client = await make_client(policies=policies, documents=[document(case, "cases")])
    failures: list[str] = []
    for item in case["purchases"]:
        body = {"tenant": "cases", **question(item)}
        response = await client.post("/v1/purchases/evaluate", json=body)
        if item.get("error"):
            # An error is a problem, never a decision: least of all an allow.
            assert response.status == 422, await response.text()
            problem = await response.json(content_type=None)
            assert "decision" not in problem and item.get("currency", "EUR") in problem["detail"]
            continue
        assert response.status == 200, await response.text()
        answer = await response.json()
        assert isinstance(answer.pop("revision"), int)
        failures += mismatches(item, {**answer, "error": False})
    assert not failures, "\n".join(failures)
