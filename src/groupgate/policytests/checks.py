"""The `checks` section: may this subject do this action on this resource?

    checks:
      - name: a DE manager updates a DE order
        subject: emp-de
        action: update
        resource: {type: orders, id: o-17, restrictions: [DE]}
        expect: allow            # or deny
        reason: restricted       # optional: a substring of the decision's reason

Each case is asked twice, as `groupgate serve` answers it (the compiled profile) and with
`explain` (the reference evaluator, which writes the trace): the case fails when the
answer is not the expected one, when the reason lacks the substring, or when the two
evaluators disagree. A failure carries the explain trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from groupgate.model import Catalog, Graph, Resource, frozen_map
from groupgate.policytests import at as read
from groupgate.policytests.at import At
from groupgate.policytests.sections import Context, Outcome

RESOURCE_TEXT = ("id", "company", "vendor", "owner", "customer")
RESOURCE_KEYS = frozenset({"type", "restrictions", "properties", *RESOURCE_TEXT})
CHECK_KEYS = frozenset({"subject", "action", "resource", "expect", "reason"})


@dataclass(frozen=True, slots=True)
class CheckSpec:
    subject: str
    action: str
    resource: Resource
    allow: bool
    reason: str | None


class Checks:
    """The `checks` section type."""

    name = "checks"

    def parse(self, item: dict[str, Any], at: At, graph: Graph, catalog: Catalog) -> CheckSpec:
        read.only(item, CHECK_KEYS, at, required=("subject", "action", "resource", "expect"))
        subject = read.text(item["subject"], at.key("subject"))
        if subject not in graph.subjects:
            raise at.key("subject").fail(f"the suite's graph has no subject {subject!r}")
        resource = parse_resource(item["resource"], at.key("resource"), catalog)
        action = read.text(item["action"], at.key("action"))
        rtype = catalog.types[resource.type]
        governing = catalog.types[rtype.parent] if rtype.parent else rtype
        if action not in catalog.levels and action not in governing.actions:
            raise at.key("action").fail(f"{resource.type!r} has no action {action!r}")
        expect = read.choice(item["expect"], ("allow", "deny"), at.key("expect"))
        reason = read.optional_text(item, "reason", at)
        return CheckSpec(subject, action, resource, expect == "allow", reason)

    async def run(self, spec: CheckSpec, context: Context) -> Outcome:
        decider, tenant = context.service.decider, context.tenant
        answer = await decider.check(tenant, spec.subject, spec.action, spec.resource)
        traced = await decider.check(tenant, spec.subject, spec.action, spec.resource, explain=True)
        decision, reference = answer.decision, traced.decision
        trace = tuple(f"  {line}" for line in reference.explain or ())
        got = "allow" if decision.allow else "deny"
        said = f"{got} ({decision.reason})"
        if decision.allow != spec.allow:
            expected = "allow" if spec.allow else "deny"
            return Outcome(False, f"expected {expected}, got {said}", ("explain:", *trace))
        if reference.allow != decision.allow:
            return Outcome(
                False,
                f"the compiled engine says {said}, the reference evaluator "
                f"{'allow' if reference.allow else 'deny'} ({reference.reason})",
                ("explain:", *trace),
            )
        if spec.reason is not None and spec.reason not in decision.reason:
            return Outcome(
                False,
                f"expected a reason containing {spec.reason!r}, got {said}",
                ("explain:", *trace),
            )
        return Outcome(True, said)


def parse_resource(value: Any, at: At, catalog: Catalog) -> Resource:
    """A check's resource: `{type, id?, company?, restrictions?, vendor?, owner?, customer?,
    properties?}`, its type one of the catalog's."""
    body = read.mapping(value, at)
    read.only(body, RESOURCE_KEYS, at, required=("type",))
    type_id = read.text(body["type"], at.key("type"))
    if type_id not in catalog.types:
        raise at.key("type").fail(f"unknown resource type {type_id!r}")
    fields = {name: read.optional_text(body, name, at) for name in RESOURCE_TEXT}
    restrictions = read.texts(body.get("restrictions", []), at.key("restrictions"))
    properties = read.mapping(body.get("properties", {}), at.key("properties"))
    return Resource(
        type_id,
        fields["id"],
        fields["company"],
        frozenset(restrictions),
        fields["vendor"],
        fields["owner"],
        fields["customer"],
        frozen_map(properties),
    )
