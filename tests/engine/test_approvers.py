"""Property: the approvers of a purchase are exactly the subjects who may approve (SPEC 5).

For random graphs (customers in the predefined groups of two companies, through any link
permission, and in the companies' approval groups), the approvers of a requester's purchase
within the limit (the widest approver set: Buyers and Admins, or the approval group) equal the
subjects the check allows `approve` on `approvals` of that company, the requester excepted;
the approvers of every other purchase are among them. Both evaluators answer each check.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groupgate.engine import evaluate_purchase
from groupgate.model import Graph

from .helpers import decide, graph, money, purchase_members, purchase_roles

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COMPANIES = ["c1", "c2"]
SUBJECTS = ["s0", "s1", "s2", "s3", "s4"]
ROLES = [[], ["admin"], ["buyer"], ["requester"], ["contact"]]
link_permission = st.sampled_from([None, "ro", "rw", "same_customer", ["rw", "same_customer"]])


def link(gid: str, permission: Any) -> Any:
    return gid if permission is None else {"group": gid, "permission": permission}


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    companies = [
        {
            "id": c,
            "name": c,
            "account_limit": {"amount": "100", "currency": "EUR"},
            **({"approval_group": f"{c}-approvers"} if draw(st.booleans()) else {}),
        }
        for c in COMPANIES
    ]
    groups = [
        {"id": f"{c}-approvers", "name": "Approvers", "kind": "customer", "company": c}
        for c in COMPANIES
    ]
    subjects: list[dict[str, Any]] = [
        {"id": "req", "kind": "customer", "companies": {c: ["requester"] for c in COMPANIES}}
    ]
    for sid in [*SUBJECTS, "req"]:
        links: list[Any] = []
        assigned: dict[str, list[str]] = {}
        if sid != "req":
            for c in draw(st.lists(st.sampled_from(COMPANIES), unique=True, max_size=2)):
                role = draw(st.sampled_from(ROLES))
                if role and draw(st.booleans()):
                    # Joined by id, with a link permission.
                    links.append(link(f"{c}/{role[0]}", draw(link_permission)))
                    links.append(f"{c}/contact")
                else:
                    assigned[c] = role
        customer_of = set(assigned) | {c for c in COMPANIES if sid == "req"}
        customer_of |= {str(x if isinstance(x, str) else x["group"]).split("/")[0] for x in links}
        for c in sorted(customer_of):
            if draw(st.booleans()):
                links.append(link(f"{c}-approvers", draw(link_permission)))
        if sid == "req":
            subjects[0]["groups"] = links
        else:
            subjects.append({"id": sid, "kind": "customer", "companies": assigned, "groups": links})
    return {"companies": companies, "groups": groups, "subjects": subjects}


def may_approve(g: Graph, company: str) -> frozenset[str]:
    return frozenset(
        sid for sid in g.subjects if decide(g, sid, "approve", "approvals", company=company)
    )


def buy(g: Graph, subject: str, company: str, amount: str) -> tuple[str, ...]:
    result = evaluate_purchase(
        subject,
        g.companies[company],
        purchase_roles(g, subject, company),
        purchase_members(g, company),
        money(amount),
    )
    assert result.decision == "approval_required", result
    return result.approver_subjects


@SETTINGS
@given(documents())
def test_the_approvers_of_a_purchase_are_exactly_the_subjects_who_may_approve(
    doc: dict[str, Any],
) -> None:
    g = graph(doc)
    for company in COMPANIES:
        allowed = may_approve(g, company)
        assert set(buy(g, "req", company, "10")) == allowed - {"req"}
        assert set(buy(g, "req", company, "1000")) <= allowed - {"req"}
        for sid in g.subjects:
            roles = purchase_roles(g, sid, company)
            if "admin" in roles or "buyer" in roles:
                assert set(buy(g, sid, company, "1000")) <= allowed - {sid}
