"""Approval flows in Redis (SPEC section 5, issue 13 item 4).

A flow is a HASH at `keys.flow(t, id)` (fields below), indexed for the sweep, the company's
approvers and the requester (keys.py). Every change is one script (`flow_scripts`) that
checks the flow is still PENDING and not expired, applies the change, bumps the tenant's
revision and appends the event, so a change and its event never part.

Eligibility is decided here in Python, by `engine.eligibility`, against the graph read at a
revision R together with the flow; the change's script refuses when the tenant is no longer
at R (an approver removed a millisecond before, another approval of the same tier, any
write), and the caller reads again, at most `attempts` times. Concurrent approvals of one
tier therefore advance it once.

Fields (strings): status, requester, company, amount (as sent), currency, cart_id,
cart_hash, cost_center, used_by ('' until a commit consumes the flow: its order id), rule,
tiers (JSON [{rule, requires}]), tier (index of the tier being approved), approvals (JSON
[{tier, slot, subject, via, time, comment}]), created_ms, created_at, expires_ms,
expires_at, comment, idempotency_key, request_hash, and once it ended ended_ms, ended_at,
ended_by, reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

import orjson
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from groupgate.engine import delegations as delegation_codec
from groupgate.engine.approvers import approves_through
from groupgate.engine.delegations import format_time
from groupgate.engine.eligibility import CompanyView, Seat, eligible, seat, wanted_groups
from groupgate.engine.tiers import tier_complete
from groupgate.errors import Conflict, Forbidden, NotFound, NotReplicated
from groupgate.model import (
    PREDEFINED_ROLES,
    Approval,
    Decision,
    Delegation,
    Flow,
    FlowApproval,
    FlowStatus,
    Membership,
    Money,
    Tier,
)
from groupgate.store import codec, flow_codec, flow_scripts, keys
from groupgate.store.contract import FlowView, PurchaseAnswer
from groupgate.store.events import EventLog
from groupgate.store.guard import Guard, guarded
from groupgate.store.ops import Client, Graphs, Ops, pairs, text

Evaluate = Callable[[int | None], Awaitable[PurchaseAnswer]]
P = ParamSpec("P")
R = TypeVar("R")
#: Every flow id: `ap-`, the creation time in ms (12 hex digits), 10 random hex digits.
_FLOW_ID = re.compile(r"ap-[0-9a-f]{22}")


def new_flow_id(now_ms: int) -> str:
    return f"ap-{now_ms:012x}{secrets.token_hex(5)}"


def is_flow_id(text: str) -> bool:
    """Could `text` name a flow? Flows get their ids from `new_flow_id` only, so an id of
    another form names none, and a check about it needs no look-up in the store."""
    return len(text) == 25 and _FLOW_ID.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Request:
    """What a requester asks approval for (validated by the API)."""

    subject: str
    company: str
    amount: str
    money: Money
    cart_id: str
    cart_hash: str = ""
    cost_center: str = ""
    comment: str = ""

    def fingerprint(self) -> str:
        """A digest of the request, to refuse an Idempotency-Key reused for another one."""
        parts = [self.subject, self.company, self.amount, self.money.currency, self.cart_id]
        parts += [self.cart_hash, self.cost_center, self.comment]
        return hashlib.sha256(orjson.dumps(parts)).hexdigest()


@dataclass(frozen=True, slots=True)
class _Context:
    """A flow and what eligibility needs of the graph, read at one revision."""

    rev: int
    flow: Flow
    view: CompanyView
    own: tuple[Membership, ...]
    lenders: dict[str, tuple[Membership, ...]]


class Flows:
    """Approval flows of every tenant of one store."""

    def __init__(
        self,
        client: Client,
        graphs: Graphs,
        events: EventLog,
        guard: Guard,
        *,
        ttl: float = 7 * 24 * 3600.0,
        attempts: int = 20,
        scan_limit: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.graphs = graphs
        self.events = events
        #: Store errors fail closed (`StoreUnavailable`), counted with the service's.
        self.guard = guard
        self.ttl = ttl
        self.attempts = attempts
        self.scan_limit = scan_limit
        self.clock = clock
        self._create = client.register_script(flow_scripts.CREATE)
        self._transition = client.register_script(flow_scripts.TRANSITION)
        self._context = client.register_script(flow_scripts.CONTEXT)
        self._members = client.register_script(flow_scripts.MEMBERS)
        self._groups = codec.GroupMemo(1000)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ------------------------------------------------------------------ create

    @guarded
    async def request(
        self, tenant: str, request: Request, idempotency_key: str, evaluate: Evaluate
    ) -> tuple[PurchaseAnswer | None, FlowView | None, bool]:
        """Evaluate the purchase and, when it needs approval, create its flow.

        Returns (the evaluation, the flow, created): an existing flow of the same
        Idempotency-Key comes back with `created` False and no evaluation; an `allow` or
        `deny` comes back without a flow.
        """
        idem = keys.flow_key(tenant, request.subject, idempotency_key)
        min_rev: int | None = None
        for attempt in range(self.attempts):
            found = await self.client.get(idem)
            if found:
                return None, await self._existing(tenant, text(found), request), False
            answer = await evaluate(min_rev)
            if answer.result.decision != "approval_required":
                return answer, None, False
            flow = self._new_flow(request, answer)
            args = self._create_args(tenant, flow, request, idem, idempotency_key, answer)
            result, acked, wanted = await self._write(tenant, self._create, args)
            outcome = text(result[0])
            if outcome == "existing":
                return None, await self._existing(tenant, text(result[1]), request), False
            if outcome == "created":
                await self._published(tenant, int(result[1]), text(args[9]))
                self._replicated(int(result[1]), acked, wanted)
                return answer, await self.get(tenant, flow.id), True
            min_rev = answer.revision + 1
            await _backoff(attempt)
        raise Conflict("too many concurrent writes to this tenant; try again")

    def _new_flow(self, request: Request, answer: PurchaseAnswer) -> Flow:
        now = self.now_ms()
        return Flow(
            id=new_flow_id(now),
            status="PENDING",
            requester=request.subject,
            company=request.company,
            amount=request.amount,
            currency=request.money.currency,
            cart_id=request.cart_id,
            cart_hash=request.cart_hash,
            cost_center=request.cost_center,
            used_by="",
            rule=answer.result.rule,
            tiers=_tiers(answer),
            tier=0,
            approvals=(),
            created=now,
            expires=now + int(self.ttl * 1000),
            comment=request.comment,
        )

    def _create_args(
        self,
        tenant: str,
        flow: Flow,
        request: Request,
        idem: str,
        idempotency_key: str,
        answer: PurchaseAnswer,
    ) -> list[Any]:
        fields = {
            "status": flow.status,
            "requester": flow.requester,
            "company": flow.company,
            "amount": flow.amount,
            "currency": flow.currency,
            "cart_id": flow.cart_id,
            "cart_hash": flow.cart_hash,
            "cost_center": flow.cost_center,
            "used_by": "",
            "rule": flow.rule,
            "tiers": orjson.dumps([t.as_json() for t in flow.tiers]),
            "tier": 0,
            "approvals": b"[]",
            "created_ms": flow.created,
            "created_at": format_time(flow.created),
            "expires_ms": flow.expires,
            "expires_at": format_time(flow.expires),
            "comment": flow.comment,
            "idempotency_key": idempotency_key,
            "request_hash": request.fingerprint(),
        }
        event = self.events.parts(
            tenant, "approval.requested", {"approval": flow_codec.summary(flow)}, flow.created
        )
        return [
            answer.revision,
            keys.flow(tenant, flow.id),
            idem,
            # The key outlives the flow's expiry, so a retry after it still finds the flow.
            int(self.ttl * 1000) * 2,
            keys.flows_pending(tenant),
            keys.flows_of_company(tenant, flow.company),
            keys.flows_of_requester(tenant, flow.requester),
            flow.id,
            flow.expires,
            secrets.token_hex(8),
            *event,
            *[x for kv in fields.items() for x in kv],
        ]

    async def _existing(self, tenant: str, flow_id: str, request: Request) -> FlowView:
        raw = await self.client.hget(keys.flow(tenant, flow_id), "request_hash")
        if raw is not None and text(raw) != request.fingerprint():
            raise Conflict(
                "this Idempotency-Key was used for another request of this subject "
                f"(flow {flow_id}); use a new key"
            )
        return await self.get(tenant, flow_id)

    # ------------------------------------------------------------------ reads

    async def load(self, tenant: str, flow_id: str) -> Flow | None:
        """The flow as stored (no expiry applied), or None."""
        raw = await self.client.hgetall(keys.flow(tenant, flow_id))
        return flow_codec.load_flow(flow_id, pairs(flow_codec.flat(raw))) if raw else None

    @guarded
    async def get(self, tenant: str, flow_id: str) -> FlowView:
        """The flow with who may act on each open tier now; a flow found past its expiry
        is expired first."""
        for _ in range(self.attempts):
            ctx = await self._read(tenant, flow_id, None)
            if ctx.flow.status == "PENDING" and self.now_ms() >= ctx.flow.expires:
                await self.expire(tenant, flow_id)
                continue
            view = await self._view(tenant, ctx)
            if view is not None:
                return view
        raise Conflict("too many concurrent writes to this tenant; try again")

    async def _view(self, tenant: str, ctx: _Context) -> FlowView | None:
        """The flow's answer with its eligible approvers, or None when the graph moved."""
        flow = ctx.flow
        if flow.status != "PENDING":
            return _ended(flow, ctx.rev)
        later = range(flow.tier, len(flow.tiers))
        groups = sorted(set().union(*(wanted_groups(flow, i, ctx.view) for i in later)))
        members, _, rev = await self._group_members(tenant, groups, [])
        if rev != ctx.rev:
            return None
        approving = {g: frozenset(s for s, link in found.items()) for g, found in members.items()}
        lists = tuple(
            eligible(flow, i, ctx.view, approving) if i >= flow.tier else ((), ())
            for i in range(len(flow.tiers))
        )
        return FlowView(flow, lists, ctx.rev)

    async def _read(self, tenant: str, flow_id: str, subject: str | None) -> _Context:
        """The flow and its company's view of the graph, at one revision; with `subject`,
        its links and the links of whoever delegates to it in the company."""
        rel = keys.RELATIVE
        for _ in range(self.attempts):
            raw = await self._context(
                keys=[keys.meta(tenant)],
                args=[
                    keys.tenant_prefix(tenant),
                    keys.flow(tenant, flow_id),
                    rel.company(""),
                    rel.delegations(),
                    *([rel.links(subject)] if subject else []),
                ],
            )
            if not raw or raw[0] is None:
                raise NotFound(f"unknown tenant {tenant!r}")
            rev = int(raw[0] or 0)
            if not raw[3]:
                raise NotFound(f"unknown approval flow {flow_id!r}")
            flow = flow_codec.load_flow(flow_id, pairs(raw[3]))
            running = self._running(raw[5], flow.company)
            lenders = sorted({d.source for d in running if d.to == subject}) if subject else []
            approval_group = codec.load_company(raw[4]).approval_group if raw[4] else None
            ends = sorted({e for d in running for e in (d.source, d.to)} | set(lenders))
            groups = [approval_group] if approval_group else []
            members: dict[str, dict[str, str]] = {}
            links: dict[str, dict[str, str]] = {}
            if groups or ends:
                members, links, mrev = await self._group_members(tenant, groups, ends)
                if mrev != rev:
                    continue
            active = approval_group if approval_group and members.get(approval_group) else None
            customers = frozenset(s for s in ends if _customer_of(links.get(s, {}), flow.company))
            view = CompanyView(flow.company, active, running, customers)
            own = flow_codec.load_links(pairs(raw[6])) if subject else ()
            lent = {s: flow_codec.load_links(links.get(s, {})) for s in lenders}
            return _Context(rev, flow, view, own, lent)
        raise Conflict("too many concurrent writes to this tenant; try again")

    async def _group_members(
        self, tenant: str, groups: list[str], subjects: list[str]
    ) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]], int]:
        """For each group, its members who approve through it (member -> link); for each
        subject, its links; and the revision they were read at."""
        rel = keys.RELATIVE
        raw = await self._members(
            keys=[keys.meta(tenant)],
            args=[
                keys.tenant_prefix(tenant),
                rel.members(""),
                rel.links(""),
                len(groups),
                *groups,
                *subjects,
            ],
        )
        if not raw or raw[0] is None:
            raise NotFound(f"unknown tenant {tenant!r}")
        members: dict[str, dict[str, str]] = {}
        for group, flat in zip(groups, raw[1 : 1 + len(groups)], strict=True):
            found = pairs(flat)
            members[group] = {
                s: link
                for s, link in found.items()
                if approves_through(codec.load_link(group, link))
            }
        links = {s: pairs(flat) for s, flat in zip(subjects, raw[1 + len(groups) :], strict=True)}
        return members, links, int(raw[0] or 0)

    def _running(self, flat: list[Any], company: str) -> tuple[Delegation, ...]:
        now = self.now_ms()
        found = (delegation_codec.load(orjson.loads(v)) for v in pairs(flat).values())
        return tuple(
            sorted(
                (d for d in found if d.company == company and d.running(now)),
                key=lambda d: d.id,
            )
        )

    # ------------------------------------------------------------------ transitions

    @guarded
    async def approve(
        self, tenant: str, flow_id: str, subject: str, comment: str | None
    ) -> FlowView:
        """Approve the flow's current tier as `subject`; 403 unless eligible now."""
        for attempt in range(self.attempts):
            ctx = await self._acting(tenant, flow_id, subject)
            place = self._seat_or_refuse(ctx, subject, "approve")
            flow = ctx.flow
            now = self.now_ms()
            given = FlowApproval(flow.tier, place.slot, subject, now, place.via, comment)
            approvals = (*flow.approvals, given)
            tier = flow.tiers[flow.tier]
            done_tier = tier_complete(
                tier,
                [Approval(a.subject, a.slot) for a in approvals if a.tier == flow.tier],
            )
            next_tier = flow.tier + 1 if done_tier else flow.tier
            status: FlowStatus = "APPROVED" if next_tier >= len(flow.tiers) else "PENDING"
            after = replace(flow, status=status, tier=min(next_tier, len(flow.tiers) - 1))
            kind = "approval.approved" if status == "APPROVED" else "approval.progressed"
            entity = flow_codec.summary(after) | {
                "by": subject,
                "via": place.via,
                "tier": flow.tier,
            }
            fields: list[Any] = [
                "tier",
                after.tier,
                "approvals",
                flow_codec.dump_approvals(approvals),
            ]
            if status == "APPROVED":
                fields += ["ended_ms", now, "ended_at", format_time(now), "ended_by", subject]
            outcome = await self._change(
                tenant, after, "approve", ctx.rev, subject, flow.tier, status, kind, entity, fields
            )
            if outcome is not None and status == "APPROVED":
                return _ended(
                    replace(after, approvals=approvals, ended=now, ended_by=subject), outcome
                )
            if outcome is not None:
                return await self.get(tenant, flow_id)
            await _backoff(attempt)
        raise Conflict("too many concurrent changes to this tenant; try again")

    @guarded
    async def decline(self, tenant: str, flow_id: str, subject: str, reason: str) -> FlowView:
        """Decline the flow as an approver eligible for its current tier: DECLINED."""
        for attempt in range(self.attempts):
            ctx = await self._acting(tenant, flow_id, subject)
            self._seat_or_refuse(ctx, subject, "decline")
            now = self.now_ms()
            after = replace(ctx.flow, status="DECLINED")
            entity = flow_codec.summary(after) | {"by": subject, "reason": reason}
            fields = ["ended_ms", now, "ended_at", format_time(now), "ended_by", subject]
            fields += ["reason", reason]
            outcome = await self._change(
                tenant,
                after,
                "decline",
                ctx.rev,
                subject,
                ctx.flow.tier,
                "DECLINED",
                "approval.declined",
                entity,
                fields,
            )
            if outcome is not None:
                return _ended(replace(after, ended=now, ended_by=subject, reason=reason), outcome)
            await _backoff(attempt)
        raise Conflict("too many concurrent changes to this tenant; try again")

    @guarded
    async def cancel(self, tenant: str, flow_id: str, subject: str) -> FlowView:
        """Withdraw the flow as its requester: CLOSED."""
        flow = await self.load(tenant, flow_id)
        if flow is None:
            raise NotFound(f"unknown approval flow {flow_id!r}")
        if flow.requester != subject:
            raise Forbidden(f"only the requester ({flow.requester}) may cancel {flow_id}")
        now = self.now_ms()
        after = replace(flow, status="CLOSED")
        fields = ["ended_ms", now, "ended_at", format_time(now), "ended_by", subject]
        entity = flow_codec.summary(after) | {"by": subject}
        new_rev = await self._change(
            tenant,
            after,
            "cancel",
            None,
            subject,
            None,
            "CLOSED",
            "approval.closed",
            entity,
            fields,
        )
        if new_rev is None:  # a cancel checks no revision: the script never says "conflict"
            raise Conflict("the flow changed meanwhile; try again")
        return _ended(replace(after, ended=now, ended_by=subject), new_rev)

    async def expire(self, tenant: str, flow_id: str) -> bool:
        """Expire the flow if it is PENDING past its expiry; True when this call did."""
        flow = await self.load(tenant, flow_id)
        if flow is None or flow.status != "PENDING":
            return False
        result = await self._run(
            tenant,
            replace(flow, status="EXPIRED"),
            "expire",
            None,
            "",
            None,
            "EXPIRED",
            "approval.expired",
            {},
            [],
        )
        return result[0] == "expired"

    @guarded
    async def sweep(self, tenant: str, batch: int = 100) -> int:
        """Expire the tenant's pending flows past their expiry; return how many."""
        count = 0
        while True:
            due = await self.client.zrangebyscore(
                keys.flows_pending(tenant), "-inf", self.now_ms(), start=0, num=batch
            )
            if not due:
                return count
            for raw in due:
                flow_id = text(raw)
                if await self.expire(tenant, flow_id):
                    count += 1
                elif await self.load(tenant, flow_id) is None:
                    await self.client.zrem(keys.flows_pending(tenant), flow_id)
            if len(due) < batch:
                return count

    async def _acting(self, tenant: str, flow_id: str, subject: str) -> _Context:
        ctx = await self._read(tenant, flow_id, subject)
        flow = ctx.flow
        if flow.status == "PENDING" and self.now_ms() >= flow.expires:
            await self.expire(tenant, flow_id)
            raise Conflict(f"approval flow {flow_id} expired at {format_time(flow.expires)}")
        if flow.status != "PENDING":
            raise Conflict(f"approval flow {flow_id} is {flow.status}: only a PENDING flow changes")
        return ctx

    def _seat_or_refuse(self, ctx: _Context, subject: str, verb: str) -> Seat:
        found = seat(ctx.flow, subject, ctx.own, ctx.view, ctx.lenders)
        if found is None:
            raise Forbidden(f"{subject} may not {verb} {ctx.flow.id} now: {why_not(ctx, subject)}")
        return found

    async def _change(
        self,
        tenant: str,
        after: Flow,
        action: str,
        rev: int | None,
        subject: str,
        tier: int | None,
        status: str,
        kind: str,
        entity: dict[str, Any],
        fields: list[Any],
    ) -> int | None:
        """Run one transition; the new revision when applied, None when the tenant moved
        (read again). A flow that expired or ended meanwhile is a 409, a cancel by another
        subject a 403."""
        outcome, new_rev = await self._run(
            tenant, after, action, rev, subject, tier, status, kind, entity, fields
        )
        if outcome == "done":
            return new_rev
        if outcome == "conflict":
            return None
        if outcome == "expired":
            raise Conflict(f"approval flow {after.id} expired at {format_time(after.expires)}")
        if outcome == "missing":
            raise NotFound(f"unknown approval flow {after.id!r}")
        if outcome == "not_requester":
            raise Forbidden(f"only the requester ({after.requester}) may cancel {after.id}")
        raise Conflict(f"approval flow {after.id} is {outcome}: only a PENDING flow changes")

    async def _run(
        self,
        tenant: str,
        after: Flow,
        action: str,
        rev: int | None,
        subject: str,
        tier: int | None,
        status: str,
        kind: str,
        entity: dict[str, Any],
        fields: list[Any],
    ) -> tuple[str, int]:
        """Call the transition script; return its outcome ('done', 'expired', 'conflict',
        'missing', 'not_requester', 'pending', or the flow's status when not PENDING) and
        the new revision (0 when nothing changed)."""
        now = self.now_ms()
        stamp = secrets.token_hex(8)
        expired = replace(after, status="EXPIRED")
        expiry = self.events.parts(
            tenant, "approval.expired", {"approval": flow_codec.summary(expired)}, now
        )
        change = self.events.parts(
            tenant, kind, {"approval": entity or flow_codec.summary(after)}, now
        )
        result, acked, wanted = await self._write(
            tenant,
            self._transition,
            [
                keys.flow(tenant, after.id),
                action,
                "" if rev is None else rev,
                now,
                stamp,
                keys.flows_pending(tenant),
                keys.flows_of_company(tenant, after.company),
                after.id,
                subject,
                "" if tier is None else tier,
                status,
                *expiry,
                format_time(now),
                *change,
                *fields,
            ],
        )
        outcome = text(result[0])
        if outcome in ("done", "expired"):
            await self._published(tenant, int(result[1]), stamp)
            self._replicated(int(result[1]), acked, wanted)
            return outcome, int(result[1])
        if outcome == "status":
            return text(result[1]), 0
        return outcome, 0

    async def _write(
        self, tenant: str, script: AsyncScript, args: list[Any]
    ) -> tuple[Any, int, int]:
        """Run a flow script of the tenant, waiting for the replicas as graph writes do."""

        async def run(client: Redis | None) -> Any:
            return await script(keys=[keys.meta(tenant)], args=args, client=client)

        return await self.graphs.replication.write(tenant, run)

    def _replicated(self, rev: int, acked: int, wanted: int) -> None:
        """A flow write fewer replicas acknowledged than asked is not acknowledged."""
        if acked < wanted:
            raise NotReplicated(rev, acked, wanted, self.graphs.replication.wait_ms)

    async def _published(self, tenant: str, rev: int, stamp: str) -> None:
        """Tell sidecars the revision moved (nothing cached changes: no subject, no group)."""
        await self.graphs.publish(tenant, rev, stamp, Ops())

    # ------------------------------------------------------------------ questions

    @guarded
    async def may_approve(
        self, tenant: str, flow_id: str, subject: str
    ) -> tuple[Decision, int] | None:
        """May `subject` approve the flow now? None when no such flow (the check then answers
        for the company, as without an id)."""
        if not is_flow_id(flow_id) or await self.client.exists(keys.flow(tenant, flow_id)) == 0:
            return None
        ctx = await self._read(tenant, flow_id, subject)
        flow = ctx.flow
        if flow.status == "PENDING" and self.now_ms() >= flow.expires:
            return Decision(False, f"approval flow {flow_id} expired"), ctx.rev
        if flow.status != "PENDING":
            return Decision(False, f"approval flow {flow_id} is {flow.status}"), ctx.rev
        found = seat(flow, subject, ctx.own, ctx.view, ctx.lenders)
        if found is None:
            return Decision(False, why_not(ctx, subject)), ctx.rev
        via = f" (delegated by {found.via})" if found.via else ""
        reason = f"eligible for list {found.slot + 1} of tier {flow.tier + 1} of {flow_id}{via}"
        return Decision(True, reason), ctx.rev

    @guarded
    async def usable(
        self,
        tenant: str,
        flow_id: str,
        subject: str,
        company: str,
        money: Money,
        cart_hash: str | None,
    ) -> str | None:
        """Why the flow does not cover this purchase, or None when it does (SPEC section 5,
        closing the loop)."""
        flow = await self.load(tenant, flow_id)
        if flow is None:
            return f"unknown approval flow {flow_id!r}"
        if flow.status == "PENDING" and self.now_ms() >= flow.expires:
            await self.expire(tenant, flow_id)
            return f"approval flow {flow_id} expired"
        if flow.status != "APPROVED":
            return f"approval flow {flow_id} is {flow.status}, not APPROVED"
        if flow.requester != subject:
            return f"approval flow {flow_id} was requested by another subject"
        if flow.company != company:
            return f"approval flow {flow_id} is for company {flow.company}"
        if flow.currency != money.currency:
            return f"approval flow {flow_id} is in {flow.currency}"
        if money.amount > Decimal(flow.amount):
            return f"the amount is over the approved {flow.amount} {flow.currency}"
        if cart_hash is not None and cart_hash != flow.cart_hash:
            return "the cart changed since it was approved (cart hash differs)"
        if flow.used_by:
            return f"approval flow {flow_id} was used by order {flow.used_by}"
        return None

    # ------------------------------------------------------------------ lists

    @guarded
    async def requested(
        self, tenant: str, requester: str, status: str | None, after: str | None, limit: int
    ) -> tuple[list[Flow], str | None]:
        """The flows `requester` asked for, oldest first, optionally of one status."""
        start = "(" + after if after else "-"
        ids = await self.client.zrangebylex(
            keys.flows_of_requester(tenant, requester), start, "+", start=0, num=self.scan_limit
        )
        out: list[Flow] = []
        scanned = 0
        for raw in ids:
            scanned += 1
            flow = await self._current(tenant, text(raw))
            if flow is not None and (status is None or flow.status == status):
                out.append(flow)
                if len(out) == limit:
                    break
        more = scanned < len(ids)
        return out, (out[-1].id if more and out else None)

    @guarded
    async def inbox(
        self, tenant: str, approver: str, after: str | None, limit: int
    ) -> tuple[list[Flow], str | None, int]:
        """The pending flows `approver` may act on now, oldest first."""
        rel = keys.RELATIVE
        snap = await self.graphs.read(
            tenant, ("HGETALL", rel.links(approver), ()), ("HGETALL", rel.delegations(), ())
        )
        own = pairs(snap.values[0])
        custom = sorted(g for g in own if "/" not in g)
        companies = {c for g in own if (c := _predefined_company(g))}
        if custom:
            found = await self.graphs.read(tenant, *[("GET", rel.group(g), ()) for g in custom])
            for raw in found.values:
                if raw:
                    group = self._groups.load(raw)
                    if group.company:
                        companies.add(group.company)
        now = self.now_ms()
        for value in pairs(snap.values[1]).values():
            delegation = delegation_codec.load(orjson.loads(value))
            if delegation.to == approver and delegation.running(now):
                companies.add(delegation.company)
        start = "(" + after if after else "-"
        ids: set[str] = set()
        for company in companies:
            found_ids = await self.client.zrangebylex(
                keys.flows_of_company(tenant, company), start, "+", start=0, num=self.scan_limit
            )
            ids.update(text(x) for x in found_ids)
        ordered = sorted(ids)
        out: list[Flow] = []
        scanned = 0
        for flow_id in ordered:
            scanned += 1
            decided = await self.may_approve(tenant, flow_id, approver)
            if decided is not None and decided[0].allow:
                flow = await self.load(tenant, flow_id)
                if flow is not None:
                    out.append(flow)
            if len(out) == limit:
                break
        more = scanned < len(ordered)
        return out, (out[-1].id if more and out else None), snap.rev

    async def _current(self, tenant: str, flow_id: str) -> Flow | None:
        """The flow, expired first when it is PENDING past its expiry."""
        flow = await self.load(tenant, flow_id)
        if flow is not None and flow.status == "PENDING" and self.now_ms() >= flow.expires:
            await self.expire(tenant, flow_id)
            flow = await self.load(tenant, flow_id)
        return flow


