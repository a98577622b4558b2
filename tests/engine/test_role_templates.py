"""The role templates in `policies/` encode seed 004 exactly, cell by cell.

The expected values are the facts transcribed from the seeds into `tests/data/seeds/`
(`role_templates.yaml`, `customer_groups.yaml`; each file names the seed section it comes
from), labels and cells as the seed writes them: mapping them to type ids and levels happens
here, so the test keeps proving the policy against the source document's own words.
"""

from __future__ import annotations

from typing import Any

import pytest

from groupgate.engine.graph import normalize_role
from groupgate.model import PREDEFINED_ROLES, VENDOR_ROLES, GroupKind, Level

from .helpers import catalog, graph, seed_facts

ROLE_TEMPLATES: dict[str, Any] = seed_facts("role_templates.yaml")
CUSTOMER_GROUPS: dict[str, Any] = seed_facts("customer_groups.yaml")

#: The table's columns, left to right, and the role ids SPEC section 4 gives them.
COLUMNS = (
    ("Viewer", "viewer"),
    ("Manager", "manager"),
    ("Administrator", "admin"),
    ("Catalog Manager", "catalog_manager"),
    ("Pricing Manager", "pricing_manager"),
    ("Order Fulfillment Manager", "order_fulfillment_manager"),
)
CELLS = {"Read": Level.READ, "Manage": Level.MANAGE, "✗": Level.NONE}
#: Labels whose type id is not simply the label in snake_case (SPEC section 4).
LABEL_TYPES = {
    "Customer": "customers",
    "Status Quotes": "quote_statuses",
    "e.g. site settings": "site_settings",
    "Product templates": "product_templates",
}
#: Section names that are not also a row label.
SECTION_ONLY = {"Customer Management", "Pricing", "Settings", "Administration"}


def type_id(label: str) -> str:
    return LABEL_TYPES.get(label, label.lower().replace(" ", "_"))


def compare_table() -> dict[str, tuple[Level, ...]]:
    """Seed 004's "Compare role templates": type id -> one level per column."""
    table = ROLE_TEMPLATES["compare_role_templates"]
    assert table["columns"] == [name for name, _ in COLUMNS]
    rows: dict[str, tuple[Level, ...]] = {}
    for label, *cells in table["rows"]:
        assert len(cells) == len(COLUMNS), f"row {label!r} has {len(cells)} cells"
        unknown = [c for c in cells if c not in CELLS]
        assert not unknown, f"row {label!r} has cells {unknown} that are not {sorted(CELLS)}"
        assert type_id(label) not in rows, f"row {label!r} twice in the table"
        rows[type_id(label)] = tuple(CELLS[c] for c in cells)
    return rows


SEED_TABLE = compare_table()
SEED_TYPES = sorted(SEED_TABLE)


def test_seed_table_has_31_rows_of_known_types() -> None:
    assert len(SEED_TABLE) == 31
    unknown = [t for t in SEED_TABLE if t not in catalog().types]
    assert not unknown, f"seed rows with no resource type: {unknown}"


@pytest.mark.parametrize("type_id", SEED_TYPES)
@pytest.mark.parametrize(("column", "role"), COLUMNS, ids=[r for _, r in COLUMNS])
def test_role_template_cell_matches_seed_004(type_id: str, column: str, role: str) -> None:
    expected = SEED_TABLE[type_id][[c for c, _ in COLUMNS].index(column)]
    template = catalog().roles[role]
    assert template.access.get(type_id, Level.NONE) is expected, (
        f"{column} / {type_id}: policy has {template.access.get(type_id, Level.NONE).label}, "
        f"seed 004 says {expected.label}"
    )


def test_every_cell_of_the_table_is_compared() -> None:
    # 31 rows x 6 columns, and nothing in the templates that the table does not mention
    # except the customer-side types the SPEC adds (carts, approvals).
    assert sum(len(cells) for cells in SEED_TABLE.values()) == 31 * 6
    for _, role in COLUMNS:
        extra = set(catalog().roles[role].access) - set(SEED_TABLE) - {"carts", "approvals"}
        assert not extra, f"{role} grants types the seed table does not list: {extra}"


def test_role_templates_are_named_as_in_the_seed() -> None:
    roles = catalog().roles
    assert [roles[role].name for _, role in COLUMNS] == [name for name, _ in COLUMNS]
    assert all(roles[role].kind is GroupKind.USER for _, role in COLUMNS)
    headings = ROLE_TEMPLATES["access_matrices"]["headings"]
    assert headings == [f"{name} Access Matrix" for name, _ in COLUMNS]


