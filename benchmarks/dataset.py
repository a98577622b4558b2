"""A deterministic, realistic tenant graph and a stream of check questions.

`tenant_document(seed, subjects)` returns a graph document (SPEC section 4) that
`groupgate.engine.graph.parse_graph` accepts:

- companies in trees (a third are subsidiaries, up to four levels), most with an account
  limit, some with a site restriction, some naming an approval group;
- user groups with one of the six role templates, 40% restricted to one or two sites,
  10% with a per-type override of the template;
- employees in 1 to 20 user groups (most in a few; the first ones in exactly 20 or 1, which
  the compile benchmark uses);
- customers in one to three companies through the `companies` shorthand (at most one of
  admin/buyer/requester per company, or only contact), some also in custom customer groups
  of those companies;
- vendors (their four groups are created with them; some product managers may publish)
  and vendor users in one or two of their vendor's groups.

`questions(doc, catalog, seed, count)` returns check questions that every peer engine can
express: employees ask about any type with at most one restriction value on the resource
(pycasbin takes one domain per request), customers about company-scoped types of their own
or another company, vendor users about their own or another vendor's orders and products.
The mix gives roughly as many denies as allows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from groupgate.model import Catalog, Resource

SITES = ("DE", "FR", "NL", "US", "AT", "CH", "UK", "IT")
ROLES = (
    "viewer",
    "manager",
    "admin",
    "catalog_manager",
    "pricing_manager",
    "order_fulfillment_manager",
)
ROLE_WEIGHTS = (30, 20, 5, 15, 15, 15)
#: Per-type overrides some user groups carry on top of their role template.
OVERRIDES: tuple[dict[str, str], ...] = (
    {"products": "read"},
    {"orders": "none"},
    {"price_lists": "manage", "price_models": "read"},
    {"users_and_groups": "none", "webhooks": "read"},
)
#: Access matrices of custom customer groups.
CUSTOMER_PRESETS: tuple[dict[str, str], ...] = (
    {"orders": "manage", "carts": "manage"},
    {"quotes": "manage", "products": "read"},
    {"customers": "read", "orders": "read"},
    {"coupons": "read", "carts": "read"},
)
LEVEL_ACTIONS = ("read", "view", "list", "create", "update", "delete", "manage")
CUSTOMER_TYPES = (
    "companies",
    "customers",
    "carts",
    "orders",
    "approvals",
    "quotes",
    "coupons",
    "products",
)
VENDOR_TYPES = ("orders", "products", "media")


@dataclass(frozen=True, slots=True)
class Question:
    """One check: may `subject` do `action` on a resource of `type` with these attributes."""

    subject: str
    kind: str
    action: str
    type: str
    company: str | None = None
    restrictions: tuple[str, ...] = ()
    vendor: str | None = None

    def resource(self, index: int) -> Resource:
        return Resource(
            type=self.type,
            id=f"r{index}",
            company=self.company,
            restrictions=frozenset(self.restrictions),
            vendor=self.vendor,
        )


def tenant_document(seed: int = 42, subjects: int = 10_000) -> dict[str, Any]:
    """Return a tenant graph document of about `subjects` subjects, the same for a seed."""
    rng = random.Random(seed)
    n_employees = max(3, subjects * 35 // 100)
    n_vendor_users = max(2, subjects * 7 // 100)
    n_customers = max(3, subjects - n_employees - n_vendor_users)
    companies = _companies(rng, max(3, n_customers // 10))
    custom = _customer_groups(rng, companies)
    user_groups = _user_groups(rng, max(25, n_employees // 10))
    vendors = [{"id": f"v{i}", "name": f"Vendor {i}"} for i in range(max(2, subjects // 500))]
    vendor_entries = [
        {
            "id": f"{v['id']}/vendor.product.manager",
            "name": f"{v['name']} publishers",
            "actions": {"products": ["publish", "unpublish"]},
        }
        for v in vendors[::2]
    ]
    people: list[dict[str, Any]] = []
    people += _employees(rng, n_employees, user_groups)
    people += _customers(rng, n_customers, companies, custom)
    people += _vendor_users(rng, n_vendor_users, vendors)
    return {
        "tenant": f"bench-{seed}",
        "settings": {"company_contact_propagation": "UPWARD"},
        "vendors": vendors,
        "companies": companies,
        "groups": user_groups + custom + vendor_entries,
        "subjects": people,
    }


def _companies(rng: random.Random, count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    depth: dict[str, int] = {}
    for i in range(count):
        company: dict[str, Any] = {"id": f"c{i}", "name": f"Company {i} GmbH", "parent": None}
        candidates = [c["id"] for c in out[-50:] if depth[c["id"]] < 3]
        if candidates and rng.random() < 0.35:
            company["parent"] = rng.choice(candidates)
        depth[company["id"]] = depth[company["parent"]] + 1 if company["parent"] else 0
        if rng.random() < 0.8:
            amount = rng.choice((1000, 2500, 5000, 10000, 50000))
            company["account_limit"] = {"amount": f"{amount}.00", "currency": "EUR"}
        if rng.random() < 0.3:
            company["restrictions"] = [rng.choice(SITES)]
        out.append(company)
    return out


def _customer_groups(rng: random.Random, companies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for company in companies[::3]:
        gid = f"{company['id']}-team"
        groups.append(
            {
                "id": gid,
                "name": f"{company['name']} team",
                "kind": "customer",
                "company": company["id"],
                "access": dict(rng.choice(CUSTOMER_PRESETS)),
            }
        )
        if rng.random() < 0.5:
            company["approval_group"] = gid
    return groups


def _user_groups(rng: random.Random, count: int) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for i in range(count):
        role = rng.choices(ROLES, ROLE_WEIGHTS)[0]
        group: dict[str, Any] = {
            "id": f"ug{i}",
            "name": f"{role} group {i}",
            "kind": "user",
            "role": role,
        }
        if rng.random() < 0.4:
            group["restrictions"] = rng.sample(SITES, rng.choice((1, 1, 2)))
        if rng.random() < 0.1:
            group["access"] = dict(rng.choice(OVERRIDES))
        groups.append(group)
    return groups


def _employees(
    rng: random.Random, count: int, groups: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    ids = [g["id"] for g in groups]
    people: list[dict[str, Any]] = []
    for i in range(count):
        if i < 2:
            size = 20
        elif i < 4:
            size = 1
        else:
            size = min(20, max(1, int(rng.expovariate(1 / 3.5)) + 1))
        people.append(
            {
                "id": f"emp{i}",
                "kind": "employee",
                "attributes": {"email": f"emp{i}@merchant.test"},
                "groups": rng.sample(ids, min(size, len(ids))),
            }
        )
    return people


def _customers(
    rng: random.Random,
    count: int,
    companies: list[dict[str, Any]],
    custom: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    teams: dict[str, str] = {g["company"]: g["id"] for g in custom}
    people: list[dict[str, Any]] = []
    for i in range(count):
        chosen = rng.sample(companies, rng.choices((1, 2, 3), (80, 15, 5))[0])
        shorthand: dict[str, list[str]] = {}
        groups: list[str] = []
        for company in chosen:
            # One of admin/buyer/requester per company, or only contact (the rule of SPEC 1).
            role = rng.choices(("admin", "buyer", "requester", "contact"), (15, 45, 25, 15))[0]
            shorthand[company["id"]] = [role]
            team = teams.get(company["id"])
            if team is not None and rng.random() < 0.3:
                groups.append(team)
        entry: dict[str, Any] = {
            "id": f"cust{i}",
            "kind": "customer",
            "attributes": {"email": f"cust{i}@buyer.test"},
            "companies": shorthand,
        }
        if groups:
            entry["groups"] = groups
        people.append(entry)
    return people


def _vendor_users(
    rng: random.Random, count: int, vendors: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    roles = (
        "vendor.order.manager",
        "vendor.order.viewer",
        "vendor.product.manager",
        "vendor.product.viewer",
    )
    people: list[dict[str, Any]] = []
    for i in range(count):
        vendor = rng.choice(vendors)["id"]
        picked = rng.sample(roles, rng.choice((1, 1, 2)))
        people.append(
            {
                "id": f"vu{i}",
                "kind": "vendor_user",
                "vendor": vendor,
                "groups": [f"{vendor}/{r}" for r in picked],
            }
        )
    return people


# --------------------------------------------------------------------------- questions


def questions(
    doc: dict[str, Any], catalog: Catalog, *, seed: int = 42, count: int = 10_000
) -> list[Question]:
    """Return `count` check questions about the tenant in `doc`, the same for a seed."""
    rng = random.Random(seed * 7919 + count)
    by_kind: dict[str, list[dict[str, Any]]] = {"employee": [], "customer": [], "vendor_user": []}
    for subject in doc["subjects"]:
        by_kind[subject["kind"]].append(subject)
    company_ids = [c["id"] for c in doc["companies"]]
    company_sites = {c["id"]: tuple(c.get("restrictions", ())) for c in doc["companies"]}
    vendor_ids = [v["id"] for v in doc["vendors"]]
    types = sorted(catalog.types)
    out: list[Question] = []
    for _ in range(count):
        kind = rng.choices(("employee", "customer", "vendor_user"), (50, 35, 15))[0]
        subject = rng.choice(by_kind[kind])
        if kind == "employee":
            out.append(_employee_question(rng, subject, catalog, types, company_ids))
        elif kind == "customer":
            out.append(_customer_question(rng, subject, company_ids, company_sites))
        else:
            out.append(_vendor_question(rng, subject, vendor_ids))
    return out


def _named_or_level(rng: random.Random, catalog: Catalog, type_id: str) -> str:
    governing = catalog.types[catalog.permission_type(type_id)]
    if governing.actions and rng.random() < 0.15:
        return rng.choice(sorted(governing.actions))
    return rng.choice(LEVEL_ACTIONS)


def _employee_question(
    rng: random.Random,
    subject: dict[str, Any],
    catalog: Catalog,
    types: list[str],
    company_ids: list[str],
) -> Question:
    type_id = rng.choice(types)
    site_aware = catalog.types[type_id].site_aware
    restrictions: tuple[str, ...] = ()
    if rng.random() < (0.85 if site_aware else 0.3):
        restrictions = (rng.choice(SITES),)
    company = rng.choice(company_ids) if site_aware and rng.random() < 0.5 else None
    return Question(
        subject["id"],
        "employee",
        _named_or_level(rng, catalog, type_id),
        type_id,
        company=company,
        restrictions=restrictions,
    )


def _customer_question(
    rng: random.Random,
    subject: dict[str, Any],
    company_ids: list[str],
    company_sites: dict[str, tuple[str, ...]],
) -> Question:
    own = list(subject["companies"])
    company = rng.choice(own) if rng.random() < 0.7 else rng.choice(company_ids)
    type_id = rng.choice(CUSTOMER_TYPES)
    if type_id == "approvals" and rng.random() < 0.5:
        action = "approve"
    else:
        action = rng.choice(("read", "read", "list", "create", "update", "delete"))
    return Question(
        subject["id"],
        "customer",
        action,
        type_id,
        company=company,
        restrictions=company_sites[company][:1],
    )


def _vendor_question(
    rng: random.Random, subject: dict[str, Any], vendor_ids: list[str]
) -> Question:
    vendor = subject["vendor"] if rng.random() < 0.7 else rng.choice(vendor_ids)
    type_id = rng.choice(VENDOR_TYPES)
    if type_id == "products" and rng.random() < 0.3:
        action = rng.choice(("publish", "unpublish"))
    else:
        action = rng.choice(("read", "list", "update", "create"))
    return Question(subject["id"], "vendor_user", action, type_id, vendor=vendor)
