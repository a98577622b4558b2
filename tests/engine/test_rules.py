"""SPEC section 1 rules that are not a plain allow/deny table (those are in `cases/*.yaml`).

Graph rules (assignment, contact propagation, company trees, predefined groups, vendor and
approval groups), restriction filters, the gateway's "some entity" question, and explain
traces. Purchases are in `test_purchases.py`.
"""

from __future__ import annotations

from typing import Any

import pytest

from groupgate.engine import compile_profile, evaluate, restriction_filter, some
from groupgate.engine.graph import expand_memberships
from groupgate.errors import GraphError
from groupgate.model import Filter, Graph, Level

from .helpers import catalog, decide, graph, resource

TREE = [
    {"id": "c-root", "name": "Root AG"},
    {"id": "c-mid", "name": "Mid GmbH", "parent": "c-root"},
    {"id": "c-leaf", "name": "Leaf KG", "parent": "c-mid"},
    {"id": "c-other", "name": "Other SE"},
]


def groups_of(g: Graph, subject: str) -> set[str]:
    return {m.group for m in g.subjects[subject].memberships}


def refused(doc: dict[str, Any]) -> GraphError:
    with pytest.raises(GraphError) as info:
        graph(doc)
    return info.value


# --------------------------------------------------------------------------- assignment rule


@pytest.mark.parametrize(
    "roles",
    [
        ["admin", "buyer"],
        ["buyer", "requester"],
        ["admin", "requester"],
        ["Administrator", "Purchaser"],
    ],
)
def test_two_exclusive_predefined_groups_in_one_company_are_refused(roles: list[str]) -> None:
    error = refused(
        {
            "companies": TREE,
            "subjects": [
                {"id": "ok", "kind": "customer", "companies": {"c-root": ["buyer"]}},
                {"id": "bad", "kind": "customer", "companies": {"c-mid": roles}},
            ],
        }
    )
    assert error.path == "subjects[1].companies.c-mid"
    assert "only one of admin, buyer, requester per company" in str(error)


def test_assignment_rule_also_counts_predefined_groups_joined_by_id() -> None:
    error = refused(
        {
            "companies": TREE,
            "subjects": [
                {
                    "id": "bad",
                    "kind": "customer",
                    "companies": {"c-root": ["admin"]},
                    "groups": ["c-root/requester"],
                }
            ],
        }
    )
    assert error.path == "subjects[0].companies.c-root"


def test_contact_can_always_be_added_next_to_an_exclusive_group() -> None:
    g = graph(
        {
            "companies": TREE,
            "subjects": [
                {"id": "a", "kind": "customer", "companies": {"c-root": ["admin", "contact"]}},
                {"id": "b", "kind": "customer", "companies": {"c-root": ["contact", "requester"]}},
            ],
        }
    )
    assert {"c-root/admin", "c-root/contact"} <= groups_of(g, "a")
    assert {"c-root/requester", "c-root/contact"} <= groups_of(g, "b")


def test_assignment_rule_does_not_reach_across_companies_or_subsidiaries() -> None:
    g = graph(
        {
            "companies": TREE,
            "subjects": [
                {
                    "id": "two",
                    "kind": "customer",
                    "companies": {"c-root": ["admin"], "c-other": ["admin"]},
                },
                {
                    "id": "tree",
                    "kind": "customer",
                    "companies": {"c-root": ["admin"], "c-mid": ["buyer"], "c-leaf": ["requester"]},
                },
            ],
        }
    )
    assert {"c-root/admin", "c-other/admin"} <= groups_of(g, "two")
    assert {"c-root/admin", "c-mid/buyer", "c-leaf/requester"} <= groups_of(g, "tree")


# --------------------------------------------------------------------------- contacts


def test_a_customer_assigned_to_a_company_joins_its_contact_group() -> None:
    g = graph(
        {
            "companies": TREE,
            "settings": {"company_contact_propagation": "DISABLED"},
            "subjects": [
                {"id": "s", "kind": "customer", "companies": {"c-other": ["buyer"]}},
            ],
        }
    )
    assert groups_of(g, "s") == {"c-other/buyer", "c-other/contact"}
    assert decide(g, "s", "read", "companies", company="c-other")
    assert not decide(g, "s", "read", "companies", company="c-root")


