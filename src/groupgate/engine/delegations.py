"""Delegations of approval (SPEC section 5): `{from, to, company, from_time, until_time}`.

While a delegation runs, `to` may approve in `company` what `from` may, never their own
purchase. Both must be customers of the company (in one of its groups, or its Contact), they
must differ, and `from_time` must be before `until_time`. Times are RFC 3339 with an offset
(`2027-01-01T00:00:00Z`) and are kept as epoch milliseconds; answers write them in UTC.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

from groupgate.errors import GraphError
from groupgate.model import Delegation

FIELDS = frozenset({"id", "from", "to", "company", "from_time", "until_time"})


def parse_time(value: Any, path: str) -> int:
    """An RFC 3339 date-time with an offset, as epoch milliseconds."""
    if not isinstance(value, str) or not 20 <= len(value) <= 40:
        raise GraphError(path, "expected an RFC 3339 date-time such as 2027-01-01T00:00:00Z")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise GraphError(
            path, f"{value!r} is not an RFC 3339 date-time such as 2027-01-01T00:00:00Z"
        ) from None
    if moment.tzinfo is None or "T" not in value.upper():
        raise GraphError(path, f"{value!r} has no time zone offset (Z or +01:00)")
    return int(moment.timestamp() * 1000)


def format_time(ms: int) -> str:
    """Epoch milliseconds as an RFC 3339 UTC date-time (milliseconds only when not zero)."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    if ms % 1000:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_delegation(value: Any, path: str, ident: Callable[[Any, str], str]) -> Delegation:
    """Validate one delegation's shape; `ident` validates ids (the graph's rule)."""
    if not isinstance(value, dict):
        raise GraphError(path, "expected an object")
    unknown = sorted(set(value) - FIELDS)
    if unknown:
        raise GraphError(f"{path}.{unknown[0]}", "unknown field")
    given = value.get("id")
    delegation_id = ident(given, f"{path}.id") if given is not None else new_id()
    source = ident(value.get("from"), f"{path}.from")
    to = ident(value.get("to"), f"{path}.to")
    company = ident(value.get("company"), f"{path}.company")
    start = parse_time(value.get("from_time"), f"{path}.from_time")
    until = parse_time(value.get("until_time"), f"{path}.until_time")
    if source == to:
        raise GraphError(f"{path}.to", "a subject cannot delegate to themselves")
    if start >= until:
        raise GraphError(f"{path}.until_time", "must be after from_time")
    return Delegation(delegation_id, source, to, company, start, until)


def check_delegation(
    delegation: Delegation,
    path: str,
    companies: Collection[str],
    companies_of: Callable[[str], Collection[str] | None],
) -> None:
    """Refuse a delegation whose company is unknown or whose ends are not its customers.

    `companies_of(subject)` is the set of companies the subject is a customer of (None: no
    such subject).
    """
    if delegation.company not in companies:
        raise GraphError(f"{path}.company", f"unknown company {delegation.company!r}")
    for name, subject in (("from", delegation.source), ("to", delegation.to)):
        owned = companies_of(subject)
        if owned is None:
            raise GraphError(f"{path}.{name}", f"unknown subject {subject!r}")
        if delegation.company not in owned:
            raise GraphError(
                f"{path}.{name}", f"{subject!r} is not a customer of {delegation.company!r}"
            )


def document(delegation: Delegation) -> dict[str, str]:
    """The delegation as the graph document and the admin API write it."""
    return {
        "id": delegation.id,
        "from": delegation.source,
        "to": delegation.to,
        "company": delegation.company,
        "from_time": format_time(delegation.start),
        "until_time": format_time(delegation.until),
    }


def load(body: dict[str, Any]) -> Delegation:
    """A stored delegation (validated when written)."""
    return Delegation(
        body["id"],
        body["from"],
        body["to"],
        body["company"],
        int(body["start"]),
        int(body["until"]),
    )


def dump(delegation: Delegation) -> dict[str, Any]:
    """The stored form: the document's fields with the times in milliseconds."""
    return {
        "id": delegation.id,
        "from": delegation.source,
        "to": delegation.to,
        "company": delegation.company,
        "start": delegation.start,
        "until": delegation.until,
    }


def new_id() -> str:
    return "dl-" + secrets.token_hex(8)
