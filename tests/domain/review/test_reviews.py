"""Scorecards and anomalies: hand-checked figures, each anomaly firing exactly at its threshold.

The clock starts Monday 2026-11-23 08:00 UTC (09:00 in Berlin). The world: agency Outbound (A1)
with roles SDR (R1) and Researcher (R2) and goal G1 (KR1 meetings 0 -> 12, due 2027-02-21), and
agency Inbox (A2) with nothing going on.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store, Tx, split_statements
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.domain import agencies, deciding, decisions, goals, inbox, outcomes
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.authority.terms import BudgetSpec
from chief_of_staff.domain.goals import KeyResultSpec
from chief_of_staff.domain.outcomes import MetricDelta
from chief_of_staff.domain.review import anomalies, scorecards

pytestmark = pytest.mark.anyio

AGENCY = Actor("agency:Outbound/SDR", "agency")
MONDAY = date(2026, 11, 23)
WEEK = {"since": MONDAY, "until": date(2026, 11, 29)}


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.fixture
async def world(store: Store) -> Store:
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", charter="Writes and sends")
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="Researcher", charter="Finds leads")
        await agencies.create_agency(tx, OPERATOR_CLI, name="Inbox", purpose="Answer mail")
        await goals.create_goal(
            tx,
            OPERATOR_CLI,
            agency="Outbound",
            title="Pipeline",
            key_results=[
                KeyResultSpec(
                    metric="Meetings",
                    unit="meetings",
                    baseline=0,
                    target=12,
                    direction="up",
                    due_date="2027-02-21",
                    start_date="2026-11-01",
                )
            ],
        )
    return store


async def log(store: Store, count: int = 1, **fields: Any) -> None:
    async with store.write() as tx:
        for _ in range(count):
            await outcomes.log_outcome(
                tx, AGENCY, **{"agency": "Outbound", "summary": "Worked", "result": "success", **fields}
            )


async def ask(store: Store, count: int = 1, **fields: Any) -> list[str]:
    request: dict[str, Any] = {
        "agency": "Outbound",
        "role": "SDR",
        "capability": "email.send",
        "amount_cents": 0,
        "target": "jane@acme.com",
        "task_id": None,
        "idempotency_key": None,
        **fields,
    }
    async with store.write() as tx:
        return [(await ledger.authorize(tx, AGENCY, **request)).answer for _ in range(count)]


async def grant(store: Store, **fields: Any) -> None:
    async with store.write() as tx:
        await grants.create_grant(
            tx, OPERATOR_CLI, GrantSpec(**{"agency": "Outbound", "role": "SDR", "capability": "email.send", **fields})
        )


async def found(store: Store, kind: str, **options: Any) -> list[anomalies.Anomaly]:
    async with store.read() as tx:
        return [a for a in await anomalies.anomalies(tx, **options) if a.kind == kind]


# --- scorecards ----------------------------------------------------------------------------------


async def _a_week_of_work(store: Store, clock: FixedClock) -> None:
    """Sunday 23:30 Berlin (outside the week): one SDR outcome, one authorization, one decision.
    Monday 00:15 Berlin (inside, by a quarter hour): one SDR success. Monday 09:00: three more."""
    await grant(store, budgets=[BudgetSpec(period="day", max_count=10), BudgetSpec(period="month", max_cents=50_000)])
    clock.set(utc(22, 22, 30))
    await log(store, role="SDR", cost_cents=5000, metrics=[MetricDelta(key_result="KR1", delta=1)])
    await ask(store, amount_cents=1200)
    async with store.write() as tx:
        await deciding.request_decision(tx, AGENCY, agency="Outbound", role=None, kind="question", title="Sunday")
    clock.set(utc(22, 23, 15))
    await log(store, role="SDR", minutes_saved=5)
    async with store.write() as tx:
        await decisions.open_decision(
            tx,
            AGENCY,
            kind="question",
            title="Short-lived",
            request={"n": 1},
            agency_id=1,
            role_id=None,
            ttl=timedelta(hours=1),
        )
    clock.set(utc(23, 8))
    await log(store, role="SDR", cost_cents=600, minutes_saved=30, metrics=[MetricDelta(key_result="KR1", delta=2)])
    await log(store, role="SDR", result="failure", cost_cents=300)
    await log(
        store,
        role="Researcher",
        result="partial",
        cost_cents=100,
        minutes_saved=15,
        metrics=[MetricDelta(key_result="KR1", delta=1)],
    )
    await ask(store, 3, amount_cents=1200)
    async with store.write() as tx:
        views = [
            await deciding.request_decision(tx, AGENCY, agency="Outbound", role=None, kind="question", title=title)
            for title in ("Yes?", "No?", "Later?")
        ]
        await deciding.decide(tx, OPERATOR_CLI, views[0].id, approve=True)
        await deciding.decide(tx, OPERATOR_CLI, views[1].id, approve=False)


async def test_scorecard_counts_the_week_by_local_day_with_hand_checked_figures(
    world: Store, clock: FixedClock
) -> None:
    await _a_week_of_work(world, clock)
    async with world.read() as tx:
        outbound, inbox_card = await scorecards.scorecards(tx, **WEEK)
    # In the week: S(600, KR1 +2), F(300), P(100, KR1 +1) and the 00:15 S(0); Sunday's 5000 is out.
    assert (outbound.agency, outbound.outcomes, outbound.successes, outbound.partials, outbound.failures) == (
        "Outbound",
        4,
        2,
        1,
        1,
    )
    assert outbound.success_rate == 0.5  # 2 of 4
    assert (outbound.cost_cents, outbound.cost_per_outcome_cents, outbound.minutes_saved) == (1000, 250, 50)
    [meetings] = outbound.key_results
    assert (meetings.key_result, meetings.moved) == ("KR1", 3.0)
    assert meetings.cost_per_unit_cents == 333  # 1000 / 3 meetings = 333.33
    assert inbox_card.agency == "Inbox" and inbox_card.outcomes == 0
    assert (inbox_card.success_rate, inbox_card.cost_per_outcome_cents, inbox_card.roles) == (None, None, [])


async def test_scorecard_splits_the_agency_by_role(world: Store, clock: FixedClock) -> None:
    await _a_week_of_work(world, clock)
    async with world.read() as tx:
        outbound = (await scorecards.scorecards(tx, **WEEK))[0]
    sdr, researcher = outbound.roles
    # SDR: S(600) F(300) and the 00:15 S(0, 5 minutes); the role rollup cuts at local midnight too.
    assert (sdr.role, sdr.outcomes, sdr.successes, sdr.failures, sdr.success_rate) == ("SDR", 3, 2, 1, 0.667)
    assert (sdr.cost_cents, sdr.cost_per_outcome_cents, sdr.minutes_saved) == (900, 300, 35)
    assert (researcher.role, researcher.outcomes, researcher.partials, researcher.success_rate) == (
        "Researcher",
        1,
        1,
        0.0,
    )


async def test_scorecard_shows_each_grants_budgets_over_the_period(world: Store, clock: FixedClock) -> None:
    await _a_week_of_work(world, clock)
    async with world.read() as tx:
        [spend] = (await scorecards.scorecards(tx, **WEEK))[0].grants
    assert (spend.grant, spend.capability, spend.role, spend.status) == ("GR1", "email.send", "SDR", "active")
    day, month = (b.model_dump() for b in spend.budgets)
    # Seven day budgets of 10, Monday's three draws (Sunday's is outside); the month holds all four.
    assert day == {
        "period": "day",
        "periods": "2026-11-23..2026-11-29",
        "used_count": 3,
        "used_cents": 3600,
        "max_count": 70,
        "max_cents": None,
    }
    assert month == {
        "period": "month",
        "periods": "2026-11",
        "used_count": 4,
        "used_cents": 4800,
        "max_count": None,
        "max_cents": 50_000,
    }


async def test_scorecard_lists_only_grants_in_force_during_the_period(world: Store) -> None:
    await grant(world)
    async with world.write() as tx:
        await grants.revoke_grant(tx, OPERATOR_CLI, "GR1")
    async with world.read() as tx:
        this_week = (await scorecards.scorecards(tx, **WEEK))[0].grants
        next_week = (await scorecards.scorecards(tx, since="2026-11-30", until="2026-12-06"))[0].grants
    assert [(g.grant, g.status, g.budgets) for g in this_week] == [("GR1", "revoked", [])]
    assert next_week == []


async def test_scorecard_tallies_decisions_asked_in_the_period(world: Store, clock: FixedClock) -> None:
    await _a_week_of_work(world, clock)
    async with world.read() as tx:
        outbound = (await scorecards.scorecards(tx, **WEEK))[0]
    # Sunday's question is outside; the one-hour question expired; then approved, denied, pending.
    assert outbound.decisions.model_dump() == {"asked": 4, "approved": 1, "denied": 1, "expired": 1, "pending": 1}


async def test_cost_per_unit_of_a_down_key_result_counts_units_toward_its_target(world: Store) -> None:
    async with world.write() as tx:
        await goals.create_goal(
            tx,
            OPERATOR_CLI,
            agency="Outbound",
            title="Clean list",
            key_results=[
                KeyResultSpec(
                    metric="Bounce rate", unit="%", baseline=10, target=2, direction="down", due_date="2027-02-21"
                )
            ],
        )
    await log(world, cost_cents=900, metrics=[MetricDelta(key_result="KR2", delta=-4)])
    async with world.read() as tx:
        meetings, bounce = (await scorecards.scorecards(tx, **WEEK))[0].key_results
    assert (meetings.moved, meetings.cost_per_unit_cents) == (0.0, None)
    assert (bounce.moved, bounce.cost_per_unit_cents) == (-4.0, 225)  # 900 cents / 4 points down


async def test_scorecard_refuses_a_backwards_or_overlong_period(world: Store) -> None:
    async with world.read() as tx:
        with pytest.raises(InvalidInput, match="until: 2026-11-22 is before since"):
            await scorecards.scorecards(tx, since=MONDAY, until=date(2026, 11, 22))
        with pytest.raises(InvalidInput, match="at most 366 days"):
            await scorecards.scorecards(tx, since="2026-01-01", until="2027-01-02")
        with pytest.raises(InvalidInput, match="since: send a date as YYYY-MM-DD"):
            await scorecards.scorecards(tx, since="last week", until=MONDAY)


async def test_role_rollup_backfill_matches_what_the_trigger_keeps(world: Store, clock: FixedClock) -> None:
    await _a_week_of_work(world, clock)
    script = resources.files("chief_of_staff").joinpath("migrations/0005_review_rollups.sql").read_text("utf-8")
    [backfill] = [s for s in split_statements(script) if s.startswith("INSERT INTO role_quarter_hours")]
    async with world.write() as tx:
        kept = [tuple(r) for r in await tx.all("SELECT * FROM role_quarter_hours ORDER BY role_id, slot")]
        await tx.run("DELETE FROM role_quarter_hours")
        await tx.run(backfill)
        rebuilt = [tuple(r) for r in await tx.all("SELECT * FROM role_quarter_hours ORDER BY role_id, slot")]
    assert kept == rebuilt
    assert [row[:3] for row in kept] == [
        (1, "2026-11-22T22:30", 1),
        (1, "2026-11-22T23:15", 1),
        (1, "2026-11-23T08:00", 2),
        (2, "2026-11-23T08:00", 1),
    ]


# --- anomalies: failure rate ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_failures", "recent", "recent_failures", "fires"),
    [
        (2, 10, 3, True),  # 30% this week against 10%: 20 points above
        (4, 10, 3, False),  # 30% against 20%: exactly the 10-point margin, not above it
        (0, 10, 2, False),  # 20% against 0%, but 2 failures are too few to call
        (0, 9, 5, False),  # 56% against 0%, but 9 outcomes are too few to call
    ],
)
async def test_failure_rate_fires_only_above_the_baseline_with_enough_evidence(
    world: Store, clock: FixedClock, base_failures: int, recent: int, recent_failures: int, fires: bool
) -> None:
    clock.set(utc(16, 8))  # Monday a week ago: the 28-day baseline, one day before the recent 7
    await log(world, 20 - base_failures)
    await log(world, base_failures, result="failure")
    clock.set(utc(23, 8))
    await log(world, recent - recent_failures)
    await log(world, recent_failures, result="failure")
    hits = await found(world, "failure_rate")
    assert len(hits) == int(fires)
    if fires:
        assert hits[0].subject == "A1"
        assert hits[0].evidence == {
            "failures": 3,
            "outcomes": 10,
            "failure_rate": 0.3,
            "baseline_failures": 2,
            "baseline_outcomes": 20,
            "baseline_rate": 0.1,
        }


async def test_failure_rate_needs_a_baseline(world: Store) -> None:
    await log(world, 10, result="failure")
    assert await found(world, "failure_rate") == []


# --- anomalies: tasks ----------------------------------------------------------------------------


async def test_lease_churn_fires_on_the_third_claim_of_an_unfinished_task(world: Store, clock: FixedClock) -> None:
    async with world.write() as tx:
        await inbox.add_task(tx, AGENCY, title="Research 20 leads", agency="Outbound")
    for claim in (1, 2, 3):
        async with world.write() as tx:
            await inbox.claim_next_task(tx, AGENCY, lease_minutes=5)
        hits = await found(world, "lease_churn")
        assert len(hits) == (claim >= 3)
        clock.advance(timedelta(minutes=10))
    assert hits[0].subject == "T1"
    # Claimed three times; checked while the third lease was live, two had run out.
    assert hits[0].evidence == {"claims": 3, "unfinished_leases": 2, "status": "claimed"}


async def test_overdue_fires_for_unfinished_p0_and_p1_tasks_due_before_today(world: Store) -> None:
    tasks = [
        ("P1", "2026-11-22", None),
        ("P1", "2026-11-23", None),
        ("P2", "2026-11-01", None),
        ("P0", "2026-11-20", "blocked"),
        ("P0", "2026-11-20", "cancelled"),
    ]
    async with world.write() as tx:
        for priority, due, status in tasks:
            task = await inbox.add_task(tx, AGENCY, title="Work", agency="Outbound", priority=priority, due_on=due)
            if status:
                await inbox.update_task(tx, AGENCY, task.id, status=status)
    hits = await found(world, "overdue_task")
    assert [(a.subject, a.evidence["days_overdue"], a.evidence["status"]) for a in hits] == [
        ("T4", 3, "blocked"),
        ("T1", 1, "open"),
    ]


# --- anomalies: budgets and denials --------------------------------------------------------------


@pytest.mark.parametrize(("draws", "fires"), [(3, False), (4, True)])
async def test_budget_burn_fires_when_the_day_is_on_pace_to_exceed(world: Store, draws: int, fires: bool) -> None:
    await grant(world, budgets=[BudgetSpec(period="day", max_count=10)])
    await ask(world, draws)
    hits = await found(world, "budget_burn")
    # 09:00 in Berlin: 9/24 = 0.375 of the day gone. 3 / 0.375 = 8 is within 10; 4 / 0.375 = 10.67 is not.
    assert len(hits) == int(fires)
    if fires:
        assert hits[0].subject == "GR1"
        assert hits[0].evidence == {
            "period": "2026-11-23",
            "unit": "count",
            "used": 4,
            "limit": 10,
            "elapsed": 0.375,
            "projected": 10.67,
        }


@pytest.mark.parametrize(("amounts", "fires"), [([2400], False), ([2400, 100], True)])
async def test_budget_burn_waits_for_a_quarter_of_the_budget(world: Store, amounts: list[int], fires: bool) -> None:
    await grant(world, budgets=[BudgetSpec(period="week", max_cents=10_000)])
    for amount in amounts:
        await ask(world, amount_cents=amount)
    hits = await found(world, "budget_burn")
    # 9 hours of the 168-hour week are gone, so any draw is on pace to exceed; 24.00 of 100.00 is not a
    # quarter yet, 25.00 is.
    assert len(hits) == int(fires)
    if fires:
        assert hits[0].evidence == {
            "period": "2026-W48",
            "unit": "cents",
            "used": 2500,
            "limit": 10_000,
            "elapsed": 0.054,
            "projected": 46666.67,
        }


@pytest.mark.parametrize(("baseline", "recent", "fires"), [(14, 6, False), (14, 7, True), (0, 4, False), (0, 5, True)])
async def test_denial_spike_compares_the_last_day_with_the_daily_average_before(
    world: Store, clock: FixedClock, baseline: int, recent: int, fires: bool
) -> None:
    await grant(world, scope_deny=["gmail.com"])
    clock.set(utc(20, 8))  # three days ago: inside the 7-day baseline
    await ask(world, baseline, target="bob@gmail.com")
    clock.set(utc(23, 8))
    assert set(await ask(world, recent, target="bob@gmail.com")) == {"denied"}
    await ask(world, 20)  # allowed answers never count
    hits = await found(world, "denial_spike")
    # 14 over 7 days is 2 a day: 7 is over 3 x 2, 6 is not. With no baseline, 5 is the minimum.
    assert len(hits) == int(fires)
    if fires:
        assert hits[0].subject == "A1"
        assert hits[0].evidence["denials_24h"] == recent and hits[0].evidence["baseline_denials"] == baseline


async def test_denial_windows_are_whole_utc_hours(world: Store, clock: FixedClock) -> None:
    await grant(world, scope_deny=["gmail.com"])
    # Now is 23 Nov 08:00 UTC: the last 24 hours are the hours 22 Nov 09:00 .. 23 Nov 08:59, and the
    # 7 days before them start at 15 Nov 09:00.
    for instant, count in ((utc(15, 8, 59), 1), (utc(15, 9), 1), (utc(22, 8, 59), 1), (utc(22, 9), 5)):
        clock.set(instant)
        await ask(world, count, target="bob@gmail.com")
    clock.set(utc(23, 8))
    [hit] = await found(world, "denial_spike")
    assert hit.evidence == {"denials_24h": 5, "baseline_denials": 2, "baseline_daily_average": 0.29}


# --- anomalies: goals and decisions --------------------------------------------------------------


@pytest.mark.parametrize(("done", "kind"), [(0, "goal_behind"), (5, "goal_at_risk"), (6, None)])
async def test_goal_anomalies_follow_pace_then_forecast(world: Store, done: int, kind: str | None) -> None:
    async with world.write() as tx:
        await goals.create_goal(
            tx,
            OPERATOR_CLI,
            agency="Outbound",
            title="Sprint",
            key_results=[
                KeyResultSpec(
                    metric="Demos",
                    baseline=0,
                    target=10,
                    direction="up",
                    due_date="2026-12-03",
                    start_date="2026-11-13",
                )
            ],
        )
    for part in (done / 2, done / 4, done / 4) if done else ():  # three points: the minimum for a forecast
        await log(world, metrics=[MetricDelta(key_result="KR2", delta=part)])
    hits = [a for a in await found(world, "goal_behind") + await found(world, "goal_at_risk") if a.subject == "KR2"]
    # Day 10 of 20: 5 expected. At 0 it is behind by 5. At 5 it is on the line, but 5 over the 11 days
    # since the start forecasts 5 + 10 x 5/11 = 9.55 < 10. At 6: ahead, and 6 + 10 x 6/11 = 11.45.
    assert [a.kind for a in hits] == ([kind] if kind else [])
    if kind == "goal_behind":
        assert (hits[0].evidence["expected_now"], hits[0].evidence["behind_by"]) == (5.0, 5.0)
    if kind == "goal_at_risk":
        assert hits[0].evidence["forecast_at_due"] == 9.55


async def test_decision_waiting_fires_after_a_full_day(world: Store, clock: FixedClock) -> None:
    async with world.write() as tx:
        await deciding.request_decision(tx, AGENCY, agency="Outbound", role=None, kind="question", title="Go?")
    clock.advance(timedelta(hours=24))
    assert await found(world, "decision_waiting") == []
    clock.advance(timedelta(minutes=1))
    [hit] = await found(world, "decision_waiting")
    assert (hit.subject, hit.evidence["hours_waiting"]) == ("D1", 24)
    assert await found(world, "decision_waiting", decision_wait=timedelta(hours=48)) == []


async def test_a_quiet_workspace_has_no_anomalies(world: Store) -> None:
    await grant(world, budgets=[BudgetSpec(period="day", max_count=10)])
    await ask(world, 2)
    await log(world, 3, metrics=[MetricDelta(key_result="KR1", delta=1)])
    async with world.read() as tx:
        assert await anomalies.anomalies(tx) == []


# --- reading indexes, not tables -----------------------------------------------------------------

BIG_TABLES = (
    "outcomes",
    "outcome_metrics",
    "authorizations",
    "tasks",
    "decisions",
    "audit_log",
    "budget_usage",
    "agency_days",
    "key_result_days",
    "role_quarter_hours",
    "denial_hours",
)


async def test_scorecards_and_anomalies_never_scan_a_big_table(world: Store, clock: FixedClock) -> None:
    await _a_week_of_work(world, clock)
    statements: list[str] = []
    async with world.write() as tx:
        tx.trace(statements.append)
        await scorecards.scorecards(tx, **WEEK)
        await anomalies.anomalies(tx)
        tx.trace(None)
        plans = {sql: await _plan(tx, sql) for sql in statements if sql.startswith("SELECT")}
    assert len(plans) >= 12 and any("SCAN a" in lines for lines in plans.values())
    aliases = {"q", "u", "h", "d"}  # role_quarter_hours, budget_usage, denial_hours, the day rollups/decisions
    scans = {
        sql[:60]: line
        for sql, lines in plans.items()
        for line in lines
        if (m := re.match(r"SCAN (\w+)", line)) and (m.group(1) in BIG_TABLES or m.group(1) in aliases)
    }
    assert scans == {}


async def _plan(tx: Tx, sql: str) -> list[str]:
    return [row["detail"] for row in await tx.all("EXPLAIN QUERY PLAN " + sql)]
