"""Small builders shared by the engine tests: graphs from documents, both evaluators at once.

Every decision a test asks for goes through the compiled profile (`check`) *and* the reference
evaluator (`evaluate`); `decide` fails when they disagree, so each scenario test is also a
consistency test of the two readings of SPEC section 1.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from groupgate.engine import approvers, check, compile_profile, evaluate, parse_graph
from groupgate.model import (
    EXCLUSIVE_ROLES,
    Catalog,
    Decision,
    Graph,
    Money,
    Resource,
)
from groupgate.policy import load_policy

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
DATA = REPO / "tests" / "data"


@functools.cache
def catalog() -> Catalog:
    """The repository's policy (`policies/`), loaded once."""
    return load_policy(POLICIES)


def seed_facts(name: str) -> Any:
    """A facts file of `tests/data/seeds/` (facts transcribed from the source documents)."""
    return yaml.safe_load((DATA / "seeds" / name).read_text(encoding="utf-8"))


def graph(doc: dict[str, Any], policy: Catalog | None = None) -> Graph:
    """Parse a graph document (tenant defaults to `t`) against `policy` or `policies/`."""
    return parse_graph({"tenant": "t", **doc}, policy or catalog())


def resource(type_id: str, **attrs: Any) -> Resource:
    """Build a `Resource`; `restrictions` may be given as any iterable of values."""
    if "restrictions" in attrs:
        attrs["restrictions"] = frozenset(attrs["restrictions"])
    return Resource(type=type_id, **attrs)


def both(
    g: Graph, subject: str, action: str, res: Resource, policy: Catalog | None = None
) -> tuple[Decision, Decision]:
    """Return (compiled decision, reference decision) for one check."""
    policy = policy or catalog()
    subj = g.subjects[subject]
    active = approvers.active_approval_groups(g)
    profile = compile_profile(
        policy, subj, g.groups, g.settings, tenant=g.tenant, approval_groups=active
    )
    return (
        check(profile, action, res),
        evaluate(policy, subj, g.groups, g.settings, action, res, active),
    )


def decide(
    g: Graph,
    subject: str,
    action: str,
    type_id: str,
    policy: Catalog | None = None,
    **attrs: Any,
) -> bool:
    """Return whether `subject` may `action` the resource; fail if the evaluators disagree."""
    compiled, reference = both(g, subject, action, resource(type_id, **attrs), policy)
    assert compiled.allow == reference.allow, (
        f"compiled {compiled} and reference {reference} disagree on "
        f"{subject} {action} {type_id} {attrs}"
    )
    return compiled.allow


def purchase_roles(g: Graph, subject: str, company: str) -> frozenset[str]:
    """The subject's exclusive predefined roles in `company` (as the store computes them)."""
    prefix = company + "/"
    return frozenset(
        link.group.removeprefix(prefix)
        for link in g.subjects[subject].memberships
        if link.group.startswith(prefix) and link.group.removeprefix(prefix) in EXCLUSIVE_ROLES
    )


def purchase_members(g: Graph, company: str) -> dict[str, frozenset[str]]:
    """The company's admin, buyer and approval group members who may approve, by group id."""
    return approvers.purchase_members(g, company)


def money(amount: str, currency: str = "EUR") -> Money:
    """A `Money` from a decimal string."""
    return Money(Decimal(amount), currency)
