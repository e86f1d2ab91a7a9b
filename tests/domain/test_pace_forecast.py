"""Forecast and at-risk of key results: the arithmetic by hand, then the `key_result_days` rollup
that feeds it, under a fixed clock (workspace in Europe/Berlin)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock, local_date, parse_ts
from chief_of_staff.core.db import Store, Tx, migration_files, split_statements
from chief_of_staff.core.errors import NotFound
from chief_of_staff.domain import agencies, goals, outcomes, pace
from chief_of_staff.domain.goals import KeyResultSpec
from chief_of_staff.domain.pace import forecast_of, rate_window

pytestmark = pytest.mark.anyio

AGENT = Actor("agency:Outbound/SDR", "agency")
START, DUE = date(2026, 11, 23), date(2027, 2, 21)  # 90 days apart
DEC_23 = date(2026, 12, 23)  # day 30: 60 days left


def _up(current: float, today: date, recent_delta: float, points: int = 3) -> pace.Forecast:
    return forecast_of(0, 12, current, START, DUE, today, recent_delta=recent_delta, points=points)


# --- forecast_of: hand-checked arithmetic --------------------------------------------------------


def test_an_up_key_result_whose_rate_reaches_the_target_is_not_at_risk() -> None:
    forecast = _up(3, DEC_23, recent_delta=2.8)  # 2.8 / 14 = 0.2 a day; 3 + 0.2 * 60 = 15
    assert forecast == pace.Forecast(0.2, 15.0, False, None)


def test_an_up_key_result_whose_rate_falls_short_is_at_risk_with_the_numbers() -> None:
    forecast = _up(3, DEC_23, recent_delta=1.4)  # 0.1 a day: 3 + 6 = 9
    assert (forecast.rate_per_day, forecast.forecast_at_due, forecast.at_risk) == (0.1, 9.0, True)
    assert forecast.risk_reason == "forecast 9 of 12 by 2027-02-21 at the last 14 days' rate (0.1/day)"


def test_a_down_key_result_falls_to_its_target_or_is_at_risk() -> None:
    # From 100 down to 40; at 85 on day 30 with 60 days left.
    on_course = forecast_of(100, 40, 85, START, DUE, DEC_23, recent_delta=-14, points=5)
    assert on_course == pace.Forecast(-1.0, 25.0, False, None)  # 85 - 60
    short = forecast_of(100, 40, 85, START, DUE, DEC_23, recent_delta=-7, points=5)
    assert (short.forecast_at_due, short.at_risk) == (55.0, True)  # 85 - 30
    assert short.risk_reason == "forecast 55 of 40 by 2027-02-21 at the last 14 days' rate (-0.5/day)"


def test_the_window_is_the_days_since_the_start_when_fewer_than_fourteen() -> None:
    day_4 = date(2026, 11, 27)  # 23rd to 27th: 5 days
    assert rate_window(START, day_4) == (START, 5)
    day_6 = date(2026, 11, 29)  # 23rd to 29th: 7 days, the minimum history; 84 days left
    forecast = _up(0.7, day_6, recent_delta=0.7)  # 0.1 a day: 0.7 + 8.4
    assert (forecast.rate_per_day, forecast.forecast_at_due) == (0.1, 9.1)
    assert forecast.risk_reason == "forecast 9.1 of 12 by 2027-02-21 at the last 7 days' rate (0.1/day)"


def test_the_window_is_at_least_today_even_before_the_start_date() -> None:
    assert rate_window(START, START) == (START, 1)
    assert rate_window(START, date(2026, 11, 20)) == (date(2026, 11, 20), 1)
    assert rate_window(START, DEC_23) == (date(2026, 12, 10), 14)


def test_a_new_key_result_without_outcomes_has_no_forecast_and_says_why() -> None:
    for day in range(7):
        forecast = _up(0, START + timedelta(days=day), recent_delta=0, points=0)
        assert (forecast.rate_per_day, forecast.forecast_at_due, forecast.at_risk) == (None, None, False)
    week_on = _up(0, START + timedelta(days=7), recent_delta=0, points=0)
    assert week_on.note == "forecast after 7 days and 3 data points; 8 days, 0 points so far"


def test_a_new_key_result_with_outcomes_on_its_first_day_has_no_forecast_yet() -> None:
    forecast = _up(0.1, START, recent_delta=0.1, points=1)  # today's rate alone would forecast 9.1
    assert (forecast.forecast_at_due, forecast.at_risk) == (None, False)
    assert forecast.note == "forecast after 7 days and 3 data points; 1 day, 1 point so far"


def test_a_short_key_result_is_judged_by_its_line_until_it_has_a_forecast() -> None:
    due = START + timedelta(days=6)  # expected 2 more each day; 0.6 is within the line
    quiet = [
        pace.standing_of(0, 12, 0, START, due, START + timedelta(days=n), recent_delta=0, points=0) for n in range(3)
    ]
    assert [(s.pace, s.at_risk) for s in quiet] == [("on_track", False), ("behind", True), ("behind", True)]
    assert quiet[1].risk_reason == "behind the line: 0 against 2 expected by today"


def test_an_achieved_key_result_is_never_at_risk_even_past_due() -> None:
    assert _up(12, DUE + timedelta(days=5), recent_delta=0) == pace.Forecast(0.0, 12.0, False, None)
    assert not forecast_of(100, 40, 39, START, DUE, DEC_23, recent_delta=0, points=0).at_risk


def test_an_overdue_key_result_is_at_risk_whatever_its_rate() -> None:
    forecast = _up(9, DUE + timedelta(days=1), recent_delta=14)
    assert (forecast.forecast_at_due, forecast.at_risk) == (9.0, True)  # no days left to gain
    assert forecast.risk_reason == "due 2027-02-21 passed at 9 of 12"


def test_on_the_due_date_the_forecast_is_the_current_value() -> None:
    forecast = _up(11.5, DUE, recent_delta=14)
    assert forecast.risk_reason == "forecast 11.5 of 12 by 2027-02-21 at the last 14 days' rate (1/day)"


# --- the rollup and the views ------------------------------------------------------------------


async def _setup(store: Store) -> None:
    """Outbound with goal G1: KR1 meetings 0 -> 12 (up), KR2 bounce rate 10 -> 2 (down), from 2026-11-23."""
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
        await goals.create_goal(
            tx,
            OPERATOR_CLI,
            agency="Outbound",
            title="Pipeline",
            key_results=[
                KeyResultSpec(metric="meetings", baseline=0, target=12, direction="up", due_date=DUE),
                KeyResultSpec(metric="bounce rate", baseline=10, target=2, direction="down", due_date=DUE),
            ],
        )


async def _log(store: Store, clock: FixedClock, at: datetime, *deltas: tuple[str, float]) -> None:
    clock.set(at)
    async with store.write() as tx:
        await outcomes.log_outcome(
            tx,
            AGENT,
            agency="Outbound",
            summary="Worked the list.",
            result="success",
            metrics=[outcomes.MetricDelta(key_result=kr, delta=d) for kr, d in deltas],
        )


def _morning(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 8, tzinfo=UTC)  # 09:00 in Berlin


async def _views(store: Store, clock: FixedClock, today: date) -> dict[str, goals.KeyResultView]:
    clock.set(_morning(today))
    async with store.read() as tx:
        return {kr.id: kr for goal in await goals.list_goals(tx, include_closed=True) for kr in goal.key_results}


async def _history(store: Store, clock: FixedClock) -> None:
    """Before the window of 2026-12-20: +1/-1 on Nov 23 and Nov 30. In it: two outcomes on Dec 7
    (+0.5/-1 each) and, at 00:30 Berlin on Dec 14 (still Dec 13 in UTC), +0.4/-0.8."""
    for day in (date(2026, 11, 23), date(2026, 11, 30)):
        await _log(store, clock, _morning(day), ("KR1", 1), ("KR2", -1))
    for _ in range(2):
        await _log(store, clock, _morning(date(2026, 12, 7)), ("KR1", 0.5), ("KR2", -1))
    await _log(store, clock, datetime(2026, 12, 13, 23, 30, tzinfo=UTC), ("KR1", 0.4), ("KR2", -0.8))


async def test_the_views_forecast_from_the_last_fourteen_local_days(store: Store, clock: FixedClock) -> None:
    await _setup(store)
    await _history(store, clock)
    views = await _views(store, clock, date(2026, 12, 20))  # window Dec 7 - Dec 20; 63 days left
    meetings, bounce = views["KR1"], views["KR2"]
    assert meetings.current == pytest.approx(3.4)
    assert (meetings.rate_per_day, meetings.forecast_at_due, meetings.at_risk) == (0.1, 9.7, True)  # 1.4 / 14
    assert meetings.risk_reason == "forecast 9.7 of 12 by 2027-02-21 at the last 14 days' rate (0.1/day)"
    assert bounce.current == pytest.approx(5.2)
    assert (bounce.rate_per_day, bounce.forecast_at_due, bounce.at_risk, bounce.risk_reason) == (
        -0.2,
        0.0,
        False,
        None,
    )  # -2.8 / 14; 5.2 - 12.6 would be -7.4, but a bounce rate from 10 toward 2 cannot fall below 0


async def test_a_day_leaves_the_window_the_next_morning(store: Store, clock: FixedClock) -> None:
    await _setup(store)
    await _history(store, clock)
    meetings = (await _views(store, clock, date(2026, 12, 21)))["KR1"]  # Dec 7 is out: 0.4 / 14
    assert (meetings.rate_per_day, meetings.forecast_at_due) == (0.029, 5.17)  # 3.4 + 0.02857 * 62


async def test_a_brand_new_goal_is_not_at_risk_until_a_week_passes(store: Store, clock: FixedClock) -> None:
    await _setup(store)
    assert not any(kr.at_risk for kr in (await _views(store, clock, START)).values())
    later = await _views(store, clock, START + timedelta(days=7))  # no forecast without data: the line judges
    assert later["KR2"].forecast_note == "forecast after 7 days and 3 data points; 8 days, 0 points so far"
    assert later["KR2"].risk_reason == "behind the line: 10 against 9.38 expected by today"


async def test_a_closed_goal_is_not_at_risk(store: Store, clock: FixedClock) -> None:
    await _setup(store)
    async with store.write() as tx:
        await goals.adjust_goal(tx, OPERATOR_CLI, "G1", status="dropped")
    views = await _views(store, clock, DUE + timedelta(days=3))
    assert [(kr.pace, kr.at_risk, kr.risk_reason) for kr in views.values()] == [("overdue", False, None)] * 2


async def test_the_rollup_keeps_local_days_and_agrees_with_outcome_metrics(store: Store, clock: FixedClock) -> None:
    await _setup(store)
    await _history(store, clock)
    async with store.read() as tx:
        kept = [tuple(r) for r in await tx.all("SELECT * FROM key_result_days ORDER BY key_result_id, day")]
        assert kept == await _rollup_from_outcomes(tx)
    assert (1, "2026-12-14", 0.4, 1) in kept and (2, "2026-12-07", -2.0, 2) in kept


async def _rollup_from_outcomes(tx: Tx) -> list[tuple[int, str, float, int]]:
    """What key_result_days should hold, recomputed from the outcome log in local days."""
    rows = await tx.all(
        "SELECT m.key_result_id, m.delta, o.created_at FROM outcome_metrics AS m "
        "JOIN outcomes AS o ON o.id = m.outcome_id ORDER BY o.id"
    )
    sums: dict[tuple[int, str], list[float]] = {}
    for row in rows:
        day = local_date(parse_ts(row["created_at"]), "Europe/Berlin").isoformat()
        sums.setdefault((row["key_result_id"], day), []).append(row["delta"])
    return [(kr, day, sum(deltas), len(deltas)) for (kr, day), deltas in sorted(sums.items())]


async def test_a_refused_outcome_writes_no_rollup_row(store: Store, clock: FixedClock) -> None:
    await _setup(store)
    with pytest.raises(NotFound, match="KR9"):
        await _log(store, clock, _morning(START), ("KR1", 1), ("KR9", 1))
    async with store.read() as tx:
        assert await tx.scalar("SELECT count(*) FROM key_result_days") == 0
        assert await tx.scalar("SELECT count(*) FROM outcomes") == 0


async def test_the_migration_backfills_the_rollup_from_outcome_metrics(store: Store, clock: FixedClock) -> None:
    await _setup(store)
    for day in (date(2026, 11, 23), date(2026, 11, 23), date(2026, 11, 30)):  # mornings: UTC day = local day
        await _log(store, clock, _morning(day), ("KR1", 1), ("KR2", -0.5))
    migration = next(m for m in migration_files() if m.name == "key_result_days")
    backfill = [s for s in split_statements(migration.sql) if s.startswith("INSERT")]
    async with store.write() as tx:
        kept = [tuple(r) for r in await tx.all("SELECT * FROM key_result_days ORDER BY key_result_id, day")]
        await tx.run("DELETE FROM key_result_days")
        for statement in backfill:
            await tx.run(statement)
        rebuilt = [tuple(r) for r in await tx.all("SELECT * FROM key_result_days ORDER BY key_result_id, day")]
    assert (
        rebuilt
        == kept
        == [
            (1, "2026-11-23", 2.0, 2),
            (1, "2026-11-30", 1.0, 1),
            (2, "2026-11-23", -1.0, 2),
            (2, "2026-11-30", -0.5, 1),
        ]
    )


async def test_list_goals_reads_every_key_results_window_in_one_statement(store: Store, clock: FixedClock) -> None:
    await _setup(store)
    await _history(store, clock)
    statements: list[str] = []
    async with store.read() as tx:
        tx.trace(statements.append)
        await goals.list_goals(tx)
        tx.trace(None)
    assert len(statements) == 2  # the workspace's timezone, then goals with key results and windows
    assert "key_result_days" in statements[1]
