"""Stored JSON <-> model objects.

What is stored was validated before it was written, so loading trusts it and only rebuilds
the frozen objects. Group loading is memoised by the exact stored bytes: a group shared by
many subjects is parsed once, and a changed group has new bytes, so the memo never needs
invalidating (it is bounded, least recently used first out).
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson

from groupgate.model import (
    EMPTY,
    ActionGrant,
    ApprovalRule,
    Budget,
    Company,
    Group,
    GroupKind,
    Level,
    Membership,
    Money,
    Propagation,
    Settings,
    SpendingLimit,
    Subject,
    SubjectKind,
    Vendor,
    frozen_map,
)

# ------------------------------------------------------------------------------- spend


def dump_limits(limits: tuple[SpendingLimit, ...]) -> list[dict[str, str]]:
    return [{"period": lim.period, **lim.limit.as_json()} for lim in limits]


def load_limits(items: list[dict[str, str]] | None) -> tuple[SpendingLimit, ...]:
    return tuple(
        SpendingLimit(i["period"], Money(Decimal(i["amount"]), i["currency"])) for i in items or ()
    )


def dump_budgets(budgets: tuple[Budget, ...]) -> list[dict[str, str]]:
    return [
        {
            "id": b.id,
            "cost_center": b.cost_center,
            "from": b.start.isoformat(),
            "until": b.end.isoformat(),
            **b.limit.as_json(),
        }
        for b in budgets
    ]


def load_budgets(items: list[dict[str, str]] | None) -> tuple[Budget, ...]:
    return tuple(
        Budget(
            i["id"],
            i["cost_center"],
            date.fromisoformat(i["from"]),
            date.fromisoformat(i["until"]),
            Money(Decimal(i["amount"]), i["currency"]),
        )
        for i in items or ()
    )


# ------------------------------------------------------------------------------- links


def dump_link(link: Membership) -> str:
    """`<level>[+sc]`, then `|<from ms>|<until ms>` when the link has a validity window
    (the approver scripts read the level as the first two characters and the window by
    that layout: store/scripts.py)."""
    text: str = link.level or ""
    if link.same_customer:
        text += "+sc"
    if link.windowed:
        text += f"|{_ms(link.valid_from)}|{_ms(link.valid_until)}"
    return text


def load_link(group: str, text: str) -> Membership:
    perm, _, window = text.partition("|")
    level, _, sc = perm.partition("+")
    valid_from = valid_until = None
    if window:
        start, _, end = window.partition("|")
        valid_from = int(start) / 1000 if start else None
        valid_until = int(end) / 1000 if end else None
    return Membership(group, level or None, bool(sc), valid_from, valid_until)  # type: ignore[arg-type]


def moment_text(moment: float) -> str:
    """An instant as RFC 3339 in UTC with milliseconds (`2027-01-01T00:00:00.000Z`)."""
    text = datetime.fromtimestamp(moment, tz=UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _ms(moment: float | None) -> str:
    return "" if moment is None else str(round(moment * 1000))


# ------------------------------------------------------------------------------- subjects


def dump_subject(subject: Subject) -> bytes:
    body: dict[str, Any] = {
        "kind": subject.kind.value,
        "attributes": dict(subject.attributes),
        "vendor": subject.vendor,
    }
    if subject.spending_limits:
        body["spending_limits"] = dump_limits(subject.spending_limits)
    return orjson.dumps(body)


def load_subject(subject_id: str, raw: bytes, links: dict[str, str]) -> Subject:
    body = orjson.loads(raw)
    return Subject(
        id=subject_id,
        kind=SubjectKind(body["kind"]),
        attributes=frozen_map(body.get("attributes") or {}),
        vendor=body.get("vendor"),
        memberships=tuple(load_link(g, t) for g, t in links.items()),
        spending_limits=load_limits(body.get("spending_limits")),
    )


def subject_document(subject: Subject) -> dict[str, Any]:
    """Return the subject as a graph-document entry (the admin API's GET)."""
    groups: list[Any] = []
    for link in subject.memberships:
        perms = [p for p in (link.level, "same_customer" if link.same_customer else None) if p]
        if not perms and not link.windowed:
            groups.append(link.group)
            continue
        entry: dict[str, Any] = {"group": link.group}
        if perms:
            entry["permission"] = perms
        if link.valid_from is not None:
            entry["valid_from"] = moment_text(link.valid_from)
        if link.valid_until is not None:
            entry["valid_until"] = moment_text(link.valid_until)
        groups.append(entry)
    doc: dict[str, Any] = {"id": subject.id, "kind": subject.kind.value}
    if subject.attributes:
        doc["attributes"] = dict(subject.attributes)
    if subject.vendor:
        doc["vendor"] = subject.vendor
    doc["groups"] = groups
    if subject.spending_limits:
        doc["spending_limits"] = dump_limits(subject.spending_limits)
    return doc


# ------------------------------------------------------------------------------- groups


def dump_group(group: Group) -> bytes:
    return orjson.dumps(
        {
            "id": group.id,
            "name": group.name,
            "kind": group.kind.value,
            "description": group.description,
            "role": group.role,
            "access": {t: lv.label for t, lv in group.access.items()},
            "actions": {
                t: [{"action": g.action, "when": g.condition} for g in grants]
                for t, grants in group.actions.items()
            },
            "restrictions": sorted(group.restrictions),
            "company": group.company,
            "vendor": group.vendor,
            "predefined": group.predefined,
        }
    )


def load_group_json(body: dict[str, Any]) -> Group:
    return Group(
        id=body["id"],
        name=body["name"],
        kind=GroupKind(body["kind"]),
        access=frozen_map({t: Level.parse(lv) for t, lv in body["access"].items()}),
        actions=frozen_map(
            {
                t: tuple(ActionGrant(g["action"], g.get("when")) for g in grants)
                for t, grants in body["actions"].items()
            }
        ),
        description=body.get("description") or "",
        role=body.get("role"),
        restrictions=frozenset(body.get("restrictions") or ()) or EMPTY,
        company=body.get("company"),
        vendor=body.get("vendor"),
        predefined=bool(body.get("predefined")),
    )


class GroupMemo:
    """Parsed groups keyed by their stored bytes, shared across subjects and tenants."""

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._items: OrderedDict[bytes, Group] = OrderedDict()

    def load(self, raw: bytes) -> Group:
        group = self._items.get(raw)
        if group is None:
            group = load_group_json(orjson.loads(raw))
            self._items[raw] = group
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return group


def group_document(group: Group) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(dump_group(group))
    return body


# ------------------------------------------------------------------------------- companies


def dump_company(company: Company) -> bytes:
    """The company as its graph-document entry (`approval_rules` only when it sets some)."""
    limit = company.account_limit.as_json() if company.account_limit else None
    body: dict[str, Any] = {
        "id": company.id,
        "name": company.name,
        "parent": company.parent,
        "account_limit": limit,
        "restrictions": sorted(company.restrictions),
        "approval_group": company.approval_group,
    }
    if company.approval_rules is not None:
        body["approval_rules"] = [rule.as_json() for rule in company.approval_rules]
    if company.spending_limits:
        body["spending_limits"] = dump_limits(company.spending_limits)
    if company.budgets:
        body["budgets"] = dump_budgets(company.budgets)
    return orjson.dumps(body)


def load_company(raw: bytes) -> Company:
    body = orjson.loads(raw)
    limit = body.get("account_limit")
    rules = body.get("approval_rules")
    return Company(
        id=body["id"],
        name=body["name"],
        parent=body.get("parent"),
        account_limit=Money(Decimal(limit["amount"]), limit["currency"]) if limit else None,
        restrictions=frozenset(body.get("restrictions") or ()) or EMPTY,
        approval_group=body.get("approval_group"),
        spending_limits=load_limits(body.get("spending_limits")),
        budgets=load_budgets(body.get("budgets")),
        approval_rules=None if rules is None else tuple(_load_rule(r) for r in rules),
    )


def _load_rule(body: dict[str, Any]) -> ApprovalRule:
    """A stored rule (written by `ApprovalRule.as_json`, validated before it was)."""
    when = body.get("when") or {}
    over = when.get("amount_over")
    return ApprovalRule(
        id=body["id"],
        tiers=tuple(tuple(tuple(names) for names in tier) for tier in body["tiers"]),
        amount_over=Decimal(over) if over is not None else None,
        currency=when.get("currency"),
        cost_centers=tuple(when.get("cost_center") or ()),
        requesters=tuple(body.get("requesters") or ()),
    )


def dump_vendor(vendor: Vendor) -> bytes:
    return orjson.dumps({"id": vendor.id, "name": vendor.name})


# ------------------------------------------------------------------------------- settings


def dump_settings(settings: Settings) -> bytes:
    body: dict[str, Any] = {
        "company_contact_propagation": settings.company_contact_propagation.value,
        "default_customer_groups": list(settings.default_customer_groups),
        "customer_group_support": settings.customer_group_support,
    }
    if settings.time_zone != "UTC":
        body["time_zone"] = settings.time_zone
    return orjson.dumps(body)


def load_settings(raw: bytes | str) -> Settings:
    if not raw:
        return Settings()
    body = orjson.loads(raw)
    return Settings(
        company_contact_propagation=Propagation(body["company_contact_propagation"]),
        default_customer_groups=tuple(body["default_customer_groups"]),
        customer_group_support=bool(body["customer_group_support"]),
        time_zone=body.get("time_zone", "UTC"),
    )