@pytest.mark.parametrize(
    ("mode", "assigned", "contacts"),
    [
        (None, "c-leaf", {"c-leaf", "c-mid", "c-root"}),  # UPWARD is the default
        ("UPWARD", "c-leaf", {"c-leaf", "c-mid", "c-root"}),
        ("UPWARD", "c-mid", {"c-mid", "c-root"}),
        ("UPWARD", "c-root", {"c-root"}),
        ("DOWNWARD", "c-root", {"c-root", "c-mid", "c-leaf"}),
        ("DOWNWARD", "c-mid", {"c-mid", "c-leaf"}),
        ("DOWNWARD", "c-leaf", {"c-leaf"}),
        ("DISABLED", "c-leaf", {"c-leaf"}),
        ("DISABLED", "c-root", {"c-root"}),
    ],
)
def test_contact_propagation_follows_the_tenant_setting(
    mode: str | None, assigned: str, contacts: set[str]
) -> None:
    settings = {"company_contact_propagation": mode} if mode else {}
    g = graph(
        {
            "settings": settings,
            "companies": TREE,
            "subjects": [{"id": "s", "kind": "customer", "companies": {assigned: ["contact"]}}],
        }
    )
    assert groups_of(g, "s") == {f"{c}/contact" for c in contacts}
    # A propagated contact is a contact there: it reads that company, and no other.
    for company in ("c-root", "c-mid", "c-leaf", "c-other"):
        assert decide(g, "s", "read", "companies", company=company) is (company in contacts)


def test_propagation_adds_contacts_only_never_the_exclusive_role() -> None:
    g = graph(
        {
            "companies": TREE,
            "subjects": [{"id": "s", "kind": "customer", "companies": {"c-leaf": ["admin"]}}],
        }
    )
    assert groups_of(g, "s") == {
        "c-leaf/admin",
        "c-leaf/contact",
        "c-mid/contact",
        "c-root/contact",
    }
    assert decide(g, "s", "update", "customers", company="c-leaf")
    assert not decide(g, "s", "update", "customers", company="c-root")


def test_propagation_happens_once_later_tree_changes_do_not_rerun_it() -> None:
    g = graph(
        {
            "companies": TREE,
            "subjects": [{"id": "s", "kind": "customer", "companies": {"c-leaf": ["contact"]}}],
        }
    )
    before = g.subjects["s"]
    # c-other becomes the parent of c-root: re-validating the stored subject adds nothing.
    parents = {"c-root": "c-other", "c-mid": "c-root", "c-leaf": "c-mid", "c-other": None}
    after = expand_memberships(before, {}, g.groups, parents, g.settings, "subject")
    assert groups_of(g, "s") == {m.group for m in after.memberships}
    assert "c-other/contact" not in {m.group for m in after.memberships}


# --------------------------------------------------------------------------- company trees


@pytest.mark.parametrize(
    "companies",
    [
        [{"id": "a", "name": "A", "parent": "b"}, {"id": "b", "name": "B", "parent": "a"}],
        [{"id": "a", "name": "A", "parent": "a"}],
        [
            {"id": "a", "name": "A", "parent": "c"},
            {"id": "b", "name": "B", "parent": "a"},
            {"id": "c", "name": "C", "parent": "b"},
            {"id": "d", "name": "D"},
        ],
    ],
)
def test_a_company_tree_with_a_cycle_is_refused(companies: list[dict[str, Any]]) -> None:
    error = refused({"companies": companies})
    assert error.path == "companies"
    assert "cycle" in str(error)


def test_a_company_tree_without_a_cycle_is_accepted() -> None:
    g = graph({"companies": TREE})
    assert g.companies["c-leaf"].parent == "c-mid"
    assert set(g.groups) == {
        f"{c['id']}/{r}" for c in TREE for r in ("admin", "contact", "buyer", "requester")
    }


# --------------------------------------------------------------------------- predefined groups


