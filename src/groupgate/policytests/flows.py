"""The `flows` section: an approval flow from its request to its end, step by step.

    flows:
      - name: a requester's purchase needs a buyer, then it is approved
        subject: cust-requester
        company: c-parent
        amount: "100.00"
        currency: EUR
        cost_center: CC-1            # optional
        steps:
          - {approve: cust-requester, expect: refused}   # nobody approves their own
          - {approve: cust-buyer, expect: APPROVED}
      - name: a buyer within the limit needs no flow
        subject: cust-buyer
        company: c-parent
        amount: "10.00"
        currency: EUR
        expect: allow                # the request's answer: flow (default), allow or deny

Each case requests a new flow (as `POST /v1/approvals` does, the same store calls), then
runs its steps in order: `approve`, `decline` or `cancel`, each by the subject it names,
each expecting the flow's status after it (`PENDING`, `APPROVED`, `DECLINED`, `CLOSED`) or
`refused` (the subject may not act now, or the flow is no longer pending). Eligibility is
decided as the API decides it, against the suite's graph at that moment.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from groupgate.errors import Conflict, Forbidden
from groupgate.model import Catalog, Graph
from groupgate.policytests import at as read
from groupgate.policytests.at import At
from groupgate.policytests.purchases import purchase_fields
from groupgate.policytests.sections import Context, Outcome
from groupgate.store.contract import PurchaseAnswer
from groupgate.store.flows import Request

FLOW_KEYS = frozenset(
    {"subject", "company", "amount", "currency", "cost_center", "steps", "expect"}
)
REQUIRED = ("subject", "company", "amount", "currency")
ACTS = ("approve", "decline", "cancel")
STATUSES = ("PENDING", "APPROVED", "DECLINED", "CLOSED", "refused")
ANSWERS = ("flow", "allow", "deny")


@dataclass(frozen=True, slots=True)
class Step:
    act: str
    subject: str
    expect: str


@dataclass(frozen=True, slots=True)
class FlowSpec:
    request: Request
    expect: str
    steps: tuple[Step, ...]


class Flows:
    """The `flows` section type."""

    name = "flows"

    def parse(self, item: dict[str, Any], at: At, graph: Graph, catalog: Catalog) -> FlowSpec:
        read.only(item, FLOW_KEYS, at, required=REQUIRED)
        subject, company, amount, money = purchase_fields(item, at, graph)
        center = read.optional_text(item, "cost_center", at) or ""
        expect = read.choice(item.get("expect", "flow"), ANSWERS, at.key("expect"))
        steps = tuple(
            _step(raw, at.key("steps").index(i), graph)
            for i, raw in enumerate(read.sequence(item.get("steps", []), at.key("steps")))
        )
        if expect != "flow" and steps:
            raise at.key("steps").fail(f"a request answered {expect} makes no flow to act on")
        request = Request(subject, company, amount, money, "suite-cart", cost_center=center)
        return FlowSpec(request, expect, steps)

    async def run(self, spec: FlowSpec, context: Context) -> Outcome:
        service, tenant, asked = context.service, context.tenant, spec.request

        async def evaluate(min_revision: int | None) -> PurchaseAnswer:
            return await service.decider.purchase(
                tenant,
                asked.subject,
                asked.company,
                asked.money,
                min_revision=min_revision,
                cost_center=asked.cost_center or None,
            )

        key = uuid.uuid4().hex  # a new flow for every case, however often the suite runs
        answer, view, _ = await service.flows.request(tenant, asked, key, evaluate)
        got = "flow" if view is not None else (answer.result.decision if answer else "deny")
        trace = [f"request by {asked.subject}: {got}"]
        if got != spec.expect:
            return Outcome(False, f"expected the request to answer {spec.expect}, got {got}")
        if view is None:
            return Outcome(True, got)
        flow_id = view.flow.id
        for n, step in enumerate(spec.steps):
            try:
                if step.act == "approve":
                    after = await service.flows.approve(tenant, flow_id, step.subject, None)
                elif step.act == "decline":
                    after = await service.flows.decline(
                        tenant, flow_id, step.subject, "declined by a test suite"
                    )
                else:
                    after = await service.flows.cancel(tenant, flow_id, step.subject)
                status: str = after.flow.status
                trace.append(f"{step.act} by {step.subject}: {status}")
            except (Forbidden, Conflict) as exc:
                status = "refused"
                trace.append(f"{step.act} by {step.subject}: refused ({exc.detail})")
            if status != step.expect:
                return Outcome(
                    False,
                    f"steps[{n}]: expected {step.expect} after {step.act} by {step.subject}, "
                    f"got {status}",
                    tuple(trace),
                )
        return Outcome(True, trace[-1], tuple(trace))


def _subject(value: Any, at: At, graph: Graph) -> str:
    subject = read.text(value, at)
    if subject not in graph.subjects:
        raise at.fail(f"the suite's graph has no subject {subject!r}")
    return subject


def _step(value: Any, at: At, graph: Graph) -> Step:
    body = read.mapping(value, at)
    acts = [a for a in ACTS if a in body]
    if len(acts) != 1:
        raise at.fail(f"a step names exactly one of {', '.join(ACTS)}")
    read.only(body, frozenset({acts[0], "expect"}), at, required=(acts[0], "expect"))
    subject = _subject(body[acts[0]], at.key(acts[0]), graph)
    expect = read.choice(body["expect"], STATUSES, at.key("expect"))
    return Step(acts[0], subject, expect)
