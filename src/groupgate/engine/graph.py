"""Parse and validate graph documents (SPEC section 4) into a `Graph`.

A document is validated whole before anything is built: on any error `GraphError` names the
offending entry (`subjects[3].companies.c-sub: ...`) and nothing is returned. The same entry
parsers are used by the store for single writes, so a rule lives in one place:

- `parse_company`, `parse_group`, `parse_subject`, `parse_settings`, `parse_vendor`: one entry;
- `predefined_groups`, `vendor_groups`: the groups created with a company or vendor;
- `check_assignment`: at most one of admin/buyer/requester per customer and company;
- `contact_companies`: contact propagation through the company tree at assignment time;
- `find_cycle`: company trees must stay trees;
- `parse_approval_rules`, `check_rule_names`: approval rules (SPEC section 5), in policy files
  and on companies; every error names the rule (`companies[2].approval_rules[0] (big-orders)`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from groupgate.engine import delegations, spend
from groupgate.engine.approvers import check_approval_member
from groupgate.errors import GraphError
from groupgate.model import (
    EMPTY,
    EXCLUSIVE_ROLES,
    PERIODS,
    PREDEFINED_ROLES,
    ROLE_ALIASES,
    VENDOR_ROLES,
    ActionGrant,
    ApprovalRule,
    Budget,
    Catalog,
    Company,
    Delegation,
    Graph,
    Group,
    GroupKind,
    Level,
    Membership,
    Money,
    Propagation,
    ResourceEntity,
    RoleTemplate,
    Settings,
    SpendingLimit,
    Subject,
    SubjectKind,
    Vendor,
    frozen_map,
    predefined_group_id,
    vendor_group_id,
)

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+\-]{0,127}\Z")
CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}\Z")
#: A decimal amount as JSON Schema states it (the OpenAPI document uses this text): ASCII
#: digits only, at most 18 before the point and 8 after, no sign, no exponent. `Decimal`
#: alone accepts "1e999999999" (formatting it takes gigabytes) and Unicode digits.
AMOUNT_SYNTAX = r"^[0-9]{1,18}(\.[0-9]{1,8})?$"
AMOUNT_PATTERN = re.compile(AMOUNT_SYNTAX[:-1] + r"\Z")
LINK_PERMISSIONS = frozenset({"ro", "rw", "same_customer"})
MAX_RESTRICTIONS = 256
#: Spending limits per company or subject, and budgets per company.
MAX_SPENDING_LIMITS = 64
MAX_BUDGETS = 1024
DATE_PATTERN = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


# --------------------------------------------------------------------------- small readers


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GraphError(path, f"expected an object, got {_kind(value)}")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise GraphError(path, f"expected a list, got {_kind(value)}")
    return value


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise GraphError(path, f"expected a non-empty string, got {_kind(value)}")
    return value


def _ident(value: Any, path: str) -> str:
    text = _text(value, path)
    if not ID_PATTERN.match(text):
        raise GraphError(path, f"invalid id {text!r} (letters, digits and ._:@+- only)")
    return text


def _only(value: dict[str, Any], path: str, allowed: frozenset[str]) -> None:
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise GraphError(f"{path}.{unknown[0]}" if path else unknown[0], "unknown field")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _restrictions(value: Any, path: str) -> frozenset[str]:
    if value is None:
        return EMPTY
    items = _list(value, path)
    if len(items) > MAX_RESTRICTIONS:
        raise GraphError(path, f"at most {MAX_RESTRICTIONS} restriction values")
    return frozenset(_text(v, f"{path}[{i}]") for i, v in enumerate(items))


def parse_money(value: Any, path: str) -> Money:
    """Parse `{amount: "5000.00", currency: "EUR"}`; amounts are decimal strings, never floats."""
    body = _mapping(value, path)
    _only(body, path, frozenset({"amount", "currency"}))
    amount = parse_amount(body.get("amount"), f"{path}.amount")
    currency = _text(body.get("currency"), f"{path}.currency")
    if not CURRENCY_PATTERN.match(currency):
        raise GraphError(
            f"{path}.currency", f"expected an ISO 4217 code such as EUR, got {currency!r}"
        )
    return Money(amount, currency)


def amount_problem(value: str) -> str:
    """Why `value` is not an amount (`AMOUNT_PATTERN`), quoting at most 40 characters of it."""
    shown = repr(value if len(value) <= 40 else value[:40] + "...")
    return (
        f'not a decimal number such as "12.50": {shown} (a finite, non-negative amount in '
        "ASCII digits, at most 18 before the point and 8 after, no sign or exponent)"
    )


def parse_amount(value: Any, path: str) -> Decimal:
    """A non-negative decimal amount written as `AMOUNT_SYNTAX` says (never a float)."""
    if not isinstance(value, str):
        raise GraphError(path, f'expected a decimal string such as "12.50", got {_kind(value)}')
    if not AMOUNT_PATTERN.match(value):
        raise GraphError(path, amount_problem(value))
    return Decimal(value)


# --------------------------------------------------------------------------- entries


def parse_settings(value: Any, path: str = "settings") -> Settings:
    body = _mapping(value if value is not None else {}, path)
    _only(
        body,
        path,
        frozenset(
            {
                "company_contact_propagation",
                "default_customer_groups",
                "customer_group_support",
                "time_zone",
            }
        ),
    )
    raw = body.get("company_contact_propagation", Propagation.UPWARD.value)
    try:
        propagation = Propagation(str(raw).upper())
    except ValueError:
        raise GraphError(
            f"{path}.company_contact_propagation",
            f"expected UPWARD, DOWNWARD or DISABLED, got {raw!r}",
        ) from None
    defaults = _list(body.get("default_customer_groups", []), f"{path}.default_customer_groups")
    support = body.get("customer_group_support", True)
    if not isinstance(support, bool):
        raise GraphError(f"{path}.customer_group_support", "expected true or false")
    return Settings(
        company_contact_propagation=propagation,
        default_customer_groups=tuple(
            _ident(g, f"{path}.default_customer_groups[{i}]") for i, g in enumerate(defaults)
        ),
        customer_group_support=support,
        time_zone=parse_time_zone(body.get("time_zone", "UTC"), f"{path}.time_zone"),
    )


def parse_time_zone(value: Any, path: str) -> str:
    """An IANA time zone name known to this system's zone database (`Europe/Berlin`)."""
    name = _text(value, path)
    try:
        if len(name) > 64:
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        shown = repr(name if len(name) <= 40 else name[:40] + "...")
        raise GraphError(
            path, f"unknown time zone {shown} (an IANA name such as Europe/Berlin)"
        ) from None
    return name