def test_predefined_groups_are_created_with_the_company_and_marked_predefined() -> None:
    g = graph({"companies": [{"id": "c1", "name": "C1"}]})
    for role in ("admin", "contact", "buyer", "requester"):
        group = g.groups[f"c1/{role}"]
        assert group.predefined and group.company == "c1" and group.role == role
        assert group.access == catalog().predefined[role].access


def test_predefined_groups_cannot_be_changed() -> None:
    error = refused(
        {
            "companies": [{"id": "c1", "name": "C1"}],
            "groups": [
                {
                    "id": "c1/buyer",
                    "name": "Buyer",
                    "kind": "customer",
                    "access": {"orders": "manage"},
                }
            ],
        }
    )
    assert error.path == "groups[0].id"
    assert "cannot be changed" in str(error)


def test_a_custom_group_cannot_claim_to_be_predefined() -> None:
    error = refused({"groups": [{"id": "g", "name": "G", "kind": "user", "predefined": True}]})
    assert error.path == "groups[0].predefined"


def test_vendor_group_access_cannot_be_changed() -> None:
    error = refused(
        {
            "vendors": [{"id": "abc", "name": "ABC"}],
            "groups": [
                {"id": "abc/vendor.order.viewer", "name": "x", "access": {"orders": "manage"}}
            ],
        }
    )
    assert error.path == "groups[0].access"


@pytest.mark.parametrize(
    ("role", "action"),
    [
        ("vendor.product.viewer", "publish"),
        ("vendor.product.viewer", "unpublish"),
        ("vendor.order.manager", "publish"),
    ],
)
def test_only_a_vendor_product_manager_may_be_granted_publishing(role: str, action: str) -> None:
    error = refused(
        {
            "vendors": [{"id": "abc", "name": "ABC"}],
            "groups": [{"id": f"abc/{role}", "name": "x", "actions": {"products": [action]}}],
        }
    )
    assert error.path == "groups[0].actions.products"
    assert f"may not be granted {action!r}" in str(error)


def test_vendor_groups_are_created_with_the_vendor_and_scoped_to_it() -> None:
    g = graph({"vendors": [{"id": "abc", "name": "ABC Company"}]})
    group = g.groups["abc/vendor.product.manager"]
    assert group.vendor == "abc" and group.predefined
    assert group.name == "ABC Company Vendor Product Manager"
    assert group.access == {"products": Level.MANAGE}


def test_a_vendor_user_joins_only_its_own_vendors_groups() -> None:
    error = refused(
        {
            "vendors": [{"id": "abc", "name": "ABC"}, {"id": "xyz", "name": "XYZ"}],
            "subjects": [
                {
                    "id": "vu",
                    "kind": "vendor_user",
                    "vendor": "abc",
                    "groups": ["xyz/vendor.order.manager"],
                }
            ],
        }
    )
    assert error.path == "subjects[0].groups[0]"


@pytest.mark.parametrize(
    ("kind", "group"),
    [("employee", "c1/admin"), ("customer", "staff"), ("employee", "abc/vendor.order.viewer")],
)
def test_a_subject_joins_only_groups_of_its_kind(kind: str, group: str) -> None:
    error = refused(
        {
            "vendors": [{"id": "abc", "name": "ABC"}],
            "companies": [{"id": "c1", "name": "C1"}],
            "groups": [{"id": "staff", "name": "Staff", "kind": "user", "role": "viewer"}],
            "subjects": [{"id": "s", "kind": kind, "groups": [group]}],
        }
    )
    assert error.path == "subjects[0].groups[0]"


# --------------------------------------------------------------------------- approval groups


APPROVAL_BASE: dict[str, Any] = {
    "companies": [{"id": "c1", "name": "C1"}, {"id": "c2", "name": "C2"}],
    "groups": [
        {"id": "c1-approvers", "name": "Approvers", "kind": "customer", "company": "c1"},
        {"id": "c2-approvers", "name": "Approvers", "kind": "customer", "company": "c2"},
        {"id": "staff", "name": "Staff", "kind": "user"},
        {"id": "everyone", "name": "Everyone", "kind": "customer"},
    ],
}


def with_approval_group(name: str) -> dict[str, Any]:
    companies = [{"id": "c1", "name": "C1", "approval_group": name}, {"id": "c2", "name": "C2"}]
    return {**APPROVAL_BASE, "companies": companies}


