"""Goals and key results: validation, operator-only changes, progress and pace from the rollup."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound, OperatorActRefused
from chief_of_staff.domain import agencies, goals
from chief_of_staff.domain.goals import KeyResultChange, KeyResultSpec
from chief_of_staff.domain.pace import pace_of

pytestmark = pytest.mark.anyio

AGENCY = Actor("Outbound", "agency")
START, DUE = date(2026, 11, 23), date(2027, 2, 21)  # 90 days apart


def _kr(**fields: Any) -> dict[str, Any]:
    return {
        "metric": "Meetings booked",
        "unit": "meetings",
        "baseline": 0,
        "target": 12,
        "direction": "up",
        "due_date": "2027-02-21",
        **fields,
    }


async def _agency(tx: Tx, name: str = "Outbound") -> None:
    await agencies.create_agency(tx, OPERATOR_CLI, name=name, purpose="Book meetings")


async def _goal(tx: Tx, *specs: dict[str, Any]) -> goals.GoalView:
    return await goals.create_goal(
        tx,
        OPERATOR_CLI,
        agency="Outbound",
        title="Pipeline",
        key_results=[KeyResultSpec(**s) for s in specs or (_kr(),)],
    )


async def _counts(store: Store) -> tuple[int, ...]:
    async with store.read() as tx:
        return tuple([await tx.scalar(f"SELECT count(*) FROM {t}") for t in ("audit_log", "goals", "key_results")])


async def _last_audit(store: Store) -> dict[str, Any]:
    async with store.read() as tx:
        row = await tx.one("SELECT * FROM audit_log ORDER BY id DESC LIMIT 1")
    assert row is not None
    return {**dict(row), "detail": json.loads(row["detail"])}


# --- pace_of: hand-checked arithmetic ------------------------------------------------------------


def test_pace_a_month_into_a_quarter_with_a_quarter_of_the_target_is_behind() -> None:
    pace = pace_of(0, 12, 3, START, DUE, date(2026, 12, 23))  # 30 of 90 days: expect 4
    assert (pace.progress, pace.expected_now, pace.pace, pace.behind_by) == (0.25, 4.0, "behind", 1.0)


def test_pace_within_five_percent_of_the_journey_is_on_track() -> None:
    # Tolerance is 5% of 12 = 0.6: 3.5 is 0.5 short of 4, 4.5 is 0.5 ahead.
    assert pace_of(0, 12, 3.5, START, DUE, date(2026, 12, 23)).pace == "on_track"
    assert pace_of(0, 12, 4.5, START, DUE, date(2026, 12, 23)).pace == "on_track"
    ahead = pace_of(0, 12, 5, START, DUE, date(2026, 12, 23))
    assert (ahead.pace, ahead.behind_by) == ("ahead", 0.0)


def test_pace_of_a_down_key_result_counts_falling_as_progress() -> None:
    # 100 -> 40 over 90 days; after 30 days the line is at 80.
    behind = pace_of(100, 40, 85, START, DUE, date(2026, 12, 23))
    assert (behind.progress, behind.expected_now, behind.pace, behind.behind_by) == (0.25, 80.0, "behind", 5.0)
    assert pace_of(100, 40, 70, START, DUE, date(2026, 12, 23)).pace == "ahead"
    assert pace_of(100, 40, 78, START, DUE, date(2026, 12, 23)).pace == "on_track"


def test_pace_past_the_due_date_without_the_target_is_overdue() -> None:
    pace = pace_of(0, 12, 9, START, DUE, date(2027, 3, 1))
    assert (pace.progress, pace.expected_now, pace.pace, pace.behind_by) == (0.75, 12.0, "overdue", 3.0)


def test_pace_at_or_beyond_the_target_is_achieved_even_when_late() -> None:
    assert pace_of(0, 12, 12, START, DUE, date(2026, 12, 1)).pace == "achieved"
    late = pace_of(100, 40, 35, START, DUE, date(2027, 6, 1))
    assert (late.pace, late.progress, late.behind_by) == ("achieved", 1.083, 0.0)


def test_pace_before_the_start_expects_the_baseline() -> None:
    pace = pace_of(10, 20, 10, START, DUE, date(2026, 11, 1))
    assert (pace.progress, pace.expected_now, pace.pace, pace.behind_by) == (0.0, 10.0, "on_track", 0.0)


def test_pace_rounds_progress_to_three_places_and_amounts_to_two() -> None:
    pace = pace_of(0, 3, 1, START, DUE, date(2026, 12, 3))  # 10/90 of 3 = 0.3333…
    assert (pace.progress, pace.expected_now, pace.behind_by) == (0.333, 0.33, 0.0)


# --- creating goals ------------------------------------------------------------------------------


async def test_create_goal_starts_each_key_result_at_its_baseline_today(store: Store) -> None:
    async with store.write() as tx:
        await _agency(tx)
        view = await _goal(
            tx,
            _kr(),
            _kr(metric="Reply time", unit="hours", baseline=48, target=24, direction="down", start_date="2026-11-01"),
        )
    assert (view.id, view.agency, view.title, view.status) == ("G1", "Outbound", "Pipeline", "active")
    meetings, replies = view.key_results
    assert (meetings.id, meetings.start_date, meetings.due_date, meetings.current) == (
        "KR1",
        "2026-11-23",
        "2027-02-21",
        0.0,
    )
    assert (meetings.progress, meetings.expected_now, meetings.pace) == (0.0, 0.0, "on_track")
    assert (replies.id, replies.start_date, replies.direction) == ("KR2", "2026-11-01", "down")
    last = await _last_audit(store)
    assert (last["action"], last["subject"], len(last["detail"]["key_results"])) == ("goal.create", "G1", 2)


async def test_goal_pace_follows_the_clock(store: Store, clock: FixedClock) -> None:
    async with store.write() as tx:
        await _agency(tx)
        await _goal(tx)
    clock.advance(timedelta(days=30))
    async with store.read() as tx:
        kr = (await goals.get_goal(tx, "G1")).key_results[0]
    assert (kr.expected_now, kr.pace, kr.behind_by) == (4.0, "behind", 4.0)


def test_key_result_spec_refuses_bools_and_non_finite_numbers() -> None:
    for bad in (True, float("nan"), float("inf"), "3"):
        with pytest.raises(ValidationError):
            KeyResultSpec(**_kr(target=bad))


@pytest.mark.parametrize(
    ("key_results", "message"),
    [
        ([], "key_results: send 1 to 10"),
        ([_kr(metric=f"m{n}") for n in range(11)], "key_results: send 1 to 10"),
        ([_kr(), _kr(metric="MEETINGS BOOKED")], r"key_results\[1\].metric: 'MEETINGS BOOKED' appears twice"),
        ([_kr(target=float("nan"))], r"key_results\[0\].target: .*finite number"),
        ([_kr(baseline=float("-inf"))], r"key_results\[0\].baseline: .*finite number"),
        ([_kr(target=True)], r"key_results\[0\].target: .*plain number"),
        (
            [_kr(target=1e13)],
            r"key_results\[0\].target: .*too large; send a number from -1,000,000,000,000 to 1,000,000,000,000",
        ),
        ([_kr(baseline=-1e308)], r"key_results\[0\].baseline: .*too large; send a number from -1,000,000,000,000"),
        ([_kr(due_date="9999-12-31")], r"key_results\[0\].due_date: .*send a date from 1900-01-01 to 2199-12-31"),
        ([_kr(start_date="1800-01-01")], r"key_results\[0\].start_date: .*send a date from 1900-01-01"),
        (
            [_kr(), _kr(metric="ＭＥＥＴＩＮＧＳ ＢＯＯＫＥＤ")],
            r"key_results\[1\].metric: 'MEETINGS BOOKED' appears twice",
        ),
        ([_kr(metric="Meet\u200bings")], r"key_results\[0\].metric: .*invisible or control character U\+200B"),
        ([_kr(target=0)], r"key_results\[0\].target: an 'up' key result needs a target above its baseline"),
        ([_kr(direction="down")], r"key_results\[0\].target: a 'down' key result needs a target below"),
        ([_kr(due_date="2026-11-23")], r"key_results\[0\].due_date: 2026-11-23 must be after the start date"),
        ([_kr(), _kr(metric="x", start_date="2027-03-01")], r"key_results\[1\].due_date"),
        ([_kr(due_date="next week")], r"key_results\[0\].due_date: .*YYYY-MM-DD"),
        ([_kr(colour="red")], r"key_results\[0\].colour"),
    ],
)
async def test_invalid_key_results_write_nothing(store: Store, key_results: list[dict[str, Any]], message: str) -> None:
    async with store.write() as tx:
        await _agency(tx)
    before = await _counts(store)
    with pytest.raises(InvalidInput, match=message):
        async with store.write() as tx:
            await goals.create_goal(tx, OPERATOR_CLI, agency="Outbound", title="Pipeline", key_results=key_results)  # type: ignore[arg-type]
    assert await _counts(store) == before


@pytest.mark.parametrize(
    ("actor", "fields", "error", "message"),
    [
        (AGENCY, {}, OperatorActRefused, "Setting a goal is an operator decision.*chief-of-staff goal create"),
        (OPERATOR_CLI, {"agency": "Ghost"}, NotFound, "agency: there is no agency 'Ghost'"),
        (OPERATOR_CLI, {"title": " "}, InvalidInput, "title: must not be empty"),
        (OPERATOR_CLI, {"description": "d" * 4001}, InvalidInput, "description: 4001 characters is too long"),
    ],
)
async def test_refused_goals_write_nothing(
    store: Store, actor: Actor, fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    async with store.write() as tx:
        await _agency(tx)
    before = await _counts(store)
    with pytest.raises(error, match=message):
        async with store.write() as tx:
            await goals.create_goal(
                tx, actor, **{"agency": "Outbound", "title": "Pipeline", "key_results": [_kr()], **fields}
            )
    assert await _counts(store) == before


async def test_a_retired_agency_gets_no_new_goals(store: Store) -> None:
    async with store.write() as tx:
        await _agency(tx)
        await agencies.update_agency(tx, OPERATOR_CLI, "Outbound", status="retired")
    before = await _counts(store)
    with pytest.raises(Conflict, match="Outbound is retired"):
        async with store.write() as tx:
            await _goal(tx)
    assert await _counts(store) == before


# --- lookups and lists ---------------------------------------------------------------------------


async def test_goals_and_key_results_resolve_by_short_id(store: Store) -> None:
    async with store.write() as tx:
        await _agency(tx)
        await _goal(tx)
        assert (await goals.resolve_goal(tx, "g1"))["title"] == "Pipeline"
        kr = await goals.resolve_key_result(tx, "KR1")
        assert (kr["metric"], kr["goal_id"], kr["agency_id"], kr["goal_status"]) == ("Meetings booked", 1, 1, "active")
        with pytest.raises(NotFound, match=r"goal: there is no goal G9\. Call list_goals"):
            await goals.resolve_goal(tx, "G9")
        with pytest.raises(NotFound, match="key_result: there is no key result KR9"):
            await goals.resolve_key_result(tx, "KR9")
        with pytest.raises(InvalidInput, match="grant_goal: 'T4' is not a goal id"):
            await goals.resolve_goal(tx, "T4", field="grant_goal")


async def test_list_goals_filters_by_agency_and_hides_closed_goals(store: Store) -> None:
    async with store.write() as tx:
        await _agency(tx)
        await _agency(tx, "Inbox")
        await _goal(tx)
        await _goal(tx, _kr(metric="Replies"))
        await goals.create_goal(tx, OPERATOR_CLI, agency="inbox", title="Zero inbox", key_results=[_kr()])
        await goals.adjust_goal(tx, OPERATOR_CLI, "G2", status="dropped")
        assert [g.id for g in await goals.list_goals(tx)] == ["G1", "G3"]
        assert [g.id for g in await goals.list_goals(tx, agency="Outbound")] == ["G1"]
        assert [g.id for g in await goals.list_goals(tx, agency="A1", include_closed=True)] == ["G1", "G2"]
        assert [kr.id for kr in (await goals.list_goals(tx, agency="Inbox"))[0].key_results] == ["KR3"]


# --- adjusting goals -----------------------------------------------------------------------------


async def test_adjust_goal_moves_a_target_and_records_the_old_one(store: Store) -> None:
    async with store.write() as tx:
        await _agency(tx)
        await _goal(tx)
        view = await goals.adjust_goal(
            tx, OPERATOR_CLI, "G1", title="Pipeline Q1", key_results=[KeyResultChange(key_result="KR1", target=20)]
        )
    assert (view.title, view.key_results[0].target) == ("Pipeline Q1", 20.0)
    last = await _last_audit(store)
    assert (last["action"], last["subject"], last["detail"]["title"]) == ("goal.adjust", "G1", "Pipeline Q1")
    assert last["detail"]["key_results"] == [
        {
            "changed": "KR1",
            "target": 20.0,
            "due_date": "2027-02-21",
            "unit": "meetings",
            "was": {"target": 12.0, "due_date": "2027-02-21", "unit": "meetings"},
        }
    ]


async def test_adjust_goal_adds_a_key_result_by_new_metric_name(store: Store) -> None:
    async with store.write() as tx:
        await _agency(tx)
        await _goal(tx)
        view = await goals.adjust_goal(
            tx,
            OPERATOR_CLI,
            "G1",
            key_results=[
                {"key_result": "Replies", "baseline": 0, "target": 40, "direction": "up", "due_date": "2027-01-31"},
                {"key_result": "meetings booked", "due_date": "2027-03-31"},
            ],
        )  # type: ignore[list-item]
    assert [(kr.id, kr.metric, kr.due_date) for kr in view.key_results] == [
        ("KR1", "Meetings booked", "2027-03-31"),
        ("KR2", "Replies", "2027-01-31"),
    ]
    assert (await _last_audit(store))["detail"]["key_results"][0]["added"]["id"] == "KR2"


async def test_closing_a_goal_is_audited_once(store: Store) -> None:
    async with store.write() as tx:
        await _agency(tx)
        await _goal(tx)
    before = await _counts(store)
    async with store.write() as tx:
        view = await goals.adjust_goal(tx, Actor("operator", "chat"), "G1", status="achieved")
    assert view.status == "achieved"
    assert (await _counts(store))[0] == before[0] + 1
    last = await _last_audit(store)
    assert (last["detail"], last["channel"]) == ({"status": "achieved", "key_results": []}, "chat")


@pytest.mark.parametrize(
    ("actor", "goal", "fields", "error", "message"),
    [
        (AGENCY, "G1", {"title": "x"}, OperatorActRefused, "Changing a goal is an operator decision"),
        (OPERATOR_CLI, "G9", {"title": "x"}, NotFound, "goal: there is no goal G9"),
        (OPERATOR_CLI, "G1", {}, InvalidInput, "Nothing to change"),
        (OPERATOR_CLI, "G1", {"status": "paused"}, InvalidInput, "status: 'paused' is not a goal status"),
        (
            OPERATOR_CLI,
            "G1",
            {"key_results": [{"key_result": "KR1", "target": -1}]},
            InvalidInput,
            r"key_results\[0\].target: an 'up' key result needs a target above",
        ),
        (
            OPERATOR_CLI,
            "G1",
            {"key_results": [{"key_result": "KR1", "baseline": 5}]},
            InvalidInput,
            r"key_results\[0\].baseline: an existing key result keeps its baseline",
        ),
        (
            OPERATOR_CLI,
            "G1",
            {"key_results": [{"key_result": "KR1", "target": 12}]},
            InvalidInput,
            r"key_results\[0\]: nothing changes for KR1",
        ),
        (
            OPERATOR_CLI,
            "G1",
            {"key_results": [{"key_result": "KR2", "target": 30}]},
            InvalidInput,
            r"key_results\[0\].key_result: KR2 belongs to goal G2, not G1",
        ),
        (
            OPERATOR_CLI,
            "G1",
            {"key_results": [{"key_result": "KR7", "target": 30}]},
            NotFound,
            r"key_results\[0\].key_result: there is no key result KR7",
        ),
        (
            OPERATOR_CLI,
            "G1",
            {"key_results": [{"key_result": "Bounces", "target": 30}]},
            InvalidInput,
            r"key_results\[0\]: 'Bounces' is a new metric .* send baseline, direction, due_date",
        ),
        (
            OPERATOR_CLI,
            "G1",
            {"key_results": [{"key_result": "KR1", "target": float("nan")}]},
            InvalidInput,
            r"key_results\[0\].target: .*finite",
        ),
        (
            OPERATOR_CLI,
            "G1",
            {"key_results": [{"key_result": "KR1", "target": 1e308}]},
            InvalidInput,
            r"key_results\[0\].target: .*too large; send a number from -1,000,000,000,000 to 1,000,000,000,000",
        ),
        (
            OPERATOR_CLI,
            "G1",
            {"key_results": [{"key_result": "KR1", "due_date": "9999-12-31"}]},
            InvalidInput,
            r"key_results\[0\].due_date: .*send a date from 1900-01-01 to 2199-12-31",
        ),
        (
            OPERATOR_CLI,
            "G1",
            {
                "title": "ok",
                "key_results": [{"key_result": "KR1", "target": 30}, {"key_result": "KR1", "due_date": "2026-11-01"}],
            },
            InvalidInput,
            r"key_results\[1\].due_date: 2026-11-01 must be after the start date",
        ),
        (
            OPERATOR_CLI,
            "G1",
            {
                "key_results": [
                    {"key_result": f"m{n}", "baseline": 0, "target": 1, "direction": "up", "due_date": "2027-01-01"}
                    for n in range(10)
                ]
            },
            InvalidInput,
            r"key_results\[9\]: a goal has at most 10 key results",
        ),
    ],
)
async def test_refused_goal_adjustments_write_nothing(
    store: Store, actor: Actor, goal: str, fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    async with store.write() as tx:
        await _agency(tx)
        await _goal(tx)
        await _goal(tx, _kr(metric="Replies"))
    async with store.read() as tx:
        before_rows = [dict(r) for r in await tx.all("SELECT * FROM key_results")]
    before = await _counts(store)
    with pytest.raises(error, match=message):
        async with store.write() as tx:
            await goals.adjust_goal(tx, actor, goal, **fields)
    assert await _counts(store) == before
    async with store.read() as tx:
        assert [dict(r) for r in await tx.all("SELECT * FROM key_results")] == before_rows
