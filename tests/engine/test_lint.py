"""`groupgate.policy.lint`: warnings where seed 004's Role/Permission Matrix wants a companion."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from groupgate.errors import GraphError, PolicyError
from groupgate.model import Group, GroupKind, Level, frozen_map
from groupgate.policy.lint import lint_groups, lint_policy

from .helpers import POLICIES, REPO, catalog, seed_facts

MATRIX = "(seed 004 Role/Permission Matrix)"


def group(gid: str, **access: str) -> Group:
    levels = {t: Level.parse(v) for t, v in access.items()}
    return Group(gid, gid, GroupKind.USER, access=frozen_map(levels))


def test_the_seeds_quote_example_is_in_the_companion_matrix() -> None:
    example = seed_facts("permissions.yaml")["quote_example"]
    assert "at least read access control for companies resources" in example["quote"]
    assert "you'd also need manage access for products" in example["quote"]
    needs = tuple((t, Level.parse(level)) for t, level in example["companions"])
    assert needs == (("companies", Level.READ), ("products", Level.MANAGE))
    key = (example["resource"], Level.parse(example["level"]))
    assert catalog().companions[key] == needs


def test_a_group_managing_quotes_without_its_companions_gets_one_warning_each() -> None:
    warnings = lint_groups(catalog(), [group("quote-managers", quotes="manage")])
    assert warnings == [
        f"group quote-managers: manages quotes without read on companies {MATRIX}",
        f"group quote-managers: manages quotes without manage on products {MATRIX}",
    ]


def test_a_group_with_its_companions_gets_no_warning() -> None:
    reads = {t: "read" for t in ("product_templates", "suppliers", "categories", "tax")}
    reads |= {"price_models": "read", "price_lists": "read", "companies": "read"}
    complete = group("quotes-ok", quotes="manage", products="manage", **reads)
    # A companion granted above the level it needs counts too.
    higher = group(
        "returns-ok", returns="manage", customers="manage", orders="manage", products="read"
    )
    assert lint_groups(catalog(), [complete, higher]) == []


def test_a_companion_granted_too_low_is_reported() -> None:
    warnings = lint_groups(
        catalog(), [group("q", quotes="manage", companies="read", products="read")]
    )
    assert warnings == [f"group q: manages quotes without manage on products {MATRIX}"]


def test_reading_a_type_needs_no_companion() -> None:
    assert lint_groups(catalog(), [group("readers", quotes="read", price_lists="read")]) == []


def test_predefined_groups_are_not_linted() -> None:
    admin = dataclasses.replace(group("c1/admin", quotes="manage"), predefined=True)
    assert lint_groups(catalog(), [admin]) == []


def test_lint_groups_accepts_a_graph_document() -> None:
    doc = {
        "tenant": "t",
        "vendors": [{"id": "abc", "name": "ABC"}],
        "groups": [
            {
                "id": "pricing",
                "name": "Pricing",
                "kind": "user",
                "access": {"price_models": "manage"},
            }
        ],
    }
    # The vendor product manager manages products without their companions, but its access
    # cannot be changed, so it is not reported.
    assert lint_groups(catalog(), doc) == [
        f"group pricing: manages price_models without manage on products {MATRIX}"
    ]


def test_lint_groups_refuses_an_invalid_graph_document() -> None:
    with pytest.raises(GraphError) as info:
        lint_groups(catalog(), {"tenant": "t", "groups": [{"name": "x", "kind": "robot"}]})
    assert info.value.path == "groups[0].kind"


def test_lint_policy_lints_role_templates_and_the_demo_graph() -> None:
    warnings = lint_policy(POLICIES)
    assert (
        f"role template catalog_manager: manages products without read on tax {MATRIX}" in warnings
    )
    assert (
        f"demo.json: group de-fulfillment: manages returns without read on products {MATRIX}"
        in warnings
    )
    # The three standard roles satisfy the matrix.
    assert not [
        w
        for w in warnings
        if w.startswith(("role template viewer", "role template manager", "role template admin"))
    ]
    assert warnings == lint_policy(POLICIES), "lint output must be stable"


def test_lint_policy_without_companions_or_document_finds_nothing() -> None:
    assert lint_policy(REPO / "policies" / "examples" / "authzen-todo") == []


def copy_policy(tmp_path: Path) -> Path:
    target = tmp_path / "policy"
    target.mkdir()
    for path in POLICIES.glob("*.yaml"):
        shutil.copy(path, target / path.name)
    return target


def test_lint_policy_prefers_data_json_over_demo_json(tmp_path: Path) -> None:
    root = copy_policy(tmp_path)
    data = {
        "tenant": "t",
        "groups": [{"id": "q", "name": "Q", "kind": "user", "access": {"quotes": "manage"}}],
    }
    demo = {
        "tenant": "t",
        "groups": [{"id": "d", "name": "D", "kind": "user", "access": {"sites": "manage"}}],
    }
    (root / "data.json").write_text(json.dumps(data))
    (root / "demo.json").write_text(json.dumps(demo))
    documents = [w for w in lint_policy(root) if not w.startswith("role template")]
    assert documents == [
        f"data.json: group q: manages quotes without read on companies {MATRIX}",
        f"data.json: group q: manages quotes without manage on products {MATRIX}",
    ]


def test_lint_policy_names_the_document_and_entry_of_an_invalid_graph(tmp_path: Path) -> None:
    root = copy_policy(tmp_path)
    (root / "demo.json").write_text(
        json.dumps({"tenant": "t", "groups": [{"name": "x", "kind": "robot"}]})
    )
    with pytest.raises(GraphError) as info:
        lint_policy(root)
    assert info.value.path == "demo.json: groups[0].kind"
    assert str(info.value) == "demo.json: groups[0].kind: expected user or customer"
    (root / "demo.json").write_text("{not json")
    with pytest.raises(GraphError) as bad:
        lint_policy(root)
    assert bad.value.path == "demo.json" and "not valid JSON" in str(bad.value)


def test_lint_policy_raises_on_an_invalid_policy(tmp_path: Path) -> None:
    root = copy_policy(tmp_path)
    (root / "companions.yaml").write_text("manage: {spaceships: {read: [orders]}}")
    with pytest.raises(PolicyError) as info:
        lint_policy(root)
    assert info.value.file == "companions.yaml" and info.value.path == "manage.spaceships"