def test_an_approval_group_must_be_a_custom_customer_group_of_the_company() -> None:
    assert (
        graph(with_approval_group("c1-approvers")).companies["c1"].approval_group == "c1-approvers"
    )
    for bad in ("c2-approvers", "staff", "everyone"):
        error = refused(with_approval_group(bad))
        assert error.path == "companies[0].approval_group", bad
        assert "is not a custom customer group of 'c1'" in str(error)
    # A predefined group's id is not even a valid custom group id.
    assert refused(with_approval_group("c1/admin")).path == "companies[0].approval_group"


def test_an_approval_group_member_must_be_a_customer_of_the_company() -> None:
    doc = with_approval_group("c1-approvers")
    members = [
        {"id": "in-c1", "kind": "customer", "companies": {"c1": []}, "groups": ["c1-approvers"]},
        {"id": "buyer-c1", "kind": "customer", "groups": ["c1/buyer", "c1-approvers"]},
    ]
    assert graph({**doc, "subjects": members}).subjects["in-c1"]
    # In c2 only (or in no company at all): refused, naming the entry and the membership.
    for outsider in (
        {"id": "x", "kind": "customer", "companies": {"c2": ["admin"]}, "groups": ["c1-approvers"]},
        {"id": "x", "kind": "customer", "groups": ["c1-approvers"]},
    ):
        error = refused({**doc, "subjects": [*members, outsider]})
        assert error.path == "subjects[2].groups[0]"
        assert "'x' is in 'c1-approvers', the approval group of 'c1'" in str(error)
        assert "not a customer of 'c1'" in str(error)


def test_an_unknown_approval_group_is_refused() -> None:
    error = refused(with_approval_group("nope"))
    assert error.path == "companies[0].approval_group"
    assert "unknown group 'nope'" in str(error)


# --------------------------------------------------------------------------- restriction filter


FILTER_GRAPH: dict[str, Any] = {
    "companies": [{"id": "c1", "name": "C1"}, {"id": "c2", "name": "C2"}],
    "groups": [
        {"id": "viewers", "name": "Viewers", "kind": "user", "role": "viewer"},
        {
            "id": "de-managers",
            "name": "DE",
            "kind": "user",
            "role": "manager",
            "restrictions": ["DE"],
        },
        {
            "id": "fr-managers",
            "name": "FR",
            "kind": "user",
            "role": "manager",
            "restrictions": ["FR"],
        },
    ],
    "subjects": [
        {"id": "emp-mixed", "kind": "employee", "groups": ["viewers", "de-managers"]},
        {"id": "emp-two", "kind": "employee", "groups": ["de-managers", "fr-managers"]},
        {"id": "emp-none", "kind": "employee"},
        {"id": "cust", "kind": "customer", "companies": {"c1": ["admin"], "c2": ["contact"]}},
    ],
}


def profile_of(g: Graph, subject: str) -> Any:
    return compile_profile(catalog(), g.subjects[subject], g.groups, g.settings)


def test_restriction_filter_all_for_an_unrestricted_grant() -> None:
    g = graph(FILTER_GRAPH)
    assert restriction_filter(profile_of(g, "emp-mixed"), "read", "orders").all


def test_restriction_filter_none_without_any_grant() -> None:
    g = graph(FILTER_GRAPH)
    result = restriction_filter(profile_of(g, "emp-none"), "read", "orders")
    assert not result.all and result.filters == ()
    result = restriction_filter(profile_of(g, "emp-mixed"), "publish", "products")
    assert not result.all and result.filters == ()


def test_restriction_filter_lists_the_restriction_values_of_restricted_grants() -> None:
    g = graph(FILTER_GRAPH)
    mixed = restriction_filter(profile_of(g, "emp-mixed"), "update", "orders")
    assert not mixed.all
    assert mixed.filters == (Filter(frozenset({"DE"}), {}, "de-managers"),)
    two = restriction_filter(profile_of(g, "emp-two"), "update", "orders")
    assert not two.all
    assert {(f.restrictions, f.group) for f in two.filters} == {
        (frozenset({"DE"}), "de-managers"),
        (frozenset({"FR"}), "fr-managers"),
    }
    # Products are not site-aware: the restricted groups manage all of them.
    assert restriction_filter(profile_of(g, "emp-two"), "update", "products").all


