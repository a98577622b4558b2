"""Property tests over random graphs (hypothesis).

(a) Adding a group to a subject never removes a permission.
(b) A restricted group never grants on a site-aware entity without a matching restriction.
(c) The compiled profile (`check`) and the reference evaluator (`evaluate`) agree.

Graphs are random *documents* parsed by `parse_graph`, so every graph is one the service could
hold: random user and customer groups (roles, access, restrictions, named actions with
conditions, companies), a customised vendor group, settings, and one subject of each kind
with random memberships and link permissions.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groupgate.engine import check, compile_profile, evaluate
from groupgate.model import GroupKind, Membership, Resource

from .helpers import catalog, graph

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SITES = ["DE", "US", "FR"]
COMPANIES = ["c1", "c2", "c3"]
VENDORS = ["v1", "v2"]
TYPES = [
    "orders",
    "customers",
    "carts",
    "companies",
    "quotes",
    "products",
    "sepa",
    "sites",
    "approvals",
]
ROLES = [None, "viewer", "manager", "order_fulfillment_manager", "catalog_manager"]
CONDITIONS = [None, "owner", "same_company", "same_customer", "same_vendor"]
EMAILS = ["a@shop.test", "b@shop.test"]
LEVEL_ACTIONS = ["read", "list", "update", "delete", "launch"]
RESOURCE_TYPES = [*TYPES, "media", "payment_methods", "unknown"]

levels = st.sampled_from(["none", "read", "manage"])
access = st.dictionaries(st.sampled_from(TYPES), levels, max_size=4)
restrictions = st.lists(st.sampled_from(SITES), max_size=2, unique=True)
named = st.fixed_dictionaries(
    {
        "products": st.lists(
            st.builds(
                lambda a, w: {"action": a, "when": w} if w else a,
                st.sampled_from(["publish", "unpublish"]),
                st.sampled_from(CONDITIONS),
            ),
            max_size=2,
        ),
    },
    optional={
        "approvals": st.lists(
            st.builds(
                lambda w: {"action": "approve", "when": w} if w else "approve",
                st.sampled_from(CONDITIONS),
            ),
            max_size=1,
        ),
    },
)
link_permission = st.sampled_from([None, "ro", "rw", "same_customer", ["ro", "same_customer"]])


@st.composite
def user_group(draw: st.DrawFn, gid: str) -> dict[str, Any]:
    body = {"id": gid, "name": gid, "kind": "user", "access": draw(access), "actions": draw(named)}
    role = draw(st.sampled_from(ROLES))
    if role:
        body["role"] = role
    body["restrictions"] = draw(restrictions)
    return body


@st.composite
def customer_group(draw: st.DrawFn, gid: str) -> dict[str, Any]:
    body = {
        "id": gid,
        "name": gid,
        "kind": "customer",
        "access": draw(access),
        "actions": draw(named),
    }
    company = draw(st.sampled_from([None, *COMPANIES]))
    if company:
        body["company"] = company
    return body


def link(gid: str, permission: Any) -> Any:
    return gid if permission is None else {"group": gid, "permission": permission}


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    users = [draw(user_group(f"u{i}")) for i in range(draw(st.integers(1, 3)))]
    customers = [draw(customer_group(f"k{i}")) for i in range(draw(st.integers(1, 3)))]
    tenant_wide = [g["id"] for g in customers if "company" not in g]
    vendor_groups = [f"{v}/{r}" for v in VENDORS for r in catalog().vendor_roles]
    customised = []
    if draw(st.booleans()):
        when = draw(st.sampled_from(CONDITIONS))
        action: Any = {"action": "publish", "when": when} if when else "publish"
        customised.append(
            {"id": "v1/vendor.product.manager", "name": "PM", "actions": {"products": [action]}}
        )
    attrs = st.fixed_dictionaries({"email": st.sampled_from(EMAILS)})

    def links(ids: list[str]) -> list[Any]:
        chosen = draw(st.lists(st.sampled_from(ids), unique=True, min_size=1, max_size=3))
        return [link(gid, draw(link_permission)) for gid in chosen]

    vendor = draw(st.sampled_from(VENDORS))
    subjects = [
        {
            "id": "emp",
            "kind": "employee",
            "attributes": draw(attrs),
            "groups": links([g["id"] for g in users]),
        },
        {
            "id": "cust",
            "kind": "customer",
            "attributes": draw(attrs),
            "companies": draw(
                st.dictionaries(
                    st.sampled_from(COMPANIES),
                    st.sampled_from([[], ["admin"], ["buyer"], ["requester"], ["contact"]]),
                    max_size=3,
                )
            ),
            "groups": links([g["id"] for g in customers]),
        },
        {
            "id": "vu",
            "kind": "vendor_user",
            "vendor": vendor,
            "attributes": draw(attrs),
            "groups": links([g for g in vendor_groups if g.startswith(vendor + "/")]),
        },
    ]
    return {
        "settings": {
            "company_contact_propagation": draw(
                st.sampled_from(["UPWARD", "DOWNWARD", "DISABLED"])
            ),
            "default_customer_groups": draw(st.lists(st.sampled_from(tenant_wide), unique=True))
            if tenant_wide
            else [],
            "customer_group_support": draw(st.sampled_from([True, True, True, False])),
        },
        "vendors": [{"id": v, "name": v} for v in VENDORS],
        "companies": [
            {"id": "c1", "name": "C1", "restrictions": ["DE"]},
            {"id": "c2", "name": "C2", "parent": "c1"},
            {"id": "c3", "name": "C3"},
        ],
        "groups": [*users, *customers, *customised],
        "subjects": subjects,
    }


def resources(types: list[str]) -> st.SearchStrategy[Resource]:
    return st.builds(
        Resource,
        type=st.sampled_from(types),
        restrictions=st.frozensets(st.sampled_from(SITES), max_size=2),
        company=st.sampled_from([None, *COMPANIES, "c9"]),
        vendor=st.sampled_from([None, *VENDORS]),
        owner=st.sampled_from([None, *EMAILS, "emp", "cust", "vu"]),
        customer=st.sampled_from([None, "cust", "emp", "vu", "other"]),
        id=st.sampled_from([None, "r1"]),
        properties=st.just({}),
        request=st.just({}),
    )


# Named actions are asked about the types that have them, so conditions get exercised.
question = st.one_of(
    st.tuples(st.sampled_from(LEVEL_ACTIONS), resources(RESOURCE_TYPES)),
    st.tuples(
        st.sampled_from(["publish", "unpublish"]), resources(["products", "media", "orders"])
    ),
    st.tuples(st.just("approve"), resources(["approvals", "carts"])),
)
checks = st.lists(question, min_size=4, max_size=16)
subject_ids = st.sampled_from(["emp", "cust", "vu"])


#: Substrings of a compiled allow's reason that show which kind of guard granted it.
GUARDS = {
    "restriction": "; restricted to ",
    "company scope": "company is ",
    "vendor scope": "vendor is ",
    "ownership": "owner is ",
    "same customer": "customer is ",
}


def test_compiled_profile_and_reference_evaluator_agree() -> None:
    reached: set[str] = set()

    # Derandomized: whether random graphs reach every kind of guard (asserted below) must
    # not depend on the run's seed; unseeded, "ownership" was missed in about 1 run in 8.
    @settings(SETTINGS, derandomize=True)
    @given(doc=documents(), questions=checks)
    def agree(doc: dict[str, Any], questions: list[tuple[str, Resource]]) -> None:
        g = graph(doc)
        for subject in g.subjects.values():
            profile = compile_profile(catalog(), subject, g.groups, g.settings)
            for action, res in questions:
                fast = check(profile, action, res)
                slow = evaluate(catalog(), subject, g.groups, g.settings, action, res)
                assert fast.allow == slow.allow, f"{subject.id} {action} {res}: {fast} vs {slow}"
                if fast.allow:
                    reached.update(k for k, text in GUARDS.items() if text in fast.reason)
                    assert "[" not in fast.reason and "'" not in fast.reason, fast.reason
                    if ";" not in fast.reason:
                        reached.add("unguarded")

    agree()
    # Not vacuous: the random graphs produced allows through every kind of guard.
    assert reached >= {*GUARDS, "unguarded"}, f"only reached {sorted(reached)}"


@SETTINGS
@given(doc=documents(), sid=subject_ids, questions=checks, data=st.data())
def test_adding_a_group_never_removes_a_permission(
    doc: dict[str, Any], sid: str, questions: list[tuple[str, Resource]], data: st.DataObject
) -> None:
    g = graph(doc)
    subject = g.subjects[sid]
    kind = {"emp": GroupKind.USER, "cust": GroupKind.CUSTOMER, "vu": GroupKind.VENDOR}[sid]
    candidates = sorted(
        gid
        for gid, grp in g.groups.items()
        if grp.kind is kind and (grp.vendor is None or grp.vendor == subject.vendor)
    )
    if not candidates:
        candidates = sorted(g.groups)
    extra = Membership(
        data.draw(st.sampled_from(candidates)), data.draw(st.sampled_from([None, "ro", "rw"]))
    )
    bigger = dataclasses.replace(subject, memberships=(*subject.memberships, extra))
    before = compile_profile(catalog(), subject, g.groups, g.settings)
    after = compile_profile(catalog(), bigger, g.groups, g.settings)
    for action, res in questions:
        if check(before, action, res).allow:
            assert check(after, action, res).allow, f"joining {extra} removed {action} on {res}"
            assert evaluate(catalog(), bigger, g.groups, g.settings, action, res).allow


@SETTINGS
@given(doc=documents(), questions=checks)
def test_a_restricted_group_never_grants_without_a_matching_restriction(
    doc: dict[str, Any], questions: list[tuple[str, Resource]]
) -> None:
    g = graph(doc)
    subject = g.subjects["emp"]
    types = catalog().types
    profile = compile_profile(catalog(), subject, g.groups, g.settings)
    for action, res in questions:
        if res.type not in types or not types[catalog().permission_type(res.type)].site_aware:
            continue
        for decision in (
            check(profile, action, res),
            evaluate(catalog(), subject, g.groups, g.settings, action, res),
        ):
            if decision.allow:
                granting = g.groups[decision.group or ""]
                assert not granting.restrictions or granting.restrictions & res.restrictions
    # With only its restricted groups, the subject sees nothing outside their values.
    restricted = tuple(m for m in subject.memberships if g.groups[m.group].restrictions)
    narrowed = dataclasses.replace(subject, memberships=restricted)
    values = frozenset().union(*(g.groups[m.group].restrictions for m in restricted))
    narrow_profile = compile_profile(catalog(), narrowed, g.groups, g.settings)
    for type_id in ("orders", "customers", "carts", "companies", "quotes"):
        for level_action in ("read", "update"):
            res = Resource(type_id, restrictions=frozenset(SITES) - values | {"NL"})
            assert not check(narrow_profile, level_action, res).allow
            assert not evaluate(catalog(), narrowed, g.groups, g.settings, level_action, res).allow