def _tiers(answer: PurchaseAnswer) -> tuple[Tier, ...]:
    """The decision's tiers; a decision that names approvers but no tier (a rule that only
    lists groups) is one tier of one list: any of its approver groups, else an admin."""
    result = answer.result
    if result.tiers:
        return result.tiers
    return (Tier(result.rule, (tuple(result.approver_groups) or ("admin",),)),)


async def _backoff(attempt: int) -> None:
    """A short random pause before reading again after losing a race (as graph writes do)."""
    await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))


def _ended(flow: Flow, revision: int) -> FlowView:
    """The answer for a flow that just ended: nobody may act on it any more."""
    return FlowView(flow, tuple(((), ()) for _ in flow.tiers), revision)


def why_not(ctx: _Context, subject: str) -> str:
    """Why `subject` may not act on the flow's current tier now."""
    flow = ctx.flow
    if subject == flow.requester:
        return "nobody approves their own purchase"
    if subject in flow.persons_of(flow.tier):
        return f"{subject} already acted in tier {flow.tier + 1}"
    groups = sorted(wanted_groups(flow, flow.tier, ctx.view))
    return (
        f"not an approving member of {', '.join(groups) or 'any group'} in {flow.company}, "
        "nor a running delegate of one"
    )


def _predefined_company(group_id: str) -> str | None:
    owner, sep, role = group_id.rpartition("/")
    return owner if sep and role in PREDEFINED_ROLES else None


def _customer_of(links: Mapping[str, str], company: str) -> bool:
    """Is a subject with these links a customer of `company` (in one of its predefined
    groups: every customer of a company is, at least its Contact)?"""
    return any(_predefined_company(g) == company for g in links)
