"""Malformed policies and graph documents: one precise error each, and nothing built.

A policy directory error is one `PolicyError` naming the file and the path inside it; a graph
document error is one `GraphError` whose `path` names the offending entry. Odd resource
attributes in a check never raise: they can only deny.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from groupgate.engine import check, compile_profile
from groupgate.errors import GraphError, InvalidInput, PolicyError
from groupgate.model import Resource, frozen_map
from groupgate.policy import load_policy

from .helpers import catalog, graph

CATALOG = """
levels: {read: read, update: manage}
sections:
  - name: Shop
    types:
      - {id: orders, site_aware: true}
      - {id: products, actions: [publish]}
      - {id: media, parent: products}
"""
ROLES = """
roles:
  viewer: {name: Viewer}
  editor: {name: Editor}
matrix:
  orders: [read, manage]
"""
CUSTOMER_GROUPS = """
groups:
  admin: {name: Admin}
  contact: {name: Contact}
  buyer: {name: Buyer}
  requester: {name: Requester}
"""
CONDITIONS = """
conditions:
  owner:
    any: [{resource: owner, subject: attributes.email}]
"""


def write_policy(root: Path, **files: str) -> Path:
    """A valid policy directory with `files` (name without .yaml -> text) replaced."""
    texts = {"catalog": CATALOG, "roles": ROLES, "customer_groups": CUSTOMER_GROUPS}
    texts.update(files)
    for name, text in texts.items():
        (root / f"{name}.yaml").write_text(text, encoding="utf-8")
    return root


def test_the_base_test_policy_is_valid(tmp_path: Path) -> None:
    policy = load_policy(write_policy(tmp_path, conditions=CONDITIONS))
    assert set(policy.types) == {"orders", "products", "media"}
    assert policy.roles["editor"].access == {"orders": 2}
    assert policy.conditions["owner"].pairs == (("owner", "attributes.email"),)


BAD_POLICIES = [
    # (file, text, path, message fragment)
    ("catalog", "levels: [", "", "not valid YAML"),
    (
        "catalog",
        "levels: {read: read}\nlevels: {read: read}\nsections: []",
        "",
        "duplicate key 'levels'",
    ),
    ("catalog", "colour: red\nsections: []", "", "unknown key 'colour'"),
    ("catalog", "levels: {read: high}\nsections: []", "levels.read", "unknown level 'high'"),
    ("catalog", "levels: {read: none}\nsections: []", "levels.read", "read or manage, not none"),
    ("catalog", "sections: {a: 1}", "sections", "expected a list"),
    (
        "catalog",
        "sections: [{name: S, types: [{id: a}, {id: a}]}]",
        "sections[0].types[1].id",
        "duplicate resource type 'a'",
    ),
    (
        "catalog",
        "sections: [{name: S, types: [{id: a, parent: nope}]}]",
        "sections[0].types[0].parent",
        "'nope' is not a resource type",
    ),
    (
        "catalog",
        "sections: [{name: S, types: [{id: a}, {id: b, parent: a}, {id: c, parent: b}]}]",
        "sections[0].types[2].parent",
        "itself a dependent type",
    ),
    (
        "catalog",
        "levels: {read: read}\nsections: [{name: S, types: [{id: a, actions: [read]}]}]",
        "sections[0].types[0].actions",
        "already a level action",
    ),
    (
        "catalog",
        "sections: [{name: S, types: [{id: a, site_aware: maybe}]}]",
        "sections[0].types[0].site_aware",
        "expected true or false",
    ),
    (
        "roles",
        "roles: {viewer: {name: V}}\nmatrix: {orders: [read, read]}",
        "matrix.orders",
        "expected 1 cells",
    ),
    ("roles", ROLES + "  orders: [read, read]\n", "", "duplicate key 'orders'"),
    (
        "roles",
        ROLES.replace("orders:", "spaceships:"),
        "matrix.spaceships",
        "unknown resource type",
    ),
    (
        "roles",
        ROLES.replace("orders:", "media:"),
        "matrix.media",
        "dependent type: grant 'products'",
    ),
    (
        "roles",
        ROLES.replace("[read, manage]", "[read, write]"),
        "matrix.orders[editor]",
        "unknown level",
    ),
    (
        "roles",
        "roles: {viewer: {name: V, actions: {products: [{action: publish, when: nope}]}}}",
        "roles.viewer.actions.products[0].when",
        "unknown condition 'nope'",
    ),
    (
        "roles",
        "roles: {viewer: {name: V, actions: {products: [launch]}}}",
        "roles.viewer.actions.products[0]",
        "no named action 'launch'",
    ),
    ("roles", "roles: {viewer: {title: V}}", "roles.viewer", "unknown key 'title'"),
    ("roles", "roles: {viewer: {description: V}}", "roles.viewer.name", "non-empty string"),
    (
        "conditions",
        "conditions: {c: {any: [{resource: owner, subject: session.user}]}}",
        "conditions.c.any[0].subject",
        "unknown subject path",
    ),
    (
        "conditions",
        "conditions: {c: {any: [{resource: owner, subject: attributes}]}}",
        "conditions.c.any[0].subject",
        "unknown subject path",
    ),
    (
        "conditions",
        "conditions: {c: {any: [{resource: owner, subject: companies.name}]}}",
        "conditions.c.any[0].subject",
        "unknown subject path",
    ),
    ("conditions", "conditions: {c: {any: []}}", "conditions.c.any", "at least one comparison"),
    (
        "customer_groups",
        CUSTOMER_GROUPS.replace("  requester: {name: Requester}\n", ""),
        "groups",
        "missing 'requester'",
    ),
    (
        "customer_groups",
        CUSTOMER_GROUPS + "  boss: {name: Boss}\n",
        "groups.boss",
        "unknown group 'boss'",
    ),
    (
        "customer_groups",
        CUSTOMER_GROUPS.replace("{name: Admin}", "{name: Admin, access: {media: read}}"),
        "groups.admin.access.media",
        "dependent type",
    ),
    (
        "routes",
        "routes: [{method: FETCH, path: /a, type: orders, action: read}]",
        "routes[0].method",
        "unknown HTTP method",
    ),
    (
        "routes",
        "routes: [{method: GET, path: a, type: orders, action: read}]",
        "routes[0].path",
        "starts with '/'",
    ),
    (
        "routes",
        "routes: [{method: GET, path: /a, type: nope, action: read}]",
        "routes[0].type",
        "unknown resource type",
    ),
    (
        "routes",
        "routes: [{method: GET, path: /a, type: orders, action: publish}]",
        "routes[0].action",
        "no action 'publish'",
    ),
    (
        "routes",
        "routes: [{method: GET, path: /a, type: orders, action: read}, "
        "{method: get, path: /a, type: orders, action: read}]",
        "routes",
        "duplicate route GET /a",
    ),
    (
        "companions",
        "manage: {spaceships: {read: [orders]}}",
        "manage.spaceships",
        "unknown resource type",
    ),
    ("companions", "manage: {orders: {read: [media]}}", "manage.orders.read[0]", "dependent type"),
]


@pytest.mark.parametrize(
    ("name", "text", "path", "message"),
    BAD_POLICIES,
    ids=[f"{c[0]}:{c[2] or c[3]}" for c in BAD_POLICIES],
)
def test_a_malformed_policy_gives_one_precise_error(
    tmp_path: Path, name: str, text: str, path: str, message: str
) -> None:
    write_policy(tmp_path, **{"conditions": CONDITIONS, name: text})
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path)
    assert info.value.file == f"{name}.yaml"
    assert info.value.path == path
    assert message in str(info.value)
    assert str(info.value).startswith(f"{name}.yaml: ")


def test_a_directory_without_catalog_is_not_a_policy(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path)
    assert info.value.file == str(tmp_path)
    assert "no catalog.yaml" in str(info.value)


# --------------------------------------------------------------------------- graph documents


COMPANY = {"id": "c1", "name": "C1"}
VENDOR = {"id": "abc", "name": "ABC"}


def company(**fields: Any) -> dict[str, Any]:
    return {"companies": [{**COMPANY, **fields}]}


def limit(amount: Any, currency: Any = "EUR") -> dict[str, Any]:
    return company(account_limit={"amount": amount, "currency": currency})


def group(**fields: Any) -> dict[str, Any]:
    return {"companies": [COMPANY], "groups": [{"id": "g", "name": "G", "kind": "user", **fields}]}


def subject(**fields: Any) -> dict[str, Any]:
    return {
        "vendors": [VENDOR],
        "companies": [COMPANY],
        "groups": [{"id": "staff", "name": "Staff", "kind": "user"}],
        "subjects": [{"id": "s", "kind": "customer", **fields}],
    }


BAD_GRAPHS: list[tuple[str, Any, str, str]] = [
    # (id, document (tenant added unless given), path, message fragment)
    ("not an object", [], "", "expected an object"),
    ("unknown top-level field", {"colour": "red"}, "colour", "unknown field"),
    ("missing tenant", {"tenant": None}, "tenant", "non-empty string"),
    ("bad tenant id", {"tenant": "a b"}, "tenant", "invalid id"),
    ("tenant id ending in a newline", {"tenant": "acme\n"}, "tenant", "invalid id"),
    (
        "propagation",
        {"settings": {"company_contact_propagation": "SIDEWAYS"}},
        "settings.company_contact_propagation",
        "UPWARD, DOWNWARD or DISABLED",
    ),
    (
        "support not bool",
        {"settings": {"customer_group_support": "yes"}},
        "settings.customer_group_support",
        "true or false",
    ),
    ("unknown setting", {"settings": {"colour": 1}}, "settings.colour", "unknown field"),
    (
        "unknown default group",
        {"settings": {"default_customer_groups": ["nope"]}},
        "settings.default_customer_groups[0]",
        "unknown group 'nope'",
    ),
    (
        "user group as default",
        {"settings": {"default_customer_groups": ["g"]}, **group()},
        "settings.default_customer_groups[0]",
        "not a tenant-wide customer group",
    ),
    (
        "company group as default",
        {"settings": {"default_customer_groups": ["g"]}, **group(kind="customer", company="c1")},
        "settings.default_customer_groups[0]",
        "not a tenant-wide customer group",
    ),
    ("vendors not a list", {"vendors": {"abc": "ABC"}}, "vendors", "expected a list"),
    ("duplicate vendor", {"vendors": [VENDOR, VENDOR]}, "vendors[1].id", "duplicate vendor"),
    (
        "company id not a string",
        {"companies": [{"id": 5, "name": "C"}]},
        "companies[0].id",
        "non-empty string",
    ),
    (
        "company without name",
        {"companies": [{"id": "c1"}]},
        "companies[0].name",
        "non-empty string",
    ),
    (
        "duplicate company",
        {"companies": [COMPANY, COMPANY]},
        "companies[1].id",
        "duplicate company",
    ),
    (
        "unknown parent",
        {"companies": [COMPANY, {"id": "c2", "name": "C2", "parent": "nope"}]},
        "companies[1].parent",
        "unknown company 'nope'",
    ),
    ("float amount", limit(5000.0), "companies[0].account_limit.amount", "decimal string"),
    ("int amount", limit(5000), "companies[0].account_limit.amount", "decimal string"),
    ("negative amount", limit("-1.00"), "companies[0].account_limit.amount", "non-negative"),
    ("not a number", limit("lots"), "companies[0].account_limit.amount", "not a decimal number"),
    ("infinite amount", limit("Infinity"), "companies[0].account_limit.amount", "finite"),
    ("NaN amount", limit("NaN"), "companies[0].account_limit.amount", "finite"),
    ("lower-case currency", limit("1", "eur"), "companies[0].account_limit.currency", "ISO 4217"),
    ("long currency", limit("1", "EURO"), "companies[0].account_limit.currency", "ISO 4217"),
    ("currency and newline", limit("1", "EUR\n"), "companies[0].account_limit.currency", "ISO"),
    (
        "missing currency",
        limit("1", None),
        "companies[0].account_limit.currency",
        "non-empty string",
    ),
    (
        "limit extra field",
        company(account_limit={"amount": "1", "currency": "EUR", "x": 1}),
        "companies[0].account_limit.x",
        "unknown field",
    ),
    (
        "restrictions not a list",
        company(restrictions="DE"),
        "companies[0].restrictions",
        "expected a list",
    ),
    (
        "restriction not a string",
        company(restrictions=[1]),
        "companies[0].restrictions[0]",
        "non-empty string",
    ),
    ("group kind unknown", group(kind="robot"), "groups[0].kind", "expected user or customer"),
    ("group kind vendor", group(kind="vendor"), "groups[0].kind", "created with their vendor"),
    (
        "group without name",
        {"groups": [{"id": "g", "kind": "user"}]},
        "groups[0].name",
        "non-empty string",
    ),
    ("group unknown role", group(role="boss"), "groups[0].role", "unknown role 'boss'"),
    (
        "group unknown type",
        group(access={"spaceships": "read"}),
        "groups[0].access.spaceships",
        "unknown resource type",
    ),
    (
        "group bad level",
        group(access={"orders": "write"}),
        "groups[0].access.orders",
        "none, read or manage",
    ),
    (
        "group level not a string",
        group(access={"orders": 2}),
        "groups[0].access.orders",
        "non-empty string",
    ),
    (
        "group grants dependent type",
        group(access={"media": "read"}),
        "groups[0].access.media",
        "from 'products'",
    ),
    (
        "group unknown named action",
        group(actions={"products": ["launch"]}),
        "groups[0].actions.products[0]",
        "no named action",
    ),
    (
        "group unknown condition",
        group(actions={"products": [{"action": "publish", "when": "full_moon"}]}),
        "groups[0].actions.products[0].when",
        "unknown condition 'full_moon'",
    ),
    (
        "customer group restrictions",
        group(kind="customer", restrictions=["DE"]),
        "groups[0].restrictions",
        "only user (employee) groups",
    ),
    ("user group with company", group(company="c1"), "groups[0].company", "only customer groups"),
    (
        "unknown group company",
        group(kind="customer", company="nope"),
        "groups[0].company",
        "unknown company",
    ),
    ("group with vendor", group(vendor="abc"), "groups[0].vendor", "created with their vendor"),
    ("group unknown field", group(colour="red"), "groups[0].colour", "unknown field"),
    ("group id with slash", group(id="a/b"), "groups[0].id", "invalid id 'a/b'"),
    (
        "duplicate group",
        {"groups": [{"id": "g", "name": "G", "kind": "user"}] * 2},
        "groups[1].id",
        "duplicate group",
    ),
    (
        "subject kind unknown",
        subject(kind="robot"),
        "subjects[0].kind",
        "employee, customer or vendor_user",
    ),
    (
        "vendor user without vendor",
        subject(kind="vendor_user"),
        "subjects[0].vendor",
        "names its vendor",
    ),
    (
        "employee with vendor",
        subject(kind="employee", vendor="abc"),
        "subjects[0].vendor",
        "names its vendor",
    ),
    (
        "unknown vendor",
        subject(kind="vendor_user", vendor="nope"),
        "subjects[0].vendor",
        "unknown vendor 'nope'",
    ),
    (
        "companies on an employee",
        subject(kind="employee", companies={"c1": ["admin"]}),
        "subjects[0].companies",
        "only customers belong to companies",
    ),
    (
        "companies on a vendor user",
        subject(kind="vendor_user", vendor="abc", companies={"c1": ["buyer"]}),
        "subjects[0].companies",
        "only customers belong to companies",
    ),
    (
        "unknown company",
        subject(companies={"nope": ["buyer"]}),
        "subjects[0].companies.nope",
        "unknown company",
    ),
    (
        "unknown predefined role",
        subject(companies={"c1": ["boss"]}),
        "subjects[0].companies.c1[0]",
        "unknown predefined group",
    ),
    (
        "roles not a list",
        subject(companies={"c1": "buyer"}),
        "subjects[0].companies.c1",
        "expected a list",
    ),
    ("unknown group", subject(groups=["nope"]), "subjects[0].groups[0]", "unknown group 'nope'"),
    (
        "unknown predefined group",
        subject(groups=["c9/admin"]),
        "subjects[0].groups[0]",
        "unknown group",
    ),
    (
        "bad link permission",
        subject(kind="employee", groups=[{"group": "staff", "permission": "wx"}]),
        "subjects[0].groups[0].permission",
        "ro, rw or same_customer",
    ),
    (
        "ro and rw",
        subject(kind="employee", groups=[{"group": "staff", "permission": ["ro", "rw"]}]),
        "subjects[0].groups[0].permission",
        "exclude each other",
    ),
    (
        "link without group",
        subject(kind="employee", groups=[{"permission": "ro"}]),
        "subjects[0].groups[0].group",
        "non-empty string",
    ),
    (
        "attributes not an object",
        subject(attributes=["x"]),
        "subjects[0].attributes",
        "expected an object",
    ),
    ("groups not a list", subject(groups="staff"), "subjects[0].groups", "expected a list"),
    ("subject unknown field", subject(colour="red"), "subjects[0].colour", "unknown field"),
    (
        "duplicate subject",
        {"subjects": [{"id": "s", "kind": "employee"}] * 2},
        "subjects[1].id",
        "duplicate subject",
    ),
    (
        "admin and buyer",
        subject(companies={"c1": ["admin", "buyer"]}),
        "subjects[0].companies.c1",
        "only one of admin",
    ),
]


@pytest.mark.parametrize(
    ("doc", "path", "message"), [c[1:] for c in BAD_GRAPHS], ids=[c[0] for c in BAD_GRAPHS]
)
def test_a_malformed_graph_document_gives_one_precise_error(
    doc: Any, path: str, message: str
) -> None:
    from groupgate.engine import parse_graph

    document = {"tenant": "t", **doc} if isinstance(doc, dict) else doc
    if isinstance(document, dict) and document.get("tenant") is None:
        document.pop("tenant")
    result = None
    with pytest.raises(GraphError) as info:
        result = parse_graph(document, catalog())
    assert result is None
    assert info.value.path == path
    assert message in str(info.value)
    assert isinstance(info.value, InvalidInput) and info.value.status == 422


def test_the_bad_graph_fixtures_differ_from_a_valid_document_only_in_the_fault() -> None:
    # The builders produce valid documents when no fault is injected.
    assert graph(subject(companies={"c1": ["buyer"]})).subjects["s"].memberships
    assert graph(group(access={"orders": "read"})).groups["g"].access
    assert graph(limit("5000.00")).companies["c1"].account_limit is not None


# --------------------------------------------------------------------------- odd resources


@pytest.mark.parametrize(
    "odd",
    [
        Resource("customers", company=5),  # type: ignore[arg-type]
        Resource("customers", company=True),  # type: ignore[arg-type]
        Resource("customers", company=["c1"]),  # type: ignore[arg-type]
        Resource("customers", company=None),
        Resource("customers", properties=frozen_map({"company": {"c1": 1}})),
        Resource("orders", restrictions=frozenset({1, None})),  # type: ignore[arg-type]
    ],
)
def test_odd_resource_attributes_only_deny(odd: Resource) -> None:
    g = graph(
        {
            "companies": [COMPANY],
            "groups": [
                {
                    "id": "de",
                    "name": "DE",
                    "kind": "user",
                    "role": "manager",
                    "restrictions": ["DE"],
                }
            ],
            "subjects": [
                {"id": "cust", "kind": "customer", "companies": {"c1": ["admin"]}},
                {"id": "emp", "kind": "employee", "groups": ["de"]},
            ],
        }
    )
    for sid in ("cust", "emp"):
        profile = compile_profile(catalog(), g.subjects[sid], g.groups, g.settings)
        assert not check(profile, "update", odd).allow
