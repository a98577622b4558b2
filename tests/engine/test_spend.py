"""engine/spend.py: periods in the tenant's time zone, ledger units, lines and the limit gate;
and the graph document's spending limits, budgets and time zone (validated whole)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from groupgate.engine import spend
from groupgate.engine.graph import parse_graph
from groupgate.errors import GraphError
from groupgate.model import (
    Budget,
    Company,
    Money,
    PurchaseDecision,
    SpendingLimit,
    Subject,
    SubjectKind,
    Tier,
)
from groupgate.policy import load_policy

POLICIES = Path(__file__).resolve().parents[2] / "policies"
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --------------------------------------------------------------------------- periods


@pytest.mark.parametrize(
    ("period", "now", "label", "start", "end"),
    [
        ("day", "2027-03-28T12:00:00+02:00", "day:2027-03-28",
         "2027-03-28T00:00:00+01:00", "2027-03-29T00:00:00+02:00"),
        ("week", "2027-01-01T10:00:00+01:00", "week:2026-W53",
         "2026-12-28T00:00:00+01:00", "2027-01-04T00:00:00+01:00"),
        ("week", "2027-01-04T00:00:00+01:00", "week:2027-W01",
         "2027-01-04T00:00:00+01:00", "2027-01-11T00:00:00+01:00"),
        ("month", "2027-02-28T23:59:59+01:00", "month:2027-02",
         "2027-02-01T00:00:00+01:00", "2027-03-01T00:00:00+01:00"),
        ("quarter", "2027-03-31T23:59:59+02:00", "quarter:2027-Q1",
         "2027-01-01T00:00:00+01:00", "2027-04-01T00:00:00+02:00"),
        ("quarter", "2027-04-01T00:00:00+02:00", "quarter:2027-Q2",
         "2027-04-01T00:00:00+02:00", "2027-07-01T00:00:00+02:00"),
        ("quarter", "2027-12-31T12:00:00+01:00", "quarter:2027-Q4",
         "2027-10-01T00:00:00+02:00", "2028-01-01T00:00:00+01:00"),
        ("year", "2027-12-31T23:30:00+01:00", "year:2027",
         "2027-01-01T00:00:00+01:00", "2028-01-01T00:00:00+01:00"),
    ],
)  # fmt: skip
def test_windows_in_berlin(period: str, now: str, label: str, start: str, end: str) -> None:
    found = spend.window(period, at(now), BERLIN)
    assert (found.label, found.start, found.end) == (label, at(start), at(end))


def test_a_day_across_a_dst_change_has_23_or_25_hours() -> None:
    spring = spend.window("day", at("2027-03-28T12:00:00+00:00"), BERLIN)
    autumn = spend.window("day", at("2027-10-31T12:00:00+00:00"), BERLIN)
    assert spring.end - spring.start == timedelta(hours=23)
    assert autumn.end - autumn.start == timedelta(hours=25)


def test_the_time_zone_decides_the_day() -> None:
    # 23:30 UTC on 31 March is already 1 April (Q2) in Berlin, still 31 March in New York.
    now = at("2027-03-31T23:30:00+00:00")
    assert spend.window("day", now, BERLIN).label == "day:2027-04-01"
    assert spend.window("quarter", now, BERLIN).label == "quarter:2027-Q2"
    assert spend.window("day", now, NEW_YORK).label == "day:2027-03-31"
    assert spend.window("quarter", now, NEW_YORK).label == "quarter:2027-Q1"
    assert spend.window("day", now, ZoneInfo("UTC")).label == "day:2027-03-31"


def test_the_instant_of_a_dst_change_is_in_one_bucket() -> None:
    # New York springs forward at 02:00 local (07:00 UTC): the second before and the second
    # after are on the same local day.
    before = spend.window("day", at("2027-03-14T06:59:59+00:00"), NEW_YORK)
    after = spend.window("day", at("2027-03-14T07:00:00+00:00"), NEW_YORK)
    assert before == after
    assert after.end - after.start == timedelta(hours=23)


def test_a_skipped_midnight_starts_at_the_first_real_instant() -> None:
    # Havana springs forward at midnight: 2027-03-14 00:00 does not exist there.
    havana = ZoneInfo("America/Havana")
    found = spend.window("day", at("2027-03-14T12:00:00+00:00"), havana)
    assert found.start.astimezone(UTC) == at("2027-03-14T05:00:00+00:00")
    assert found.start.astimezone(havana).hour == 1


def test_every_period_tiles_time() -> None:
    """The end of one bucket is the start of the next, across a year in two zones."""
    for tz in (BERLIN, NEW_YORK):
        for period in ("day", "week", "month", "quarter", "year"):
            moment = at("2026-12-20T00:00:00+00:00")
            current = spend.window(period, moment, tz)
            for _ in range(20):
                nxt = spend.window(period, current.end, tz)
                assert nxt.start == current.end
                assert nxt.label != current.label
                assert spend.window(period, current.end - timedelta(seconds=1), tz) == current
                current = nxt


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("amount", "units"),
    [("0", 0), ("12.50", 125_000), ("0.0001", 1), ("1.23450000", 12_345),
     ("900719925474.0991", 2**53 - 1)],
)  # fmt: skip
def test_units_are_exact(amount: str, units: int) -> None:
    assert spend.to_units(Decimal(amount)) == units


@pytest.mark.parametrize("amount", ["0.00001", "1.23456", "900719925474.0992", "1" + "0" * 17])
def test_amounts_the_ledger_cannot_hold_are_refused(amount: str) -> None:
    with pytest.raises(spend.AmountError):
        spend.to_units(Decimal(amount))


@pytest.mark.parametrize(
    ("units", "text"), [(0, "0.00"), (125_000, "12.50"), (1, "0.0001"), (12_345, "1.2345")]
)
def test_units_read_back(units: int, text: str) -> None:
    assert spend.from_units(units) == text


# --------------------------------------------------------------------------- lines


def eur(amount: str) -> Money:
    return Money(Decimal(amount), "EUR")


COMPANY = Company(
    "c-1",
    "C1",
    spending_limits=(
        SpendingLimit("month", eur("1000")),
        SpendingLimit("day", Money(Decimal("5"), "USD")),
    ),
    budgets=(
        Budget("cc1-2027", "CC-1", date(2027, 1, 1), date(2027, 12, 31), eur("300")),
        Budget("cc2-2027", "CC-2", date(2027, 1, 1), date(2027, 12, 31), eur("300")),
        Budget("cc1-2028", "CC-1", date(2028, 1, 1), date(2028, 12, 31), eur("300")),
    ),
)  # fmt: skip
BUYER = Subject("cust-1", SubjectKind.CUSTOMER, spending_limits=(SpendingLimit("week", eur("50")),))


def test_lines_cover_every_period_of_company_and_subject_and_matching_budgets() -> None:
    now = at("2027-06-15T10:00:00+00:00")
    found = spend.lines(COMPANY, BUYER, "EUR", "CC-1", now, BERLIN)
    assert [(x.scope, x.owner, x.bucket) for x in found] == [
        ("company", "c-1", "day:2027-06-15"),
        ("company", "c-1", "week:2027-W24"),
        ("company", "c-1", "month:2027-06"),
        ("company", "c-1", "quarter:2027-Q2"),
        ("company", "c-1", "year:2027"),
        ("subject", "cust-1", "day:2027-06-15"),
        ("subject", "cust-1", "week:2027-W24"),
        ("subject", "cust-1", "month:2027-06"),
        ("subject", "cust-1", "quarter:2027-Q2"),
        ("subject", "cust-1", "year:2027"),
        ("budget", "c-1", "cc1-2027"),
    ]
    limited = spend.limited(found)
    assert [(x.bucket, x.limit, x.rule) for x in limited] == [
        ("month:2027-06", 10_000_000, spend.PERIOD_RULE),
        ("week:2027-W24", 500_000, spend.PERIOD_RULE),
        ("cc1-2027", 3_000_000, spend.BUDGET_RULE),
    ]
    month = limited[0]
    # A bucket expires one period length after its end: June's 30 days after 1 July.
    assert month.expires_at == int(at("2027-07-31T00:00:00+02:00").timestamp())
    budget = limited[2]
    # A budget is kept as long again as it ran (365 days) after its last day.
    assert budget.expires_at == int(at("2028-12-31T00:00:00+01:00").timestamp())


def test_an_evaluation_builds_only_the_limited_lines() -> None:
    now = at("2027-06-15T10:00:00+00:00")
    for currency, center in (("EUR", "CC-1"), ("EUR", None), ("USD", "CC-2")):
        every = spend.lines(COMPANY, BUYER, currency, center, now, BERLIN)
        only = spend.lines(COMPANY, BUYER, currency, center, now, BERLIN, limited_only=True)
        assert only == spend.limited(every)


def test_a_limit_applies_to_its_own_currency_only() -> None:
    now = at("2027-06-15T10:00:00+00:00")
    usd = spend.limited(spend.lines(COMPANY, None, "USD", "CC-1", now, BERLIN))
    assert [(x.bucket, x.limit) for x in usd] == [("day:2027-06-15", 50_000)]


def test_budgets_run_from_their_first_to_their_last_local_day() -> None:
    last = at("2027-12-31T22:59:59+00:00")  # 23:59:59 in Berlin
    after = at("2027-12-31T23:00:00+00:00")  # already 2028 in Berlin
    assert [x.bucket for x in spend.lines(COMPANY, None, "EUR", "CC-1", last, BERLIN)][-1] == (
        "cc1-2027"
    )
    assert [x.bucket for x in spend.lines(COMPANY, None, "EUR", "CC-1", after, BERLIN)][-1] == (
        "cc1-2028"
    )
    assert all(x.scope != "budget" for x in spend.lines(COMPANY, None, "EUR", None, last, BERLIN))


def test_passed_compares_total_plus_amount_with_the_limit() -> None:
    now = at("2027-06-15T10:00:00+00:00")
    items = spend.limited(spend.lines(COMPANY, BUYER, "EUR", "CC-1", now, BERLIN))
    assert spend.passed(items, [0, 0, 0], 500_000) == []
    assert spend.passed(items, [9_500_000, 0, 2_500_000], 500_000) == []  # exactly at
    over = spend.passed(items, [0, 1, 2_500_001], 500_000)
    assert [x.bucket for x in over] == ["week:2027-W24", "cc1-2027"]
    assert spend.rules_of(over) == [spend.PERIOD_RULE, spend.BUDGET_RULE]
    assert spend.rules_of(over[1:]) == [spend.BUDGET_RULE]


def test_require_admins_turns_an_allow_into_an_approval() -> None:
    members = {"c-1/admin": frozenset({"adm-1", "cust-1"}), "c-1/buyer": frozenset({"cust-1"})}
    allow = PurchaseDecision("allow", "buyer_no_limit")
    out = spend.require_admins(allow, [spend.BUDGET_RULE], "cust-1", COMPANY, members)
    assert out.decision == "approval_required"
    assert out.rule == spend.BUDGET_RULE
    assert out.approver_groups == ("c-1/admin",)
    assert out.approver_subjects == ("adm-1",)  # never the requester
    assert out.tiers == (Tier(spend.BUDGET_RULE, (("admin",),)),)


def test_require_admins_appends_tiers_and_keeps_denials() -> None:
    members = {"c-1/admin": frozenset({"adm-1"}), "c-1/buyer": frozenset({"buy-1"})}
    tier = Tier("requester_no_limit", (("buyer", "admin"),))
    needed = PurchaseDecision(
        "approval_required",
        "requester_no_limit",
        ("c-1/buyer", "c-1/admin"),
        ("adm-1", "buy-1"),
        tiers=(tier,),
    )
    rules = [spend.PERIOD_RULE, spend.BUDGET_RULE]
    out = spend.require_admins(needed, rules, "req-1", COMPANY, members)
    assert out.rule == "requester_no_limit"
    assert out.tiers == (
        tier,
        Tier(spend.PERIOD_RULE, (("admin",),)),
        Tier(spend.BUDGET_RULE, (("admin",),)),
    )
    assert out.approver_groups == ("c-1/buyer", "c-1/admin")
    deny = PurchaseDecision("deny", "not_a_purchaser")
    assert spend.require_admins(deny, rules, "x", COMPANY, members) is deny
    assert spend.require_admins(needed, [], "x", COMPANY, members) is needed


def test_an_active_approval_group_stands_for_the_admins() -> None:
    company = Company("c-1", "C1", approval_group="c-1-approvers")
    members = {"c-1/admin": frozenset({"adm-1"}), "c-1-approvers": frozenset({"app-1"})}
    allow = PurchaseDecision("allow", "admin_no_limit")
    out = spend.require_admins(allow, [spend.PERIOD_RULE], "adm-1", company, members)
    assert out.approver_groups == ("c-1-approvers",)
    assert out.approver_subjects == ("app-1",)


# --------------------------------------------------------------------------- documents


def doc(company: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "c-1", "name": "C1"}
    return {
        "tenant": "t",
        "companies": [{**base, **(company or {})}],
        "subjects": [{"id": "cust-1", "kind": "customer", "companies": {"c-1": ["buyer"]}}],
        **top,
    }


@pytest.fixture(scope="module")
def catalog() -> Any:
    return load_policy(POLICIES)


def test_a_document_carries_limits_budgets_and_a_time_zone(catalog: Any) -> None:
    graph = parse_graph(
        doc(
            {
                "spending_limits": [{"period": "month", "amount": "1000.00", "currency": "EUR"}],
                "budgets": [
                    {"id": "b-1", "cost_center": "CC-1", "from": "2027-01-01",
                     "until": "2027-01-01", "amount": "5", "currency": "EUR"}
                ],
            },
            settings={"time_zone": "Europe/Berlin"},
        ),
        catalog,
    )  # fmt: skip
    company = graph.companies["c-1"]
    assert company.spending_limits == (SpendingLimit("month", eur("1000.00")),)
    assert company.budgets == (Budget("b-1", "CC-1", date(2027, 1, 1), date(2027, 1, 1), eur("5")),)
    assert graph.settings.time_zone == "Europe/Berlin"
    assert parse_graph(doc(), catalog).settings.time_zone == "UTC"


def test_subjects_carry_spending_limits(catalog: Any) -> None:
    body = doc()
    body["subjects"][0]["spending_limits"] = [{"period": "week", "amount": "50", "currency": "EUR"}]
    graph = parse_graph(body, catalog)
    assert graph.subjects["cust-1"].spending_limits == (SpendingLimit("week", eur("50")),)


LIMIT = {"period": "month", "amount": "10.00", "currency": "EUR"}
BUDGET = {
    "id": "b-1",
    "cost_center": "CC-1",
    "from": "2027-01-01",
    "until": "2027-12-31",
    "amount": "10.00",
    "currency": "EUR",
}


@pytest.mark.parametrize(
    ("company", "where"),
    [
        ({"spending_limits": {}}, "companies[0].spending_limits: expected a list"),
        ({"spending_limits": [{**LIMIT, "period": "decade"}]},
         "companies[0].spending_limits[0].period: expected one of day, week"),
        ({"spending_limits": [{**LIMIT, "amount": 10}]},
         "companies[0].spending_limits[0].amount: expected a decimal string"),
        ({"spending_limits": [{**LIMIT, "amount": "1.00001"}]},
         "companies[0].spending_limits[0].amount: 1.00001 has more than 4 decimals"),
        ({"spending_limits": [{**LIMIT, "amount": "999999999999999999"}]},
         "companies[0].spending_limits[0].amount: 999999999999999999 is too large"),
        ({"spending_limits": [{**LIMIT, "currency": "eur"}]},
         "companies[0].spending_limits[0].currency: expected an ISO 4217 code"),
        ({"spending_limits": [LIMIT, {**LIMIT, "amount": "5"}]},
         "companies[0].spending_limits[1]: a second month limit in EUR"),
        ({"spending_limits": [{**LIMIT, "every": "day"}]},
         "companies[0].spending_limits[0].every: unknown field"),
        ({"budgets": [BUDGET, BUDGET]}, "companies[0].budgets[1].id: duplicate budget 'b-1'"),
        ({"budgets": [{**BUDGET, "from": "2027-13-01"}]},
         "companies[0].budgets[0].from: expected a date such as 2027-01-31"),
        ({"budgets": [{**BUDGET, "until": "20271231"}]},
         "companies[0].budgets[0].until: expected a date"),
        ({"budgets": [{**BUDGET, "until": "2026-12-31"}]},
         "companies[0].budgets[0].until: 2026-12-31 is before from (2027-01-01)"),
        ({"budgets": [{**BUDGET, "cost_center": "CC 1"}]},
         "companies[0].budgets[0].cost_center: invalid id"),
        ({"budgets": [{**BUDGET, "id": None}]}, "companies[0].budgets[0].id: expected a non-empty"),
        ({"budgets": [{k: v for k, v in BUDGET.items() if k != "currency"}]},
         "companies[0].budgets[0].currency: expected a non-empty string"),
    ],
)  # fmt: skip
def test_malformed_limits_and_budgets_name_the_entry(
    catalog: Any, company: dict[str, Any], where: str
) -> None:
    with pytest.raises(GraphError) as caught:
        parse_graph(doc(company), catalog)
    assert str(caught.value).startswith(where), str(caught.value)


@pytest.mark.parametrize("name", ["Mars/Olympus", "../../etc/passwd", "", 5, "x" * 100, "/UTC"])
def test_unknown_time_zones_are_refused(catalog: Any, name: Any) -> None:
    with pytest.raises(GraphError) as caught:
        parse_graph(doc(settings={"time_zone": name}), catalog)
    assert str(caught.value).startswith("settings.time_zone: "), str(caught.value)