def test_restriction_filter_lists_companies_for_customer_groups() -> None:
    g = graph(FILTER_GRAPH)
    result = restriction_filter(profile_of(g, "cust"), "update", "customers")
    assert not result.all
    assert [(f.restrictions, dict(f.attributes)) for f in result.filters] == [
        (None, {"company": frozenset({"c1"})})
    ]
    read = restriction_filter(profile_of(g, "cust"), "read", "companies")
    assert {c for f in read.filters for c in f.attributes["company"]} == {"c1", "c2"}


def test_restriction_filter_agrees_with_checks() -> None:
    g = graph(FILTER_GRAPH)
    result = restriction_filter(profile_of(g, "emp-two"), "update", "orders")
    for values in (["DE"], ["FR"], ["US"], [], ["US", "FR"]):
        passes = any(f.restrictions is None or f.restrictions & set(values) for f in result.filters)
        assert passes is decide(g, "emp-two", "update", "orders", restrictions=values)


# --------------------------------------------------------------------------- some (gateway)


def test_some_allows_a_route_when_some_entity_could_be_allowed() -> None:
    g = graph(FILTER_GRAPH)
    assert some(profile_of(g, "emp-two"), "update", "orders").allow
    assert some(profile_of(g, "cust"), "update", "customers").allow
    assert not some(profile_of(g, "cust"), "update", "orders").allow
    assert not some(profile_of(g, "emp-none"), "read", "orders").allow


# --------------------------------------------------------------------------- explain


def test_explain_names_the_group_that_allowed() -> None:
    g = graph(FILTER_GRAPH)
    s = g.subjects["emp-mixed"]
    res = resource("orders", restrictions=["DE"])
    traced = evaluate(catalog(), s, g.groups, g.settings, "update", res)
    assert traced.allow and traced.group == "de-managers"
    assert traced.explain is not None
    assert "group viewers: grants read on orders, update needs manage" in traced.explain
    assert "group de-managers: allows update on orders" in traced.explain
    compiled = decide(g, "emp-mixed", "update", "orders", restrictions=["DE"])
    assert compiled


def test_explain_says_why_nothing_allowed() -> None:
    g = graph(FILTER_GRAPH)
    s = g.subjects["emp-two"]
    traced = evaluate(
        catalog(), s, g.groups, g.settings, "update", resource("orders", restrictions=["US"])
    )
    assert not traced.allow and traced.group is None
    assert traced.explain is not None
    assert "group de-managers: restricted to DE; the resource is in US" in traced.explain
    assert "group fr-managers: restricted to FR; the resource is in US" in traced.explain
    assert traced.explain[-1].startswith("deny: no group grants update on orders")
    nobody = evaluate(
        catalog(), g.subjects["emp-none"], g.groups, g.settings, "read", resource("orders")
    )
    assert nobody.explain is not None and "the subject is in no group" in nobody.explain


def test_explain_notes_disabled_customer_group_support_and_company_scope() -> None:
    doc = {**FILTER_GRAPH, "settings": {"customer_group_support": False}}
    g = graph(doc)
    traced = evaluate(
        catalog(),
        g.subjects["cust"],
        g.groups,
        g.settings,
        "update",
        resource("customers", company="c2"),
    )
    assert not traced.allow and traced.explain is not None
    assert "customer_group_support is off: only predefined company groups apply" in traced.explain
    assert "group c1/admin: applies to company c1, resource company is c2" in traced.explain


def test_compiled_decision_names_the_granting_group_and_its_scope() -> None:
    g = graph(FILTER_GRAPH)
    from groupgate.engine import check

    decision = check(profile_of(g, "emp-two"), "update", resource("orders", restrictions=["FR"]))
    assert decision.allow and decision.group == "fr-managers"
    assert decision.reason == "granted by group fr-managers; restricted to FR"
    denied = check(profile_of(g, "emp-two"), "update", resource("orders", restrictions=["US"]))
    assert not denied.allow and denied.group is None
    assert denied.reason == "no group grants update on orders for this resource"