def parse_ledger_money(value: Any, path: str) -> Money:
    """`parse_money` for a limit the spend ledger holds: exact at its scale (`engine/spend`)."""
    money = parse_money(value, path)
    try:
        spend.to_units(money.amount)
    except spend.AmountError as exc:
        raise GraphError(f"{path}.amount", str(exc)) from None
    return money


def parse_spending_limits(value: Any, path: str) -> tuple[SpendingLimit, ...]:
    """`[{"period": "day|week|month|quarter|year", "amount", "currency"}]`, at most one per
    period and currency."""
    if value is None:
        return ()
    items = _list(value, path)
    if len(items) > MAX_SPENDING_LIMITS:
        raise GraphError(path, f"at most {MAX_SPENDING_LIMITS} spending limits")
    out: list[SpendingLimit] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(items):
        ipath = f"{path}[{i}]"
        body = _mapping(item, ipath)
        _only(body, ipath, frozenset({"period", "amount", "currency"}))
        period = _text(body.get("period"), f"{ipath}.period")
        if period not in PERIODS:
            raise GraphError(
                f"{ipath}.period", f"expected one of {', '.join(PERIODS)}, got {period!r}"
            )
        money = parse_ledger_money(
            {k: body.get(k) for k in ("amount", "currency") if k in body}, ipath
        )
        if (period, money.currency) in seen:
            raise GraphError(ipath, f"a second {period} limit in {money.currency}")
        seen.add((period, money.currency))
        out.append(SpendingLimit(period, money))
    return tuple(out)


def parse_budgets(value: Any, path: str) -> tuple[Budget, ...]:
    """`[{"id", "cost_center", "from", "until", "amount", "currency"}]`: ISO dates, `from`
    not after `until`, ids unique within the company."""
    if value is None:
        return ()
    items = _list(value, path)
    if len(items) > MAX_BUDGETS:
        raise GraphError(path, f"at most {MAX_BUDGETS} budgets")
    out: list[Budget] = []
    ids: set[str] = set()
    for i, item in enumerate(items):
        ipath = f"{path}[{i}]"
        body = _mapping(item, ipath)
        _only(body, ipath, frozenset({"id", "cost_center", "from", "until", "amount", "currency"}))
        budget_id = _ident(body.get("id"), f"{ipath}.id")
        if budget_id in ids:
            raise GraphError(f"{ipath}.id", f"duplicate budget {budget_id!r}")
        ids.add(budget_id)
        cost_center = _ident(body.get("cost_center"), f"{ipath}.cost_center")
        start = _date(body.get("from"), f"{ipath}.from")
        end = _date(body.get("until"), f"{ipath}.until")
        if start > end:
            raise GraphError(f"{ipath}.until", f"{end} is before from ({start})")
        money = parse_ledger_money(
            {k: body.get(k) for k in ("amount", "currency") if k in body}, ipath
        )
        out.append(Budget(budget_id, cost_center, start, end, money))
    return tuple(out)


