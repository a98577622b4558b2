"""Graph documents shared by the store tests."""

from __future__ import annotations

from typing import Any


def acme(tenant: str) -> dict[str, Any]:
    """The SPEC section 4 example graph, for `tenant`, plus an admin of the parent."""
    return {
        "tenant": tenant,
        "settings": {
            "company_contact_propagation": "UPWARD",
            "default_customer_groups": ["newsletter"],
        },
        "vendors": [{"id": "abc", "name": "ABC Company"}],
        "companies": [
            {
                "id": "c-parent",
                "name": "Parent AG",
                "parent": None,
                "account_limit": {"amount": "5000.00", "currency": "EUR"},
                "restrictions": ["DE"],
                "approval_group": "c-parent-approvers",
            },
            {"id": "c-sub", "name": "Sub GmbH", "parent": "c-parent"},
        ],
        "groups": [
            {
                "id": "de-managers",
                "name": "DE managers",
                "kind": "user",
                "role": "manager",
                "restrictions": ["DE"],
            },
            {"id": "viewers", "name": "Viewers", "kind": "user", "role": "viewer"},
            {
                "id": "pricing",
                "name": "Pricing",
                "kind": "user",
                "role": "pricing_manager",
                "access": {"products": "read"},
            },
            {
                "id": "c-parent-approvers",
                "name": "Approvers",
                "kind": "customer",
                "company": "c-parent",
                "access": {"orders": "manage"},
            },
            {
                "id": "newsletter",
                "name": "Newsletter",
                "kind": "customer",
                "access": {"coupons": "read"},
            },
        ],
        "subjects": [
            {
                "id": "emp-1",
                "kind": "employee",
                "attributes": {"email": "a@acme.test"},
                "groups": ["de-managers", {"group": "pricing", "permission": "ro"}],
            },
            {"id": "emp-2", "kind": "employee", "groups": ["viewers"]},
            {
                "id": "cust-1",
                "kind": "customer",
                "attributes": {"email": "b@parent.test"},
                "companies": {"c-parent": ["buyer"], "c-sub": ["admin", "contact"]},
                "groups": ["c-parent-approvers"],
            },
            {"id": "cust-7", "kind": "customer", "companies": {"c-parent": ["admin"]}},
            {
                "id": "vu-1",
                "kind": "vendor_user",
                "vendor": "abc",
                "groups": ["abc/vendor.order.manager"],
            },
        ],
    }