def matrix_marks(role_name: str) -> set[str]:
    """Type ids marked ✓ in a role's own "Access Matrix" list in seed 004."""
    entries = ROLE_TEMPLATES["access_matrices"]["entries"][role_name]
    assert all(entry[1:] in ([], ["✓"]) for entry in entries), entries
    marked = {label for label, *mark in entries if mark}
    return {type_id(label) for label in marked - SECTION_ONLY}


@pytest.mark.parametrize(
    ("role_name", "role"),
    [
        ("Catalog Manager", "catalog_manager"),
        ("Pricing Manager", "pricing_manager"),
        ("Order Fulfillment Manager", "order_fulfillment_manager"),
    ],
)
def test_specialised_template_grants_exactly_the_types_its_matrix_marks(
    role_name: str, role: str
) -> None:
    granted = {t for t in SEED_TABLE if catalog().roles[role].access.get(t, Level.NONE)}
    assert matrix_marks(role_name) == granted


def test_role_with_access_given_overrides_the_template_per_type() -> None:
    g = graph(
        {
            "groups": [
                {
                    "id": "pricing",
                    "name": "Pricing",
                    "kind": "user",
                    "role": "pricing_manager",
                    "access": {"products": "read", "orders": "read", "tax": "none"},
                }
            ]
        }
    )
    access = g.groups["pricing"].access
    assert access["products"] is Level.READ
    assert access["orders"] is Level.READ
    assert "tax" not in access
    assert access["price_lists"] is Level.MANAGE


# --------------------------------------------------------------------------- vendor roles


def test_vendor_roles_are_the_four_groups_seed_004_names() -> None:
    seed = ROLE_TEMPLATES["vendor_groups"]
    assert set(catalog().vendor_roles) == set(VENDOR_ROLES) == set(seed["ids"])
    g = graph({"vendors": [{"id": "abc", "name": seed["example_vendor"]}]})
    names = {g.groups[f"abc/{role}"].name for role in VENDOR_ROLES}
    assert names == set(seed["example_names"])


@pytest.mark.parametrize(
    ("role", "type_id", "level"),
    [
        ("vendor.order.manager", "orders", Level.MANAGE),  # "Orders - Manage"
        ("vendor.order.viewer", "orders", Level.READ),  # "Read orders"
        ("vendor.product.manager", "products", Level.MANAGE),  # "Manage products"
        ("vendor.product.viewer", "products", Level.READ),  # "Read products"
    ],
)
def test_vendor_role_grants_only_what_seed_004_lists(role: str, type_id: str, level: Level) -> None:
    template = catalog().vendor_roles[role]
    assert dict(template.access) == {type_id: level}
    assert template.kind is GroupKind.VENDOR
    assert not template.actions


def test_only_the_vendor_product_manager_may_be_granted_publishing() -> None:
    roles = catalog().vendor_roles
    assert roles["vendor.product.manager"].grantable == {
        "products": frozenset({"publish", "unpublish"})
    }
    for role in ("vendor.product.viewer", "vendor.order.manager", "vendor.order.viewer"):
        assert not roles[role].grantable


# --------------------------------------------------------------------------- predefined groups


def test_predefined_customer_groups_are_admin_contact_buyer_requester() -> None:
    assert set(catalog().predefined) == set(PREDEFINED_ROLES)
    names = {catalog().predefined[role].name for role in PREDEFINED_ROLES}
    assert names == {group["name"] for group in CUSTOMER_GROUPS["predefined_groups"]}


def test_predefined_admin_manages_users_and_checkout_and_reads_orders() -> None:
    # Seed 001: "Admin - has manage rights for users and checkout data, as well as read right
    # for orders data."
    admin = catalog().predefined["admin"].access
    assert admin["customers"] is Level.MANAGE
    assert admin["carts"] is Level.MANAGE
    assert admin["orders"] is Level.READ
    assert {g.action for g in catalog().predefined["admin"].actions["approvals"]} == {"approve"}


def test_predefined_contact_buyer_and_requester_do_not_manage_customers_or_orders() -> None:
    for role in ("contact", "buyer", "requester"):
        access = catalog().predefined[role].access
        assert access.get("customers", Level.NONE) < Level.MANAGE
        assert access.get("orders", Level.NONE) < Level.MANAGE
    # Only admins and buyers approve (the requester's purchases need them).
    assert "approvals" not in catalog().predefined["requester"].actions
    assert "approvals" not in catalog().predefined["contact"].actions


ALIASES = [("Administrator", "admin"), ("Purchaser", "buyer"), ("Material Manager", "requester")]


def test_every_seed_002_role_alias_is_checked() -> None:
    assert [alias for alias, _ in ALIASES] == CUSTOMER_GROUPS["role_aliases"]


@pytest.mark.parametrize(("alias", "role"), ALIASES)
def test_seed_002_role_aliases_name_the_predefined_groups(alias: str, role: str) -> None:
    assert normalize_role(alias, "x") == role
