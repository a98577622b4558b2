"""`Purchases`: the spend side of the `Decider` (SPEC section 5), a base of
`decider.StoreDecider`: decide a purchase against the company's tree, its approval rules and
the spend totals its limits need, and commit or release an order's spend in the ledger.

Written, like the rest of the decider, against `entries.Entries` for the subject's entry;
`period_keys` memoises the spend-total keys of a day's periods.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from groupgate import tracing
from groupgate.engine import spend
from groupgate.engine.purchases import evaluate_purchase, wanted_groups
from groupgate.errors import NotFound
from groupgate.model import (
    EXCLUSIVE_ROLES,
    PREDEFINED_ROLES,
    Catalog,
    Money,
    PurchaseDecision,
    predefined_group_id,
)
from groupgate.store import codec, keys
from groupgate.store.contract import CommitAnswer, Order, PurchaseAnswer, Released
from groupgate.store.entries import Entries
from groupgate.store.guard import Guard
from groupgate.store.ledger import Ledger
from groupgate.store.ops import Graphs


class Purchases:
    """`purchase`, `commit` and `release` of the `Decider`; the attributes below are set by
    the decider that has this base."""

    catalog: Catalog
    entries: Entries
    graphs: Graphs
    ledger: Ledger
    guard: Guard
    #: Wall-clock time: the instant a purchase is decided or an order committed at.
    clock: Callable[[], float]

    async def purchase(
        self,
        tenant: str,
        subject: str,
        company: str,
        amount: Money,
        *,
        min_revision: int | None = None,
        cost_center: str | None = None,
    ) -> PurchaseAnswer:
        await self.entries.confirm(tenant, min_revision)
        entry, _, _ = await self.entries.entry(tenant, subject, min_revision)
        predefined = [predefined_group_id(company, role) for role in PREDEFINED_ROLES]
        now = self.clock()
        # The spend totals of every period of the company and the subject, and of the
        # company's budgets of the cost centre, read with the company: its limits are not
        # known before it is, and a second round trip would cost an evaluation with limits
        # half its speed (`benchmarks spend`).
        moment, zone = datetime.fromtimestamp(now, UTC), spend.zone(entry.settings.time_zone)
        # The subject's totals only when it has limits of its own (known from its entry).
        limited = entry.subject is not None and bool(entry.subject.spending_limits)
        day = moment.astimezone(zone).date()
        owner = subject if limited else None
        buckets, names = period_keys(tenant, company, owner, amount.currency, day, zone)
        hashed = (
            keys.spend_budgets(tenant, company, cost_center, amount.currency)
            if cost_center is not None
            else None
        )
        with tracing.span("store.purchase", tenant=tenant, company=company):
            snap, chain, members, spent, by_budget = await self.guard(
                self.graphs.purchase(
                    tenant,
                    company,
                    predefined,
                    self._policy_groups(company),
                    now,
                    list(names),
                    hashed,
                )
            )
        if not chain:
            raise NotFound(f"unknown company {company!r}")
        record, *ancestors = [codec.load_company(raw) for raw in chain]
        totals = {b: int(v) if v else 0 for b, v in zip(buckets, spent, strict=True)}
        totals.update(
            (("budget", company, b.id), int(by_budget.get(b.id, 0))) for b in record.budgets
        )
        roles: frozenset[str] = frozenset()
        groups: frozenset[str] = frozenset()
        if entry.subject is not None:
            prefix = company + "/"
            groups = frozenset(entry.subject.at(now).group_ids())
            roles = frozenset(
                gid[len(prefix) :]
                for gid in groups
                if gid.startswith(prefix) and gid[len(prefix) :] in EXCLUSIVE_ROLES
            )

        def run() -> PurchaseDecision:
            return evaluate_purchase(
                subject,
                record,
                roles,
                members,
                amount,
                ancestors=ancestors,
                policy_rules=self.catalog.approval_rules,
                cost_center=cost_center,
                groups=groups,
            )

        result = run()
        wanted = wanted_groups(result, record, members)
        if wanted:
            # The script reads every group the tiers may name; a group it could not know of
            # (none today) is read here, and the purchase decided again with its members.
            _, found = await self.guard(self.graphs.approving_members(tenant, sorted(wanted), now))
            members.update(found)
            result = run()
        if result.decision != "deny" and result.error is None:
            items = spend.lines(
                record, entry.subject, amount.currency, cost_center, moment, zone, limited_only=True
            )
            if items:
                # Every total the limited lines need was read above, with the graph; when it
                # could not be, the guard raised `StoreUnavailable`: never an allow.
                current = [totals[line.scope, line.owner, line.bucket] for line in items]
                try:
                    over = spend.passed(items, current, spend.to_units(amount.amount))
                except spend.AmountError:
                    over = items  # an amount the ledger cannot hold can never be committed
                rules = spend.rules_of(over)
                result = spend.require_admins(result, rules, subject, record, members)
        return PurchaseAnswer(result, snap.rev)

    async def commit(self, tenant: str, order: Order) -> CommitAnswer:
        entry, _, _ = await self.entries.entry(tenant, order.subject, None)
        if entry.subject is None:
            raise NotFound(f"unknown subject {order.subject!r}")
        snap = await self.guard(
            self.graphs.read(tenant, ("GET", keys.RELATIVE.company(order.company), ()))
        )
        if not snap.values[0]:
            raise NotFound(f"unknown company {order.company!r}")
        company = codec.load_company(snap.values[0])
        zone = spend.zone(entry.settings.time_zone)
        # The clock expiring grants follow (tests set the cache's).
        now = datetime.fromtimestamp(self.clock(), UTC)
        found = spend.lines(
            company, entry.subject, order.amount.currency, order.cost_center, now, zone
        )
        done = await self.guard(self.ledger.commit(tenant, order, found, int(now.timestamp())))
        if done.replayed:
            # The answer of the first commit: its lines are those of its time.
            then = datetime.fromtimestamp(done.time, UTC)
            found = spend.lines(
                company, entry.subject, order.amount.currency, order.cost_center, then, zone
            )
        totals = tuple(
            (line, total)
            for line, total in zip(found, done.totals, strict=False)
            if line.limit is not None
        )
        return CommitAnswer(totals, done.ledger_revision, snap.rev, done.approved, done.replayed)

    async def release(self, tenant: str, order_id: str) -> Released:
        now = int(self.clock())
        return await self.guard(self.ledger.release(tenant, order_id, now))

    def _policy_groups(self, company: str) -> list[str]:
        """The groups the tenant-wide rules' tiers name, in `company` (read with its own)."""
        out: dict[str, None] = {}
        for rule in self.catalog.approval_rules:
            for tier in rule.tiers:
                for names in tier:
                    for name in names:
                        gid = (
                            predefined_group_id(company, name) if name in PREDEFINED_ROLES else name
                        )
                        out[gid] = None
        return list(out)


@functools.lru_cache(maxsize=65_536)
def period_keys(
    tenant: str, company: str, subject: str | None, currency: str, day: date, zone: ZoneInfo
) -> tuple[tuple[tuple[str, str, str], ...], tuple[str, ...]]:
    """The period buckets (scope, owner, label) of `company` (and of `subject` unless None)
    on the local `day`, with their spend-total keys: memoised, an evaluation builds none."""
    moment = datetime(day.year, day.month, day.day, 12, tzinfo=zone)
    owners = [("company", company)] + ([("subject", subject)] if subject is not None else [])
    buckets = tuple(
        (scope, owner, window.label)
        for scope, owner in owners
        for window in spend.windows(moment, zone)
    )
    return buckets, tuple(keys.spend_total(tenant, *bucket, currency) for bucket in buckets)
