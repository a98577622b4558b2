"""The role templates in `policies/` encode seed 004 exactly, cell by cell.

The expected values are parsed from the seed text itself (`../shared/seeds/004_*.txt`), not
copied into this file, so the test keeps proving the policy against the source document. A
missing seed is a failure, never a skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from groupgate.engine.graph import normalize_role
from groupgate.model import PREDEFINED_ROLES, VENDOR_ROLES, GroupKind, Level

from .helpers import SHARED, catalog, graph

SEED_004 = SHARED / "seeds" / "004_de359b84b6b4d257.txt"
SEED_001 = SHARED / "seeds" / "001_f8a0e70561408082.txt"
SEED_002 = SHARED / "seeds" / "002_f7cb0c825acb6dc3.txt"

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


def seed_lines(path: Path) -> list[str]:
    if not path.is_file():
        pytest.fail(f"seed {path} is missing: the role templates cannot be checked")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]


def section(lines: list[str], start: str, end: str) -> list[str]:
    first = lines.index(start)
    return lines[first + 1 : lines.index(end, first)]


def parse_compare_table() -> dict[str, tuple[Level, ...]]:
    """Seed 004's "Compare role templates": type id -> one level per column.

    A label followed by six cells is a row; a label followed by anything else is a section
    header. Reading cells greedily handles labels that are both ("Quotes" then "Quotes").
    """
    lines = [x for x in section(seed_lines(SEED_004), "Compare role templates", "Permissions") if x]
    rows: dict[str, tuple[Level, ...]] = {}
    i = 0
    while i < len(lines):
        label = lines[i]
        assert label not in CELLS, f"cell {label!r} without a row label at line {i}"
        cells = lines[i + 1 : i + 1 + len(COLUMNS)]
        if len(cells) == len(COLUMNS) and all(c in CELLS for c in cells):
            assert type_id(label) not in rows, f"row {label!r} twice in the table"
            rows[type_id(label)] = tuple(CELLS[c] for c in cells)
            i += 1 + len(COLUMNS)
        else:
            assert not cells or cells[0] not in CELLS, f"row {label!r} has too few cells"
            i += 1
    return rows


SEED_TABLE = parse_compare_table()
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
    text = seed_lines(SEED_004)
    for name, _ in COLUMNS:
        assert f"{name} Access Matrix" in text


def matrix_marks(role_name: str, next_heading: str) -> set[str]:
    """Type ids marked ✓ in a role's own "Access Matrix" list in seed 004."""
    lines = section(seed_lines(SEED_004), f"{role_name} Access Matrix", next_heading)
    marked = {lines[i] for i in range(len(lines) - 1) if lines[i + 1] == "✓"}
    return {type_id(label) for label in marked - SECTION_ONLY}


@pytest.mark.parametrize(
    ("role_name", "role", "next_heading"),
    [
        ("Catalog Manager", "catalog_manager", "Pricing Manager"),
        ("Pricing Manager", "pricing_manager", "Order Fulfillment Manager"),
        ("Order Fulfillment Manager", "order_fulfillment_manager", "Compare role templates"),
    ],
)
def test_specialised_template_grants_exactly_the_types_its_matrix_marks(
    role_name: str, role: str, next_heading: str
) -> None:
    granted = {t for t in SEED_TABLE if catalog().roles[role].access.get(t, Level.NONE)}
    assert matrix_marks(role_name, next_heading) == granted


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
    assert set(catalog().vendor_roles) == set(VENDOR_ROLES)
    text = "\n".join(seed_lines(SEED_004))
    assert "vendor.order.manager, vendor.order.viewer, vendor.product.manager, " in text
    g = graph({"vendors": [{"id": "abc", "name": "ABC Company"}]})
    names = {g.groups[f"abc/{role}"].name for role in VENDOR_ROLES}
    for name in names:
        assert name in text, f"seed 004 does not name vendor group {name!r}"


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
    text = "\n".join(seed_lines(SEED_001))
    for role in PREDEFINED_ROLES:
        assert f"*{catalog().predefined[role].name}* - " in text


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


@pytest.mark.parametrize(
    ("alias", "role"),
    [("Administrator", "admin"), ("Purchaser", "buyer"), ("Material Manager", "requester")],
)
def test_seed_002_role_aliases_name_the_predefined_groups(alias: str, role: str) -> None:
    assert alias in "\n".join(seed_lines(SEED_002))
    assert normalize_role(alias, "x") == role
