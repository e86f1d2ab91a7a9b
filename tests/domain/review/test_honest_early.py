"""A review that is honest early (issue 15, item 6): each case seen in a simulated fortnight, re-run.

The clock starts Monday 2026-11-23 08:00 UTC (09:00 in Berlin). The world: agency Outbound and,
per test, one goal G1 whose key result KR1 is described where it is made.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chief_of_staff.cli.main import main
from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import NOW_ENV
from chief_of_staff.core.db import Store
from chief_of_staff.domain import agencies, brief, goals, outcomes, pace
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.authority.terms import BudgetSpec
from chief_of_staff.domain.goals import KeyResultSpec
from chief_of_staff.domain.outcomes import MetricDelta
from chief_of_staff.domain.pace import MIN_DATA_POINTS, MIN_HISTORY_DAYS, RISK_LABELS, progress_of, standing_of, way
from chief_of_staff.domain.review import packet, proposals, scorecards
from tests.conftest import START

pytestmark = pytest.mark.anyio

AGENCY = Actor("agency:Outbound", "agency")
TODAY = date(2026, 11, 23)


def morning(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 8, tzinfo=UTC)  # 09:00 in Berlin


@pytest.fixture
async def world(store: Store) -> Store:
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
    return store


async def goal(store: Store, **spec: Any) -> None:
    """G1 with one key result: meetings 0 -> 12 from today, due in 45 days, unless told otherwise."""
    fields: dict[str, Any] = {"metric": "Meetings", "unit": "meetings", "baseline": 0, "target": 12, "direction": "up"}
    fields |= {"start_date": TODAY, "due_date": TODAY + timedelta(days=45)} | spec
    async with store.write() as tx:
        await goals.create_goal(
            tx, OPERATOR_CLI, agency="Outbound", title="Pipeline", key_results=[KeyResultSpec(**fields)]
        )


async def log(store: Store, *deltas: float) -> None:
    """One outcome per delta, each moving KR1."""
    async with store.write() as tx:
        for delta in deltas:
            await outcomes.log_outcome(
                tx,
                AGENCY,
                agency="Outbound",
                summary="Worked",
                result="success",
                metrics=[MetricDelta(key_result="KR1", delta=delta)],
            )


async def key_result(store: Store) -> goals.KeyResultView:
    async with store.read() as tx:
        [view] = await goals.list_goals(tx)
    return view.key_results[0]


async def goal_targets(store: Store) -> list[proposals.Proposal]:
    async with store.read() as tx:
        return [p for p in await proposals.proposals(tx) if p.kind == "goal_target"]


async def markdown(store: Store, days: int = 7) -> str:
    async with store.read() as tx:
        return packet.render_packet(await packet.build_packet(tx, days=days))


# --- no forecast, and no retarget, from one day of data -----------------------------------------


async def test_one_day_of_data_gives_no_forecast_and_no_retarget_and_says_why(world: Store) -> None:
    await goal(world)
    await log(world, 1, 1)  # today's rate alone: 2 a day, 2 + 2 x 45 = 92 meetings "forecast" for a target of 12
    kr = await key_result(world)
    reason = "forecast after 7 days and 3 data points; 1 day, 2 points so far"
    assert (kr.rate_per_day, kr.forecast_at_due, kr.forecast_note) == (None, None, reason)
    assert (kr.pace, kr.at_risk) == ("ahead", False)
    assert await goal_targets(world) == []
    assert f"16% of the way (ahead, expected 0 today; {reason})" in await markdown(world)


async def test_the_forecast_comes_with_seven_days_and_three_points(world: Store, clock: FixedClock) -> None:
    await goal(world)
    await log(world, 1, 1)
    clock.set(morning(TODAY + timedelta(days=MIN_HISTORY_DAYS - 2)))  # day 6: three points, six days
    await log(world, 1)
    assert (await key_result(world)).forecast_note == "forecast after 7 days and 3 data points; 6 days, 3 points so far"
    clock.set(morning(TODAY + timedelta(days=MIN_HISTORY_DAYS - 1)))  # day 7
    kr = await key_result(world)
    # 3 over the 7 days is 0.429 a day; 39 days left: 3 + 16.71 = 19.71, past 12 by more than a quarter.
    assert (kr.rate_per_day, kr.forecast_at_due, kr.forecast_note) == (0.429, 19.71, None)
    [proposal] = await goal_targets(world)
    assert proposal.adjustment.arguments["key_results"] == [{"key_result": "KR1", "target": 20.0}]


# --- "% of the way" -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("baseline", "target", "value", "said"),
    [
        (0, 12, 1.2, "10% of the way"),
        (10, 2, 9.2, "10% of the way"),  # down: 0.8 of the 8 points to fall
        (0, 12, 10.8, "90% of the way"),
        (0, 100, 29, "29% of the way"),  # 0.29 is 0.28999... in binary: still 29
        (0, 12, 11.99, "99% of the way"),  # one step short never reads 100%
        (0, 12, 15, "125% of the way"),
        (10, 2, 11, "-12% of the way"),  # moved away from a down target
    ],
)
def test_the_share_of_the_way_runs_from_baseline_to_target_in_either_direction(
    baseline: float, target: float, value: float, said: str
) -> None:
    assert way(progress_of(baseline, target, value)) == said


async def test_ten_percent_of_the_way_is_worded_as_ten_percent(world: Store) -> None:
    # From 9 November, 14 days in with 28 to go: 0.4 logged today runs at 0.4 / 14 a day to 1.2 by the due date.
    await goal(world, start_date=date(2026, 11, 9), due_date=date(2026, 12, 21))
    await log(world, 0.2, 0.1, 0.1)
    [proposal] = await goal_targets(world)
    assert proposal.message == (
        "KR1 Meetings of G1 (Outbound) is on course for 1.2 by 2026-12-21 at 0.029/day, 10.8 short of its "
        "target of 12 (10% of the way from its baseline 0). Lower the target to 1.2."
    )
    assert "KR1 Meetings: 0.4 of 12 meetings by 2026-12-21, 3% of the way (behind" in await markdown(world)


async def test_the_brief_words_the_share_of_the_way(world: Store) -> None:
    await goal(world)
    await log(world, 1.2)
    async with world.read() as tx:
        text = brief.render_brief(await brief.build_brief(tx))
    assert "  - KR1 Meetings: 1.2 of 12 meetings by 2027-01-07, 10% of the way — ahead" in text


def test_the_review_command_words_the_share_of_the_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "cli.db"
    monkeypatch.setenv(NOW_ENV, START.isoformat())
    assert main(["init", "--db", str(db), "--timezone", "Europe/Berlin"]) == 0

    async def work() -> None:
        store = await Store.open(db, FixedClock(START))
        try:
            async with store.write() as tx:
                await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
            await goal(store)
            await log(store, 1.2)
        finally:
            await store.close()

    anyio.run(work)
    capsys.readouterr()
    assert main(["review", "--db", str(db), "--peek"]) == 0
    assert "KR1 Meetings: 1.2 of 12 meetings by 2027-01-07, 10% of the way (" in capsys.readouterr().out


# --- forecasts within a plausible range ---------------------------------------------------------


async def test_a_falling_cost_per_post_never_forecasts_below_zero(world: Store) -> None:
    # 40 -> 25 a post; cuts of 14.5 today over a 14-day window run at -1.04 a day: 25.5 - 29 would be -3.5.
    await goal(
        world,
        metric="Cost per post",
        unit="USD",
        baseline=40,
        target=25,
        direction="down",
        start_date=date(2026, 11, 9),
        due_date=date(2026, 12, 21),
    )
    await log(world, -5, -5, -4.5)
    kr = await key_result(world)
    assert (kr.current, kr.forecast_at_due, kr.pace, kr.at_risk) == (25.5, 0.0, "ahead", False)
    assert await goal_targets(world) == []  # a forecast held at zero says the rate cannot last, not where it lands


async def observe(store: Store, clock: FixedClock, *values: tuple[int, float]) -> None:
    """A level KR1 observed at `value` on day `day` (0 is today), one outcome each."""
    for day, value in values:
        clock.set(morning(TODAY + timedelta(days=day)))
        async with store.write() as tx:
            await outcomes.log_outcome(
                tx,
                AGENCY,
                agency="Outbound",
                summary="Measured",
                result="success",
                metrics=[MetricDelta(key_result="KR1", value=value)],
            )


async def test_a_level_cost_per_post_forecasts_from_its_observations_never_below_zero(
    world: Store, clock: FixedClock
) -> None:
    await goal(world, metric="Cost per post", unit="USD", baseline=40, target=10, direction="down", kind="level")
    await observe(world, clock, (1, 30), (3, 24), (7, 18))
    kr = await key_result(world)
    # From 30 on day 1 to 18 on day 7 is -2 a day; 38 days left would lead to -58 USD a post.
    assert (kr.current, kr.rate_per_day, kr.forecast_at_due) == (18.0, -2.0, 0.0)
    assert (kr.pace, kr.at_risk) == ("ahead", False)
    assert await goal_targets(world) == []


async def test_a_level_first_measured_off_its_baseline_does_not_take_the_step_for_a_trend(
    world: Store, clock: FixedClock
) -> None:
    # Subscribers set at 100, first counted at 180 the next day: that step is the baseline being stale.
    await goal(world, metric="Subscribers", unit="", baseline=100, target=300, kind="level")
    await observe(world, clock, (1, 180), (4, 182), (7, 184))
    kr = await key_result(world)
    # 180 to 184 over the 6 days between day 1 and day 7; 38 days left: 184 + 25.33. (84 over the
    # 8 days since the start would have forecast 583.)
    assert (kr.rate_per_day, kr.forecast_at_due, kr.pace) == (0.667, 209.33, "at_risk")
    assert kr.risk_reason == (
        "forecast 209.33 of 300 by 2027-01-07 at the trend of its observations since 2026-11-24 (0.667/day)"
    )


async def test_a_quantity_that_can_go_negative_forecasts_where_its_rate_leads() -> None:
    # Net promoter score from -20 to 10: below zero is a real place for it.
    standing = standing_of(
        -20, 10, -18, TODAY - timedelta(days=13), TODAY + timedelta(days=28), TODAY, recent_delta=-14, points=5
    )
    assert standing.forecast_at_due == -46.0  # -18 - 1 x 28


# --- pace and risk never contradict -------------------------------------------------------------


async def test_a_key_result_on_the_line_but_forecast_short_is_at_risk_not_on_track(world: Store) -> None:
    # From 9 November, due 21 December: 4 expected today. 3.8 is on the line, but runs to 11.4 of 12.
    await goal(world, start_date=date(2026, 11, 9), due_date=date(2026, 12, 21))
    await log(world, 1.9, 0.95, 0.95)
    kr = await key_result(world)
    assert (kr.pace, kr.at_risk, kr.forecast_at_due) == ("at_risk", True, 11.4)
    assert kr.risk_reason == "forecast 11.4 of 12 by 2026-12-21 at the last 14 days' rate (0.271/day)"


DIRECTIONS = st.sampled_from([1, -1])


@given(
    baseline=st.integers(-1_000, 1_000),
    distance=st.integers(1, 1_000),
    sign=DIRECTIONS,
    share=st.floats(-1.5, 2.5, allow_nan=False),
    span=st.integers(1, 400),
    day=st.integers(-10, 430),
    rate_share=st.floats(-3, 3, allow_nan=False),
    points=st.integers(0, 12),
    observed=st.none() | st.tuples(st.integers(0, 30), st.integers(0, 30)),
    active=st.booleans(),
)
def test_pace_and_risk_never_contradict(
    baseline: int,
    distance: int,
    sign: int,
    share: float,
    span: int,
    day: int,
    rate_share: float,
    points: int,
    observed: tuple[int, int] | None,
    active: bool,
) -> None:
    target = baseline + sign * distance
    current = baseline + share * (target - baseline)
    start = TODAY
    due, today = start + timedelta(days=span), start + timedelta(days=day)
    recent_delta = rate_share * (target - baseline)
    # A level key result: its change since an observation `back` days ago, seen again `gap` days later.
    level = None if observed is None else pace.Observed(today - timedelta(days=observed[0]), recent_delta, observed[1])
    s = standing_of(
        baseline,
        target,
        current,
        start,
        due,
        today,
        recent_delta=recent_delta,
        points=points,
        level=level,
        active=active,
    )
    # One verdict: an active key result is at risk exactly when its label says so; a closed one never.
    assert s.at_risk == (active and s.pace in RISK_LABELS)
    assert not (s.at_risk and s.pace in ("on_track", "ahead", "achieved"))
    assert (s.risk_reason is not None) == s.at_risk
    # No forecast, and a reason why, until the minimum history; a forecast, and no such reason, after.
    young = (today - start).days + 1 < MIN_HISTORY_DAYS or points < MIN_DATA_POINTS
    assert (s.forecast_at_due is None) == (s.rate_per_day is None) == (s.forecast_note is not None) == young
    if s.pace == "at_risk":  # only a forecast that misses turns a key result on the line into one at risk
        assert s.forecast_at_due is not None and (target - s.forecast_at_due) * sign > 0
    if s.forecast_at_due is not None:
        # Between where it stands and where its recent rate leads, and never below zero when it cannot be.
        days = pace.rate_window(start, today)[1] if level is None else level.days
        leads = current + (recent_delta / days if days else 0.0) * max(0, (due - today).days)
        assert min(current, leads) - 0.01 <= s.forecast_at_due <= max(current, leads) + 0.01
        if baseline >= 0 and target >= 0 and current >= 0:
            assert s.forecast_at_due >= 0
        assert math.isfinite(s.forecast_at_due)


# --- scorecard limits over the periods a grant was in force -------------------------------------


async def grant(store: Store, **fields: Any) -> None:
    async with store.write() as tx:
        await grants.create_grant(
            tx, OPERATOR_CLI, GrantSpec(**{"agency": "Outbound", "capability": "spend.ads", **fields})
        )


async def spend(store: Store, cents: int) -> None:
    async with store.write() as tx:
        view = await ledger.authorize(
            tx,
            AGENCY,
            agency="Outbound",
            role=None,
            capability="spend.ads",
            amount_cents=cents,
            target=None,
            task_id=None,
            idempotency_key=None,
        )
    assert view.answer == "allowed"


async def budgets(store: Store, since: date, until: date) -> list[dict[str, Any]]:
    async with store.read() as tx:
        [card] = await scorecards.scorecards(tx, since=since, until=until)
    return [b.model_dump() for spent in card.grants for b in spent.budgets]


async def test_a_grant_made_mid_window_counts_only_the_periods_it_was_in_force(world: Store, clock: FixedClock) -> None:
    # A two-week review (weeks 48 and 49); the grant is made on Tuesday of week 49 and spends its 90.00.
    clock.set(morning(date(2026, 12, 1)))
    await grant(world, budgets=[BudgetSpec(period="week", max_cents=9000)])
    await spend(world, 9000)
    clock.set(morning(date(2026, 12, 6)))
    [week] = await budgets(world, date(2026, 11, 23), date(2026, 12, 6))
    assert (week["periods"], week["used_cents"], week["max_cents"]) == ("2026-W49", 9000, 9000)  # not 90/180
    assert "  - GR1 spend.ads: week 2026-W49 90.00 of 90.00" in await markdown(world, days=14)


async def test_a_revoked_or_expired_grant_counts_the_days_until_it_ended(world: Store, clock: FixedClock) -> None:
    await grant(world, budgets=[BudgetSpec(period="day", max_count=10)])
    await grant(world, expires_on="2026-11-24", budgets=[BudgetSpec(period="day", max_count=10)])
    clock.set(morning(date(2026, 11, 25)))
    async with world.write() as tx:
        await grants.revoke_grant(tx, OPERATOR_CLI, "GR1")
    revoked, expired = await budgets(world, date(2026, 11, 23), date(2026, 11, 29))
    assert (revoked["periods"], revoked["max_count"]) == ("2026-11-23..2026-11-25", 30)  # 23rd to 25th, not 70
    assert (expired["periods"], expired["max_count"]) == ("2026-11-23..2026-11-24", 20)  # through its last day