def _date(value: Any, path: str) -> date:
    text = _text(value, path)
    try:
        if not DATE_PATTERN.match(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise GraphError(path, f"expected a date such as 2027-01-31, got {text[:40]!r}") from None


def parse_vendor(value: Any, path: str) -> Vendor:
    body = _mapping(value, path)
    _only(body, path, frozenset({"id", "name"}))
    vendor_id = _ident(body.get("id"), f"{path}.id")
    if "/" in vendor_id:
        raise GraphError(f"{path}.id", "a vendor id may not contain '/'")
    return Vendor(vendor_id, _text(body.get("name", vendor_id), f"{path}.name"))


COMPANY_FIELDS = frozenset(
    {
        "id",
        "name",
        "parent",
        "account_limit",
        "restrictions",
        "approval_group",
        "approval_rules",
        "spending_limits",
        "budgets",
    }
)


def parse_company(value: Any, path: str, reserved: Iterable[str] = ()) -> Company:
    """Parse a company; `reserved` are rule ids its `approval_rules` may not reuse (the
    tenant-wide rules': a tier names its rule, so ids must not collide)."""
    body = _mapping(value, path)
    _only(body, path, COMPANY_FIELDS)
    company_id = _ident(body.get("id"), f"{path}.id")
    parent = body.get("parent")
    limit = body.get("account_limit")
    approval = body.get("approval_group")
    rules = body.get("approval_rules")
    return Company(
        id=company_id,
        name=_text(body.get("name"), f"{path}.name"),
        parent=_ident(parent, f"{path}.parent") if parent is not None else None,
        account_limit=parse_money(limit, f"{path}.account_limit") if limit is not None else None,
        restrictions=_restrictions(body.get("restrictions"), f"{path}.restrictions"),
        approval_group=_ident(approval, f"{path}.approval_group") if approval else None,
        approval_rules=(
            parse_approval_rules(rules, f"{path}.approval_rules", reserved)
            if rules is not None
            else None
        ),
        spending_limits=parse_spending_limits(
            body.get("spending_limits"), f"{path}.spending_limits"
        ),
        budgets=parse_budgets(body.get("budgets"), f"{path}.budgets"),
    )


# --------------------------------------------------------------------------- approval rules

RULE_FIELDS = frozenset({"id", "when", "requesters", "tiers"})
WHEN_FIELDS = frozenset({"amount_over", "currency", "cost_center"})
#: SPEC section 5: a rule has 1 to 5 tiers, approved in order.
MAX_TIERS = 5


def parse_approval_rules(
    value: Any, path: str, reserved: Iterable[str] = ()
) -> tuple[ApprovalRule, ...]:
    """Parse a list of approval rules (`approval_rules` of a policy file or a company).

    Names (in `requesters` and in tier lists) are predefined roles, aliases accepted
    (`Purchaser` -> `buyer`), or group ids; which groups exist is checked where the graph is
    known (`check_rule_names`). Ids are unique within the list and not in `reserved`.
    """
    tenant_wide = frozenset(reserved)
    taken: set[str] = set()
    out: list[ApprovalRule] = []
    for i, item in enumerate(_list(value, path)):
        body = _mapping(item, f"{path}[{i}]")
        rule_id = _ident(body.get("id"), f"{path}[{i}].id")
        where = f"{path}[{i}] ({rule_id})"
        _only(body, where, RULE_FIELDS)
        if rule_id in taken:
            raise GraphError(f"{where}.id", f"duplicate approval rule id {rule_id!r}")
        if rule_id in tenant_wide:
            raise GraphError(f"{where}.id", f"{rule_id!r} is the id of a tenant-wide rule (policy)")
        taken.add(rule_id)
        out.append(_parse_rule(rule_id, body, where))
    return tuple(out)


def _parse_rule(rule_id: str, body: dict[str, Any], where: str) -> ApprovalRule:
    when = _mapping(body.get("when") if body.get("when") is not None else {}, f"{where}.when")
    _only(when, f"{where}.when", WHEN_FIELDS)
    currency = when.get("currency")
    if currency is not None:
        currency = _text(currency, f"{where}.when.currency")
        if not CURRENCY_PATTERN.match(currency):
            raise GraphError(
                f"{where}.when.currency", f"expected an ISO 4217 code such as EUR, got {currency!r}"
            )
    over = when.get("amount_over")
    amount = parse_amount(over, f"{where}.when.amount_over") if over is not None else None
    if amount is not None and currency is None:
        raise GraphError(
            f"{where}.when.amount_over", "an amount needs its currency (when.currency)"
        )
    centers: tuple[str, ...] = ()
    if "cost_center" in when:
        centers = _names_list(when["cost_center"], f"{where}.when.cost_center", _ident)
    requesters: tuple[str, ...] = ()
    if "requesters" in body:
        requesters = _names_list(body["requesters"], f"{where}.requesters", rule_name)
    tiers = _list(body.get("tiers"), f"{where}.tiers")
    if not 1 <= len(tiers) <= MAX_TIERS:
        raise GraphError(f"{where}.tiers", f"a rule has 1 to {MAX_TIERS} tiers, got {len(tiers)}")
    parsed = []
    for t, tier in enumerate(tiers):
        lists = _list(tier, f"{where}.tiers[{t}]")
        if not lists:
            raise GraphError(f"{where}.tiers[{t}]", "a tier needs at least one list of approvers")
        parsed.append(
            tuple(
                _names_list(names, f"{where}.tiers[{t}][{k}]", rule_name)
                for k, names in enumerate(lists)
            )
        )
    return ApprovalRule(rule_id, tuple(parsed), amount, currency, centers, requesters)


def _names_list(value: Any, path: str, read: Callable[[Any, str], str]) -> tuple[str, ...]:
    """A non-empty list of names, each read by `read(value, path)`, duplicates dropped."""
    items = _list(value, path)
    if not items:
        raise GraphError(path, "expected at least one name")
    out: dict[str, None] = {}
    for i, item in enumerate(items):
        out[read(item, f"{path}[{i}]")] = None
    return tuple(out)


def rule_name(value: Any, path: str) -> str:
    """A name in a rule: a predefined role (aliases accepted: the canonical name comes back)
    or a group id (no `/`: predefined groups are named by their role)."""
    text = _text(value, path)
    key = text.strip().lower().replace(" ", "_")
    key = ROLE_ALIASES.get(key, key)
    if key in PREDEFINED_ROLES:
        return key
    if "/" in text:
        raise GraphError(path, f"name a predefined group by its role (admin, ...), not {text!r}")
    return _ident(text, path)


def check_rule_names(company: Company, groups: Mapping[str, Group], path: str) -> None:
    """Every group a company's rules name is a custom customer group of that company."""
    for i, rule in enumerate(company.approval_rules or ()):
        where = f"{path}[{i}] ({rule.id})"
        named = [(f"{where}.requesters[{k}]", n) for k, n in enumerate(rule.requesters)]
        named += [
            (f"{where}.tiers[{t}][{k}][{j}]", n)
            for t, tier in enumerate(rule.tiers)
            for k, names in enumerate(tier)
            for j, n in enumerate(names)
        ]
        for at, name in named:
            if name in PREDEFINED_ROLES:
                continue
            group = groups.get(name)
            if group is None:
                raise GraphError(at, f"unknown group {name!r}")
            if group.kind is not GroupKind.CUSTOMER or group.company != company.id:
                raise GraphError(at, f"{name!r} is not a customer group of {company.id!r}")


GROUP_FIELDS = frozenset(
    {
        "id",
        "name",
        "description",
        "kind",
        "role",
        "access",
        "actions",
        "restrictions",
        "company",
        "vendor",
        "predefined",
    }
)


def parse_group(value: Any, path: str, catalog: Catalog) -> Group:
    """Parse a custom group (user or customer kind) and fill its matrix from its role."""
    body = _mapping(value, path)
    _only(body, path, GROUP_FIELDS)
    name = _text(body.get("name"), f"{path}.name")
    group_id = _ident(body["id"], f"{path}.id") if body.get("id") is not None else slug(name)
    if "/" in group_id:
        raise GraphError(f"{path}.id", "'/' is reserved for predefined and vendor group ids")
    if body.get("predefined"):
        raise GraphError(f"{path}.predefined", "predefined groups are created with companies")
    try:
        kind = GroupKind(_text(body.get("kind"), f"{path}.kind"))
    except ValueError:
        raise GraphError(f"{path}.kind", "expected user or customer") from None
    if kind is GroupKind.VENDOR:
        raise GraphError(f"{path}.kind", "vendor groups are created with their vendor")
    role_id = body.get("role")
    template: RoleTemplate | None = None
    if role_id is not None:
        template = catalog.roles.get(_text(role_id, f"{path}.role"))
        if template is None:
            raise GraphError(
                f"{path}.role", f"unknown role {role_id!r} (known: {sorted(catalog.roles)})"
            )
    access = dict(template.access) if template else {}
    for type_id, level in parse_access(body.get("access"), f"{path}.access", catalog).items():
        if level is Level.NONE:
            access.pop(type_id, None)
        else:
            access[type_id] = level
    actions = dict(template.actions) if template else {}
    actions.update(parse_actions(body.get("actions"), f"{path}.actions", catalog))
    restrictions = _restrictions(body.get("restrictions"), f"{path}.restrictions")
    if restrictions and kind is not GroupKind.USER:
        raise GraphError(f"{path}.restrictions", "only user (employee) groups carry restrictions")
    company = body.get("company")
    if company is not None and kind is not GroupKind.CUSTOMER:
        raise GraphError(f"{path}.company", "only customer groups belong to a company")
    if body.get("vendor") is not None:
        raise GraphError(f"{path}.vendor", "vendor groups are created with their vendor")
    return Group(
        id=group_id,
        name=name,
        kind=kind,
        access=frozen_map(access),
        actions=frozen_map({t: a for t, a in actions.items() if a}),
        description=str(body.get("description") or ""),
        role=template.id if template else None,
        restrictions=restrictions,
        company=_ident(company, f"{path}.company") if company is not None else None,
    )


def parse_access(value: Any, path: str, catalog: Catalog) -> dict[str, Level]:
    out: dict[str, Level] = {}
    for type_id, raw in _mapping(value if value is not None else {}, path).items():
        _own_type(type_id, f"{path}.{type_id}", catalog)
        try:
            out[type_id] = Level.parse(_text(raw, f"{path}.{type_id}"))
        except KeyError:
            raise GraphError(
                f"{path}.{type_id}", f"expected none, read or manage, got {raw!r}"
            ) from None
    return out


def parse_actions(value: Any, path: str, catalog: Catalog) -> dict[str, tuple[ActionGrant, ...]]:
    out: dict[str, tuple[ActionGrant, ...]] = {}
    for type_id, items in _mapping(value if value is not None else {}, path).items():
        tpath = f"{path}.{type_id}"
        rtype = _own_type(type_id, tpath, catalog)
        grants: list[ActionGrant] = []
        for i, item in enumerate(_list(items, tpath)):
            ipath = f"{tpath}[{i}]"
            body = {"action": item} if isinstance(item, str) else _mapping(item, ipath)
            _only(body, ipath, frozenset({"action", "when"}))
            action = _text(body.get("action"), f"{ipath}.action")
            if action not in rtype.actions:
                raise GraphError(ipath, f"{type_id!r} has no named action {action!r}")
            when = body.get("when")
            if when is not None and when not in catalog.conditions:
                raise GraphError(f"{ipath}.when", f"unknown condition {when!r}")
            grants.append(ActionGrant(action, when))
        out[type_id] = tuple(grants)
    return out


def _own_type(type_id: str, path: str, catalog: Catalog) -> Any:
    rtype = catalog.types.get(type_id)
    if rtype is None:
        raise GraphError(path, f"unknown resource type {type_id!r}")
    if rtype.parent is not None:
        raise GraphError(path, f"{type_id!r} takes its permission from {rtype.parent!r}")
    return rtype


#: The fields of a document's entry for an existing vendor group (`customize_vendor_group`).
VENDOR_GROUP_FIELDS = frozenset({"id", "name", "description", "kind", "actions", "vendor"})


def customize_vendor_group(group: Group, value: Any, path: str, catalog: Catalog) -> Group:
    """Apply a document's entry for an existing vendor group: name, description, actions."""
    body = _mapping(value, path)
    _only(body, path, VENDOR_GROUP_FIELDS)
    role = group.role or ""
    template = catalog.vendor_roles[role]
    actions = parse_actions(body.get("actions"), f"{path}.actions", catalog)
    for type_id, grants in actions.items():
        allowed = (template.grantable or {}).get(type_id, EMPTY)
        for grant in grants:
            if grant.action not in allowed:
                raise GraphError(
                    f"{path}.actions.{type_id}",
                    f"{role} may not be granted {grant.action!r}",
                )
    merged = dict(group.actions)
    merged.update(actions)
    return Group(
        id=group.id,
        name=_text(body.get("name", group.name), f"{path}.name"),
        kind=group.kind,
        access=group.access,
        actions=frozen_map({t: a for t, a in merged.items() if a}),
        description=str(body.get("description") or group.description),
        role=group.role,
        vendor=group.vendor,
        predefined=True,
    )


def predefined_groups(company: Company, catalog: Catalog) -> list[Group]:
    """Return the four groups created with `company` (ids `<company>/<role>`)."""
    if set(PREDEFINED_ROLES) - set(catalog.predefined):
        raise GraphError("companies", "this policy defines no predefined customer groups")
    return [
        _created_group(
            catalog.predefined[role],
            predefined_group_id(company.id, role),
            company.name,
            company=company.id,
        )
        for role in PREDEFINED_ROLES
    ]


def vendor_groups(vendor: Vendor, catalog: Catalog) -> list[Group]:
    """Return the four groups created with `vendor` (ids `<vendor>/vendor.order.manager`, ...)."""
    if set(VENDOR_ROLES) - set(catalog.vendor_roles):
        raise GraphError("vendors", "this policy defines no vendor roles")
    return [
        _created_group(
            catalog.vendor_roles[role],
            vendor_group_id(vendor.id, role),
            vendor.name,
            vendor=vendor.id,
        )
        for role in VENDOR_ROLES
    ]


def _created_group(
    template: RoleTemplate,
    group_id: str,
    owner_name: str,
    *,
    company: str | None = None,
    vendor: str | None = None,
) -> Group:
    """A group created with its company or vendor, from its template; it cannot be edited."""
    return Group(
        id=group_id,
        name=f"{owner_name} {template.name}",
        kind=template.kind,
        access=template.access,
        actions=template.actions,
        role=template.id,
        company=company,
        vendor=vendor,
        predefined=True,
    )


def normalize_role(value: Any, path: str) -> str:
    """Return the predefined role for `value`, accepting the aliases (Purchaser -> buyer)."""
    key = _text(value, path).strip().lower().replace(" ", "_")
    key = ROLE_ALIASES.get(key, key)
    if key not in PREDEFINED_ROLES:
        raise GraphError(
            path, f"unknown predefined group {value!r} (admin, contact, buyer, requester)"
        )
    return key


SUBJECT_FIELDS = frozenset(
    {"id", "kind", "attributes", "vendor", "groups", "companies", "spending_limits"}
)


def parse_subject(value: Any, path: str) -> tuple[Subject, dict[str, list[str]]]:
    """Parse a subject; return it with its `companies` shorthand (company -> roles) unexpanded."""
    body = _mapping(value, path)
    _only(body, path, SUBJECT_FIELDS)
    subject_id = _ident(body.get("id"), f"{path}.id")
    try:
        kind = SubjectKind(_text(body.get("kind"), f"{path}.kind"))
    except ValueError:
        raise GraphError(f"{path}.kind", "expected employee, customer or vendor_user") from None
    attributes = _mapping(body.get("attributes") or {}, f"{path}.attributes")
    vendor = body.get("vendor")
    if (vendor is None) == (kind is SubjectKind.VENDOR_USER):
        raise GraphError(
            f"{path}.vendor", "a vendor user, and only a vendor user, names its vendor"
        )
    memberships = [
        parse_membership(item, f"{path}.groups[{i}]")
        for i, item in enumerate(_list(body.get("groups") or [], f"{path}.groups"))
    ]
    companies: dict[str, list[str]] = {}
    raw_companies = _mapping(body.get("companies") or {}, f"{path}.companies")
    if raw_companies and kind is not SubjectKind.CUSTOMER:
        raise GraphError(f"{path}.companies", "only customers belong to companies")
    for company_id, roles in raw_companies.items():
        cpath = f"{path}.companies.{company_id}"
        _ident(company_id, cpath)
        companies[company_id] = [
            normalize_role(r, f"{cpath}[{i}]") for i, r in enumerate(_list(roles, cpath))
        ]
    subject = Subject(
        id=subject_id,
        kind=kind,
        attributes=frozen_map(attributes),
        vendor=_ident(vendor, f"{path}.vendor") if vendor is not None else None,
        memberships=tuple(memberships),
        spending_limits=parse_spending_limits(
            body.get("spending_limits"), f"{path}.spending_limits"
        ),
    )
    return subject, companies


def parse_membership(value: Any, path: str) -> Membership:
    """Parse `"group-id"` or `{"group": id, "permission": "ro" | "rw" | "same_customer" | [..]}`."""
    if isinstance(value, str):
        return Membership(_membership_group(value, path))
    body = _mapping(value, path)
    _only(body, path, frozenset({"group", "permission", "valid_from", "valid_until"}))
    group = _membership_group(body.get("group"), f"{path}.group")
    valid_from = _moment(body.get("valid_from"), f"{path}.valid_from")
    valid_until = _moment(body.get("valid_until"), f"{path}.valid_until")
    if valid_from is not None and valid_until is not None and valid_from >= valid_until:
        raise GraphError(f"{path}.valid_until", "must be later than valid_from")
    raw = body.get("permission")
    perms = (
        [raw]
        if isinstance(raw, str)
        else _list(raw if raw is not None else [], f"{path}.permission")
    )
    level = None
    same_customer = False
    for perm in perms:
        if perm not in LINK_PERMISSIONS:
            raise GraphError(
                f"{path}.permission", f"expected ro, rw or same_customer, got {perm!r}"
            )
        if perm == "same_customer":
            same_customer = True
        elif level is not None and level != perm:
            raise GraphError(f"{path}.permission", "ro and rw exclude each other")
        else:
            level = perm
    return Membership(group, level, same_customer, valid_from, valid_until)  # type: ignore[arg-type]


#: RFC 3339 date-time with an offset, e.g. `2027-01-01T00:00:00Z` or `...+01:00`.
_MOMENT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _moment(value: Any, path: str) -> float | None:
    """An RFC 3339 instant (an offset is required) as seconds since the epoch, to the
    millisecond; None when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not _MOMENT.fullmatch(value):
        raise GraphError(
            path, "expected an RFC 3339 date-time with an offset, e.g. 2027-01-01T00:00:00Z"
        )
    try:
        moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise GraphError(path, f"not a valid date-time: {exc}") from None
    return round(moment.timestamp() * 1000) / 1000


def _membership_group(value: Any, path: str) -> str:
    text = _text(value, path)
    if len(text) > 300 or not all(ID_PATTERN.match(p) for p in text.split("/", 1)):
        raise GraphError(path, f"invalid group id {text!r}")
    return text


# --------------------------------------------------------------------------- rules


def find_cycle(parents: Mapping[str, str | None]) -> list[str] | None:
    """Return a cycle in the company tree (`company -> parent`) as a list of ids, or None."""
    done: set[str] = set()
    for start in parents:
        trail: list[str] = []
        seen: set[str] = set()
        node: str | None = start
        while node is not None and node not in done:
            if node in seen:
                return [*trail[trail.index(node) :], node]
            seen.add(node)
            trail.append(node)
            node = parents.get(node)
        done.update(trail)
    return None


def ancestors(company: str, parents: Mapping[str, str | None]) -> list[str]:
    out: list[str] = []
    node = parents.get(company)
    while node is not None and node not in out:
        out.append(node)
        node = parents.get(node)
    return out


def descendants(company: str, parents: Mapping[str, str | None]) -> list[str]:
    children: dict[str, list[str]] = {}
    for child, parent in parents.items():
        if parent is not None:
            children.setdefault(parent, []).append(child)
    out: list[str] = []
    stack = list(children.get(company, ()))
    while stack:
        node = stack.pop()
        if node not in out:
            out.append(node)
            stack.extend(children.get(node, ()))
    return sorted(out)


def contact_companies(
    company: str, parents: Mapping[str, str | None], mode: Propagation
) -> list[str]:
    """Return the companies a contact assigned to `company` also becomes a contact of."""
    if mode is Propagation.UPWARD:
        return ancestors(company, parents)
    if mode is Propagation.DOWNWARD:
        return descendants(company, parents)
    return []


def check_assignment(memberships: Iterable[str], path: str) -> None:
    """Refuse a customer in more than one of admin/buyer/requester of one company."""
    held: dict[str, str] = {}
    for group_id in memberships:
        company, sep, role = group_id.rpartition("/")
        if not sep or role not in EXCLUSIVE_ROLES:
            continue
        if company in held and held[company] != role:
            raise GraphError(
                f"{path}.{company}",
                "a customer may be in only one of admin, buyer, requester per company "
                f"(already {held[company]}, now {role})",
            )
        held[company] = role


def check_membership_kind(subject: Subject, group: Group, path: str) -> None:
    """A subject joins only groups of its own kind (and a vendor user only its vendor's)."""
    expected = {
        SubjectKind.EMPLOYEE: GroupKind.USER,
        SubjectKind.CUSTOMER: GroupKind.CUSTOMER,
        SubjectKind.VENDOR_USER: GroupKind.VENDOR,
    }[subject.kind]
    if group.kind is not expected:
        raise GraphError(
            path, f"a {subject.kind.value} cannot join {group.kind.value} group {group.id!r}"
        )
    if group.vendor is not None and group.vendor != subject.vendor:
        raise GraphError(path, f"group {group.id!r} belongs to vendor {group.vendor!r}")


def slug(name: str) -> str:
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return text[:64] or "group"


# --------------------------------------------------------------------------- whole documents


DOCUMENT_FIELDS = frozenset(
    {"tenant", "settings", "vendors", "companies", "groups", "subjects", "resources", "delegations"}
)
#: Attributes of a held resource that fill `Resource` fields: a string (or null) each, and
#: `restrictions` a list of strings. Any other attribute is a property, any JSON value.
RESOURCE_FIELDS = ("company", "vendor", "owner", "customer")
MAX_RESOURCE_ATTRIBUTES = 64


def parse_resource(value: Any, path: str, catalog: Catalog) -> ResourceEntity:
    """A held resource entity `{"type", "id", "attributes"?}` of a type of the catalog."""
    body = _mapping(value, path)
    _only(body, path, frozenset({"type", "id", "attributes"}))
    type_id = _text(body.get("type"), f"{path}.type")
    if type_id not in catalog.types:
        raise GraphError(f"{path}.type", f"unknown resource type {type_id!r}")
    resource_id = _ident(body.get("id"), f"{path}.id")
    attributes = _mapping(body.get("attributes") or {}, f"{path}.attributes")
    if len(attributes) > MAX_RESOURCE_ATTRIBUTES:
        raise GraphError(f"{path}.attributes", f"at most {MAX_RESOURCE_ATTRIBUTES} attributes")
    out: dict[str, Any] = {}
    for name, item in attributes.items():
        where = f"{path}.attributes.{name}"
        if name in ("type", "id"):
            raise GraphError(where, "the type and id are the entity's, not attributes")
        if name == "restrictions":
            out[name] = sorted(_restrictions(item, where))
        elif name in RESOURCE_FIELDS:
            if item is not None:
                out[name] = _text(item, where)
        else:
            out[name] = item
    return ResourceEntity(type_id, resource_id, frozen_map(out))


def parse_graph(doc: Any, catalog: Catalog, tenant: str | None = None) -> Graph:
    """Validate a whole graph document and return the tenant's `Graph`; raise `GraphError`."""
    body = _mapping(doc, "")
    _only(body, "", DOCUMENT_FIELDS)
    name = tenant or _ident(body.get("tenant"), "tenant")
    if tenant is not None and body.get("tenant") not in (None, tenant):
        raise GraphError("tenant", f"document is for tenant {body.get('tenant')!r}, not {tenant!r}")
    settings = parse_settings(body.get("settings"))

    vendors: dict[str, Vendor] = {}
    groups: dict[str, Group] = {}
    for i, item in enumerate(_list(body.get("vendors") or [], "vendors")):
        vendor = parse_vendor(item, f"vendors[{i}]")
        if vendor.id in vendors:
            raise GraphError(f"vendors[{i}].id", f"duplicate vendor {vendor.id!r}")
        vendors[vendor.id] = vendor
        groups.update((g.id, g) for g in vendor_groups(vendor, catalog))

    companies: dict[str, Company] = {}
    reserved = [rule.id for rule in catalog.approval_rules]
    for i, item in enumerate(_list(body.get("companies") or [], "companies")):
        company = parse_company(item, f"companies[{i}]", reserved)
        if company.id in companies:
            raise GraphError(f"companies[{i}].id", f"duplicate company {company.id!r}")
        companies[company.id] = company
        groups.update((g.id, g) for g in predefined_groups(company, catalog))
    parents = {c.id: c.parent for c in companies.values()}
    for i, company in enumerate(companies.values()):
        if company.parent is not None and company.parent not in companies:
            raise GraphError(f"companies[{i}].parent", f"unknown company {company.parent!r}")
    cycle = find_cycle(parents)
    if cycle:
        raise GraphError("companies", f"company tree has a cycle: {' -> '.join(cycle)}")

    for i, item in enumerate(_list(body.get("groups") or [], "groups")):
        path = f"groups[{i}]"
        existing = groups.get(str(_mapping(item, path).get("id")))
        if existing is not None and existing.kind is GroupKind.VENDOR:
            groups[existing.id] = customize_vendor_group(existing, item, path, catalog)
            continue
        if existing is not None and existing.predefined:
            raise GraphError(f"{path}.id", f"predefined group {existing.id!r} cannot be changed")
        group = parse_group(item, path, catalog)
        if group.id in groups:
            raise GraphError(f"{path}.id", f"duplicate group {group.id!r}")
        if group.company is not None and group.company not in companies:
            raise GraphError(f"{path}.company", f"unknown company {group.company!r}")
        groups[group.id] = group

    for i, company in enumerate(companies.values()):
        check_approval_group(company, groups, f"companies[{i}].approval_group")
        check_rule_names(company, groups, f"companies[{i}].approval_rules")
    for i, group_id in enumerate(settings.default_customer_groups):
        check_default_group(
            groups.get(group_id), group_id, f"settings.default_customer_groups[{i}]"
        )

    subjects: dict[str, Subject] = {}
    for i, item in enumerate(_list(body.get("subjects") or [], "subjects")):
        path = f"subjects[{i}]"
        subject, shorthand = parse_subject(item, path)
        if subject.id in subjects:
            raise GraphError(f"{path}.id", f"duplicate subject {subject.id!r}")
        if subject.vendor is not None and subject.vendor not in vendors:
            raise GraphError(f"{path}.vendor", f"unknown vendor {subject.vendor!r}")
        subjects[subject.id] = expand_memberships(
            subject, shorthand, groups, parents, settings, path
        )
    check_approval_members(companies, groups, subjects)
    resources: dict[tuple[str, str], ResourceEntity] = {}
    for i, item in enumerate(_list(body.get("resources") or [], "resources")):
        entity = parse_resource(item, f"resources[{i}]", catalog)
        if (entity.type, entity.id) in resources:
            raise GraphError(f"resources[{i}].id", f"duplicate resource {entity.type}/{entity.id}")
        resources[entity.type, entity.id] = entity
    lent = parse_delegations(body.get("delegations"), companies, groups, subjects)
    return Graph(
        tenant=name,
        settings=settings,
        vendors=frozen_map(vendors),
        companies=frozen_map(companies),
        groups=frozen_map(groups),
        subjects=frozen_map(subjects),
        resources=frozen_map(resources),
        delegations=frozen_map(lent),
    )


def parse_delegations(
    value: Any,
    companies: Mapping[str, Company],
    groups: Mapping[str, Group],
    subjects: Mapping[str, Subject],
) -> dict[str, Delegation]:
    """The document's `delegations`, each between two customers of its company."""

    def companies_of(subject_id: str) -> frozenset[str] | None:
        subject = subjects.get(subject_id)
        if subject is None:
            return None
        return customer_companies(subject.memberships, groups)

    out: dict[str, Delegation] = {}
    for i, item in enumerate(_list(value or [], "delegations")):
        path = f"delegations[{i}]"
        delegation = delegations.parse_delegation(item, path, _ident)
        if delegation.id in out:
            raise GraphError(f"{path}.id", f"duplicate delegation {delegation.id!r}")
        delegations.check_delegation(delegation, path, companies, companies_of)
        out[delegation.id] = delegation
    return out


def customer_companies(links: Iterable[Membership], groups: Mapping[str, Group]) -> frozenset[str]:
    """The companies a subject is a customer of: those of the groups it is linked to."""
    out: set[str] = set()
    for link in links:
        group = groups.get(link.group)
        if group is not None and group.company is not None:
            out.add(group.company)
        elif group is None:
            company, sep, role = link.group.rpartition("/")
            if sep and role in PREDEFINED_ROLES:
                out.add(company)
    return frozenset(out)


def check_approval_group(company: Company, groups: Mapping[str, Group], path: str) -> None:
    if company.approval_group is None:
        return
    group = groups.get(company.approval_group)
    if group is None:
        raise GraphError(path, f"unknown group {company.approval_group!r}")
    if group.kind is not GroupKind.CUSTOMER or group.company != company.id or group.predefined:
        raise GraphError(path, f"{group.id!r} is not a custom customer group of {company.id!r}")


def check_approval_members(
    companies: Mapping[str, Company], groups: Mapping[str, Group], subjects: Mapping[str, Subject]
) -> None:
    """Every member of a company's approval group is a customer of that company."""
    approval = {c.approval_group: c.id for c in companies.values() if c.approval_group}
    for i, subject in enumerate(subjects.values()):
        for j, link in enumerate(subject.memberships):
            company = approval.get(link.group)
            if company is None:
                continue
            owners = {m.group: _owner(m.group, groups) for m in subject.memberships}
            check_approval_member(
                subject.id, company, link.group, owners, f"subjects[{i}].groups[{j}]"
            )


def _owner(group_id: str, groups: Mapping[str, Group]) -> str | None:
    group = groups.get(group_id)
    return group.company if group is not None else None


def check_default_group(group: Group | None, group_id: str, path: str) -> None:
    if group is None:
        raise GraphError(path, f"unknown group {group_id!r}")
    if group.kind is not GroupKind.CUSTOMER or group.company is not None:
        raise GraphError(path, f"{group_id!r} is not a tenant-wide customer group")


def expand_memberships(
    subject: Subject,
    shorthand: Mapping[str, list[str]],
    groups: Mapping[str, Group],
    parents: Mapping[str, str | None],
    settings: Settings,
    path: str,
) -> Subject:
    """Turn the `companies` shorthand into memberships, add Contact and its propagation,
    validate every membership and the assignment rule, and return the complete subject."""
    links: dict[str, Membership] = {}
    for i, link in enumerate(subject.memberships):
        group = groups.get(link.group)
        if group is None:
            raise GraphError(f"{path}.groups[{i}]", f"unknown group {link.group!r}")
        check_membership_kind(subject, group, f"{path}.groups[{i}]")
        links[link.group] = link
    # Joining admin, buyer or requester by group id assigns the customer to that company, as
    # the `companies` shorthand does: Contact and its propagation come along. A `contact` link
    # by id stays as it is, so a document read back from the store does not propagate again.
    assigned = {company: list(roles) for company, roles in shorthand.items()}
    for link in subject.memberships:
        group = groups[link.group]
        if group.predefined and group.company is not None and group.role in EXCLUSIVE_ROLES:
            assigned.setdefault(group.company, [])
    for company_id, roles in assigned.items():
        if company_id not in parents:
            raise GraphError(f"{path}.companies.{company_id}", f"unknown company {company_id!r}")
        # Assigning a customer to a company makes it a contact there (seed 001), and the
        # contact propagates through the tree at this moment only.
        for role in [*roles, "contact"]:
            gid = predefined_group_id(company_id, role)
            links.setdefault(gid, Membership(gid))
        for other in contact_companies(company_id, parents, settings.company_contact_propagation):
            gid = predefined_group_id(other, "contact")
            links.setdefault(gid, Membership(gid))
    check_assignment(links, f"{path}.companies")
    return Subject(
        id=subject.id,
        kind=subject.kind,
        attributes=subject.attributes,
        vendor=subject.vendor,
        memberships=tuple(links.values()),
        spending_limits=subject.spending_limits,
    )


def members_of(graph: Graph, group_id: str) -> frozenset[str]:
    """Return the ids of the subjects linked to `group_id` (for approver lists)."""
    return frozenset(
        s.id for s in graph.subjects.values() if any(m.group == group_id for m in s.memberships)
    )


def ident(value: Any, path: str) -> str:
    """Validate an id (tenant, company, ...) at `path`; raise `GraphError` if it is not one."""
    return _ident(value, path)
