"""Spending limits and budgets (SPEC section 5): periods, ledger lines and the limit check.

Pure: no I/O, no clock. The store (`store/ledger.py`) asks which totals a purchase counts
toward (`lines`), reads or moves those totals atomically, and the engine says which limits a
purchase would pass (`passed`) and what that requires (`require_admins`).

Money on the ledger is integer minor units at a fixed scale, `SCALE` (1/10,000 of the
currency unit), so totals add and compare exactly, in Python and in the Lua script alike
(Lua numbers are doubles: exact for integers up to 2**53). `to_units` refuses an amount
with more than four decimals that are not zero, or one of `MAX_UNITS` or more. The scale is
part of the stored format, not a tunable: changing it would change the meaning of every
total already stored.

Periods follow the tenant's time zone (`Settings.time_zone`): a day runs from local midnight
to local midnight (23 or 25 hours across a DST change), a week is an ISO week starting on
Monday, months, quarters and years are calendar ones. Each period's bucket is named by its
label (`day:2027-03-28`, `week:2027-W12`, `month:2027-03`, `quarter:2027-Q1`, `year:2027`)
and expires one period length after it ends (`Line.expires_at`), so old buckets clean
themselves up while a late release of an order can still find the period it counted in.

What counts where:
- every purchase counts toward its company's and its subject's total of every period, in its
  currency, whether or not a limit exists (a limit added mid-period sees the spend so far);
- a company's budget counts purchases of its cost centre, in its currency, on the days from
  `start` to `end` (local), and only while it exists;
- a limit applies to purchases in its own currency (no conversion); a company's limits cover
  the company's own purchases, a subject's its purchases for any company of the tenant.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from groupgate.engine.tiers import requirement_groups
from groupgate.model import PERIODS, Company, Eligible, Money, PurchaseDecision, Subject, Tier

#: Ledger units per currency unit: amounts are stored as integers of 1/10,000.
SCALE = 10_000
#: Every amount and total stays below this (Lua compares doubles, exact up to 2**53).
MAX_UNITS = 2**53
PERIOD_RULE = "period_limit_exceeded"
BUDGET_RULE = "budget_exceeded"
#: Who approves a purchase over a period limit or a budget (SPEC section 5).
APPROVERS: tuple[str, ...] = ("admin",)

Scope = Literal["company", "subject", "budget"]


class AmountError(ValueError):
    """An amount the ledger cannot hold exactly."""


def to_units(amount: Decimal) -> int:
    """`amount` in ledger units; `AmountError` when not exact at `SCALE` or too large."""
    scaled = amount * SCALE
    if scaled != scaled.to_integral_value():
        raise AmountError(f"{amount:f} has more than 4 decimals that are not zero")
    units = int(scaled)
    if not 0 <= units < MAX_UNITS:
        raise AmountError(f"{amount:f} is too large for the spend ledger")
    return units


def from_units(units: int) -> str:
    """A decimal string of `units`, with at least two decimals (`12.50`, `0.1234`)."""
    value = Decimal(units).scaleb(-4)
    if value == value.quantize(Decimal("0.01")):
        value = value.quantize(Decimal("0.01"))
    else:
        value = value.normalize()
    return f"{value:f}"


# --------------------------------------------------------------------------- periods


@dataclass(frozen=True, slots=True)
class Window:
    """One period bucket: `[start, end)` (instants in UTC; the boundaries are local midnights
    of the tenant's time zone), named by `label`."""

    period: str
    label: str
    start: datetime
    end: datetime


def zone(name: str) -> ZoneInfo:
    """The time zone named `name` (validated when the settings were written)."""
    return ZoneInfo(name)


def window(period: str, now: datetime, tz: ZoneInfo) -> Window:
    """The bucket of `period` (one of `PERIODS`) holding the aware instant `now`."""
    return _window(period, now.astimezone(tz).date(), tz)


def windows(now: datetime, tz: ZoneInfo) -> list[Window]:
    """The bucket of every period holding `now`, in `PERIODS` order."""
    local = now.astimezone(tz).date()
    return [_window(period, local, tz) for period in PERIODS]


@functools.lru_cache(maxsize=4096)
def _window(period: str, local: date, tz: ZoneInfo) -> Window:
    """The bucket of `period` holding the local day `local` (memoised: every purchase of a
    day in a zone shares its buckets, and building one costs tens of microseconds)."""
    if period == "day":
        first, after = local, local + timedelta(days=1)
        label = local.isoformat()
    elif period == "week":
        first = local - timedelta(days=local.weekday())
        after = first + timedelta(days=7)
        year, week, _ = local.isocalendar()
        label = f"{year}-W{week:02d}"
    elif period == "month":
        first = local.replace(day=1)
        after = _add_months(first, 1)
        label = f"{local.year}-{local.month:02d}"
    elif period == "quarter":
        quarter = (local.month - 1) // 3
        first = date(local.year, 3 * quarter + 1, 1)
        after = _add_months(first, 3)
        label = f"{local.year}-Q{quarter + 1}"
    elif period == "year":
        first, after = date(local.year, 1, 1), date(local.year + 1, 1, 1)
        label = str(local.year)
    else:
        raise ValueError(f"unknown period {period!r}")
    return Window(period, f"{period}:{label}", _midnight(first, tz), _midnight(after, tz))


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@functools.lru_cache(maxsize=4096)
def _midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of `day` in `tz`, in UTC (so that differences are real durations:
    Python subtracts two datetimes of one zone by wall time). Where a DST change skips local
    midnight (it does in some zones), the wall time 00:00 does not exist; it is read with the
    offset before the change, which lands on the first real instant after it."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


# --------------------------------------------------------------------------- ledger lines


@dataclass(frozen=True, slots=True)
class Line:
    """One total a purchase counts toward: `scope`, `owner` (company or subject id), `bucket`
    (a period label or a budget id) and `currency`; `limit` in units when one applies."""

    scope: Scope
    owner: str
    bucket: str
    currency: str
    expires_at: int
    limit: int | None = None
    #: What a total past `limit` requires (`PERIOD_RULE`, `BUDGET_RULE`).
    rule: str = PERIOD_RULE
    #: How the limit was written, for answers: `{"amount", "currency"}`.
    amount: Money | None = None
    #: A budget's cost centre (its totals are kept per company, cost centre and currency).
    cost_center: str | None = None

    def as_json(self, total: int) -> dict[str, object]:
        """The line in an answer, with its total `spent` (in ledger units)."""
        body: dict[str, object] = {"scope": self.scope, "id": self.owner}
        if self.scope == "budget":
            body["budget"] = self.bucket
        else:
            period, _, label = self.bucket.partition(":")
            body["period"] = period
            body["bucket"] = label
        body["spent"] = {"amount": from_units(total), "currency": self.currency}
        body["limit"] = self.amount.as_json() if self.amount is not None else None
        return body


def describe(line: Line) -> str:
    """`the month limit of company c-1` and the like, for messages."""
    if line.scope == "budget":
        return f"budget {line.bucket} of company {line.owner}"
    period = line.bucket.partition(":")[0]
    return f"the {period} limit of {line.scope} {line.owner}"


def lines(
    company: Company,
    subject: Subject | None,
    currency: str,
    cost_center: str | None,
    now: datetime,
    tz: ZoneInfo,
    *,
    limited_only: bool = False,
) -> list[Line]:
    """Every total a purchase at `now` counts toward (see the module docstring), with the
    limits that apply to it; with `limited_only`, only those that carry a limit (what an
    evaluation reads). Owners in order: the company's periods, the subject's periods, then
    the company's budgets."""
    out: list[Line] = []
    local = now.astimezone(tz).date()
    owners: list[tuple[Scope, str, list[tuple[str, Money]]]] = [
        ("company", company.id, [(lim.period, lim.limit) for lim in company.spending_limits])
    ]
    if subject is not None:
        limits = [(lim.period, lim.limit) for lim in subject.spending_limits]
        owners.append(("subject", subject.id, limits))
    for scope, owner, limits in owners:
        own = {period: money for period, money in limits if money.currency == currency}
        for period in PERIODS:
            money = own.get(period)
            if money is None and limited_only:
                continue
            bucket = _window(period, local, tz)
            out.append(
                Line(
                    scope,
                    owner,
                    bucket.label,
                    currency,
                    _expiry(bucket.end, bucket.end - bucket.start),
                    to_units(money.amount) if money is not None else None,
                    PERIOD_RULE,
                    money,
                )
            )
    if cost_center is not None:
        today = local
        for budget in company.budgets:
            limit = budget.limit
            if budget.cost_center != cost_center or limit.currency != currency:
                continue
            if not budget.start <= today <= budget.end:
                continue
            end = _midnight(budget.end + timedelta(days=1), tz)
            out.append(
                Line(
                    "budget",
                    company.id,
                    budget.id,
                    currency,
                    _expiry(end, end - _midnight(budget.start, tz)),
                    to_units(limit.amount),
                    BUDGET_RULE,
                    limit,
                    budget.cost_center,
                )
            )
    return out


def _expiry(end: datetime, length: timedelta) -> int:
    """A bucket is kept one period length after it ends."""
    return int((end + length).timestamp())


def limited(items: Iterable[Line]) -> list[Line]:
    """The lines that carry a limit (what an evaluation reads)."""
    return [line for line in items if line.limit is not None]


def passed(items: Sequence[Line], totals: Sequence[int], amount: int) -> list[Line]:
    """The limited lines that `amount` more would take past their limit."""
    return [
        line
        for line, total in zip(items, totals, strict=True)
        if line.limit is not None and total + amount > line.limit
    ]


def rules_of(over: Iterable[Line]) -> list[str]:
    """The distinct rules of the lines passed, periods first."""
    found = {line.rule for line in over}
    return [rule for rule in (PERIOD_RULE, BUDGET_RULE) if rule in found]


def require_admins(
    decision: PurchaseDecision,
    rules: Sequence[str],
    subject_id: str,
    company: Company,
    members: Mapping[str, frozenset[str]],
) -> PurchaseDecision:
    """`decision` with the approval of the company's Admins required for each of `rules`.

    An allow becomes `approval_required` with the first rule; an `approval_required` keeps its
    rule and gains the tiers; a deny (or an error) stays as it is. The Admins are replaced by
    the company's approval group when it is active (`engine/tiers.py`), and the requester
    never approves their own purchase. `members` is what `engine/purchases.evaluate_purchase`
    was given.
    """
    if not rules or decision.decision == "deny" or decision.error is not None:
        return decision
    group = company.approval_group
    active = group if group is not None and members.get(group) else None
    wanted = requirement_groups(APPROVERS, company.id, active)
    approvers = frozenset().union(*(members.get(g, frozenset()) for g in wanted)) - {subject_id}
    tiers = tuple(Tier(rule, (APPROVERS,)) for rule in rules)
    # Who may fill each of these tiers (`PurchaseDecision.eligible`, the answer's `tiers`).
    eligible = (Eligible(tuple(sorted(wanted)), tuple(sorted(approvers))),) * len(tiers)
    groups = tuple(dict.fromkeys([*decision.approver_groups, *sorted(wanted)]))
    subjects = tuple(sorted(set(decision.approver_subjects) | approvers))
    if decision.decision == "allow":
        return replace(
            decision,
            decision="approval_required",
            rule=rules[0],
            approver_groups=groups,
            approver_subjects=subjects,
            tiers=tiers,
            eligible=eligible,
        )
    return replace(
        decision,
        approver_groups=groups,
        approver_subjects=subjects,
        tiers=decision.tiers + tiers,
        eligible=decision.eligible + eligible,
    )
