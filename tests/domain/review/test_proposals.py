"""Review proposals: each kind fires at its threshold with hand-checked evidence, and not just below it.

The clock starts Monday 2026-11-23 08:00 UTC (09:00 in Berlin). The world: agency Outbound (A1)
with role SDR (R1). Key results start 2026-11-09 and are due 2026-12-21: on 23 November that is 14
days in (the whole 14-day rate window) with 28 days to go, so one delta d logged today forecasts
d + 28 x d/14 = 3d at the due date.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store, Tx
from chief_of_staff.domain import agencies, deciding, goals, inbox, outcomes, routines
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.goals import KeyResultSpec
from chief_of_staff.domain.outcomes import MetricDelta
from chief_of_staff.domain.review import adjustments, changesets, proposals
from chief_of_staff.domain.review.proposals import Proposal
from tests.conftest import START

pytestmark = pytest.mark.anyio

AGENCY = Actor("agency:Outbound/SDR", "agency")
BACKLOG_CHARTER = (
    "Work through Outbound's open backlog, oldest and most urgent first, so the inbox stops "
    "growing faster than it is worked."
)


def utc(day: int, hour: int = 8, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.fixture
async def world(store: Store) -> Store:
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", charter="Writes and sends")
    return store


async def found(store: Store, kind: str | None = None, **options: Any) -> list[Proposal]:
    async with store.read() as tx:
        return [p for p in await proposals.proposals(tx, **options) if kind is None or p.kind == kind]


# --- helpers that build state through the domain functions --------------------------------------


async def grant(store: Store, **fields: Any) -> None:
    async with store.write() as tx:
        await grants.create_grant(
            tx, OPERATOR_CLI, GrantSpec(**{"agency": "Outbound", "capability": "email.send", **fields})
        )


async def ask(store: Store, answers: Sequence[bool | None], amounts: Sequence[int] = ()) -> None:
    """One escalation per answer under an approve grant: approved, denied, or left unanswered (None)."""
    async with store.write() as tx:
        for index, answer in enumerate(answers):
            n = await tx.scalar("SELECT count(*) FROM decisions")
            view = await ledger.authorize(
                tx,
                AGENCY,
                agency="Outbound",
                role=None,
                capability="email.send",
                amount_cents=amounts[index] if amounts else 0,
                target=f"lead{n}@acme.com",
                task_id=None,
                idempotency_key=None,
            )
            assert view.answer == "needs_approval" and view.decision_id is not None
            if answer is not None:
                await deciding.decide(tx, OPERATOR_CLI, view.decision_id, approve=answer)


async def task(store: Store, **fields: Any) -> str:
    async with store.write() as tx:
        return (await inbox.add_task(tx, AGENCY, **{"title": "Work", "agency": "Outbound", **fields})).id


async def act_for(store: Store, task_id: str, capability: str = "email.send") -> None:
    async with store.write() as tx:
        n = await tx.scalar("SELECT count(*) FROM authorizations")
        view = await ledger.authorize(
            tx,
            AGENCY,
            agency="Outbound",
            role=None,
            capability=capability,
            amount_cents=0,
            target=f"lead{n}@acme.com",
            task_id=task_id,
            idempotency_key=None,
        )
        assert view.answer == "allowed"


async def complete(store: Store, task_id: str, result: str) -> None:
    async with store.write() as tx:
        await inbox.complete_task(tx, AGENCY, task_id, result=result, summary="Done")


async def log(store: Store, count: int = 1, **fields: Any) -> None:
    async with store.write() as tx:
        for _ in range(count):
            await outcomes.log_outcome(
                tx, AGENCY, **{"agency": "Outbound", "summary": "Worked", "result": "success", **fields}
            )


async def log_points(store: Store, key_result: str, delta: float) -> None:
    """Move a key result by `delta` in three outcomes (a half and two quarters, exact in binary): the
    minimum history's data points, so the key result has a forecast."""
    for part in (delta / 2, delta / 4, delta / 4):
        await log(store, metrics=[MetricDelta(key_result=key_result, delta=part)])


async def goal(store: Store, *specs: dict[str, Any]) -> None:
    """A goal of Outbound whose key results start 2026-11-09 and are due 2026-12-21 unless told."""
    async with store.write() as tx:
        await goals.create_goal(
            tx,
            OPERATOR_CLI,
            agency="Outbound",
            title="Pipeline",
            key_results=[
                KeyResultSpec(**{"unit": "", "start_date": "2026-11-09", "due_date": "2026-12-21", **spec})
                for spec in specs
            ],
        )


# --- grant_widen ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("cap", "proposed_cap"), [(5000, 2500), (1000, 1000), (None, 2500)])
async def test_five_approvals_in_a_row_propose_notify_within_the_largest_approved_amount(
    world: Store, cap: int | None, proposed_cap: int
) -> None:
    await grant(world, mode="approve", per_action_cap_cents=cap)
    # Newest last: five yeses, then one still waiting (neither a yes nor a no).
    await ask(world, [True, True, True, True, True, None], amounts=[1200, 2500, 800, 0, 1500, 9000])
    [hit] = await found(world, "grant_widen")
    assert hit.subject == "GR1"
    assert hit.evidence == {"approved_streak": 5, "denied": 0, "window_days": 90, "largest_approved_cents": 2500}
    assert hit.adjustment.model_dump() == {
        "tool": "update_grant",
        "arguments": {"grant_id": "GR1", "mode": "notify", "per_action_cap_cents": proposed_cap},
    }
    assert "last 5 times" in hit.message


async def test_four_approvals_are_not_yet_a_record(world: Store) -> None:
    await grant(world, mode="approve")
    await ask(world, [True] * 4)
    assert await found(world, "grant_widen") == []


@pytest.mark.parametrize(("days_ago", "fires"), [(89, False), (91, True)])
async def test_a_denial_inside_the_ninety_days_blocks_widening(
    world: Store, clock: FixedClock, days_ago: int, fires: bool
) -> None:
    clock.set(START - timedelta(days=100))
    await grant(world, mode="approve")
    clock.set(START - timedelta(days=days_ago))
    await ask(world, [False])
    clock.set(START)
    await ask(world, [True] * 5)
    hits = await found(world, "grant_widen")
    assert len(hits) == int(fires)
    if fires:  # amounts were 0: notify may act only at 0, as approved
        assert hits[0].adjustment.arguments == {"grant_id": "GR1", "mode": "notify", "per_action_cap_cents": 0}


@pytest.mark.parametrize(("oldest", "streak"), [(False, None), (True, 50)])
async def test_a_denial_older_than_the_fifty_decisions_read_still_counts(
    world: Store, oldest: bool, streak: int | None
) -> None:
    await grant(world, mode="approve")
    await ask(world, [oldest] + [True] * 50)
    hits = await found(world, "grant_widen")
    assert [h.evidence["approved_streak"] for h in hits] == ([streak] if streak else [])


async def test_an_approval_by_timeout_is_nobodys_answer(world: Store, clock: FixedClock) -> None:
    await grant(world, mode="approve", on_timeout="approve")
    await ask(world, [None])
    clock.advance(timedelta(hours=73))
    async with world.write() as tx:
        assert await ledger.expire_decisions(tx) == 1  # D1 approved by its timeout policy
    await ask(world, [True] * 4)
    assert await found(world, "grant_widen") == []


async def test_the_widen_adjustment_applies_through_update_grant(world: Store) -> None:
    await grant(world, mode="approve", per_action_cap_cents=5000)
    await ask(world, [True] * 5, amounts=[100, 200, 300, 400, 500])
    [hit] = await found(world, "grant_widen")
    arguments = {k: v for k, v in hit.adjustment.arguments.items() if k != "grant_id"}
    async with world.write() as tx:
        view = await grants.update_grant(tx, OPERATOR_CLI, hit.adjustment.arguments["grant_id"], **arguments)
    assert (view.mode, view.per_action_cap_cents, view.version) == ("notify", 500, 2)
    assert await found(world, "grant_widen") == []


# --- grant_narrow --------------------------------------------------------------------------------


async def test_failures_of_the_tasks_a_grant_served_count_once_per_outcome(world: Store, clock: FixedClock) -> None:
    await grant(world, mode="notify")
    clock.set(START - timedelta(days=15))
    old = await task(world)
    await act_for(world, old)  # served 15 days ago: outside the 14-day window
    clock.set(START)
    first, second, third, unserved = [await task(world) for _ in range(4)]
    await act_for(world, first)
    await act_for(world, first)  # two actions, one task: its outcomes count once each
    await act_for(world, second)
    await act_for(world, third)
    await log(world, result="failure", task_id=first)
    for task_id, result in (
        (first, "failure"),
        (second, "failure"),
        (third, "success"),
        (old, "failure"),
        (unserved, "failure"),
    ):
        await complete(world, task_id, result)
    [hit] = await found(world, "grant_narrow")
    # first: 2 failures; second: 1 failure; third: 1 success. old and unserved do not count.
    assert hit.subject == "GR1"
    assert hit.evidence == {"failures": 3, "outcomes": 4, "failure_share": 0.75, "window_days": 14}
    assert hit.adjustment.model_dump() == {"tool": "update_grant", "arguments": {"grant_id": "GR1", "mode": "approve"}}


@pytest.mark.parametrize(("failures", "successes", "share"), [(3, 6, 0.333), (2, 0, None), (3, 7, None)])
async def test_narrowing_needs_three_failures_and_a_third_of_the_outcomes(
    world: Store, failures: int, successes: int, share: float | None
) -> None:
    await grant(world, mode="auto")
    for result in ["failure"] * failures + ["success"] * successes:
        task_id = await task(world)
        await act_for(world, task_id)
        await complete(world, task_id, result)
    hits = await found(world, "grant_narrow")
    # 3 of 9 is exactly a third; 2 failures are too few; 3 of 10 is under a third.
    assert [h.evidence["failure_share"] for h in hits] == ([share] if share else [])


async def test_an_approve_grant_is_not_narrowed(world: Store) -> None:
    await grant(world, mode="approve")
    async with world.write() as tx:
        await grants.update_grant(tx, OPERATOR_CLI, "GR1", mode="auto")
    for _ in range(3):
        task_id = await task(world)
        await act_for(world, task_id)
        await complete(world, task_id, "failure")
    async with world.write() as tx:
        await grants.update_grant(tx, OPERATOR_CLI, "GR1", mode="approve")
    assert await found(world, "grant_narrow") == []


# --- goal_target ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("baseline", "target", "direction", "delta", "proposed"),
    [
        (0, 12, "up", 5, 15.0),  # forecast 15: 3 past 12, a quarter of the journey
        (0, 12, "up", 4.8, None),  # forecast 14.4: 20% past
        (0, 12, "up", 5.1, 15.0),  # forecast 15.3, rounded to a whole number
        (0, 12, "up", 3, 9.0),  # forecast 9: 25% short, but moved: aim at what it will do
        (0, 12, "up", 3.2, None),  # forecast 9.6: 20% short
        (0, 12, "up", -1, None),  # forecast -3: short, and not beyond the baseline
        (10, 4, "down", -2.5, 2.5),  # forecast 2.5: 1.5 past 4 (a quarter of 6), one decimal under 10
    ],
)
async def test_goal_target_follows_a_forecast_a_quarter_off(
    world: Store, baseline: float, target: float, direction: str, delta: float, proposed: float | None
) -> None:
    await goal(world, {"metric": "Meetings", "baseline": baseline, "target": target, "direction": direction})
    await log_points(world, "KR1", delta)
    hits = await found(world, "goal_target")
    assert [h.adjustment.arguments for h in hits] == (
        [{"goal_id": "G1", "key_results": [{"key_result": "KR1", "target": proposed}]}] if proposed else []
    )


async def test_goal_target_evidence_names_the_numbers(world: Store) -> None:
    await goal(world, {"metric": "Meetings", "unit": "meetings", "baseline": 0, "target": 12, "direction": "up"})
    await log_points(world, "KR1", 5)
    [hit] = await found(world, "goal_target")
    assert hit.subject == "KR1" and hit.adjustment.tool == "adjust_goal"
    assert hit.evidence == {
        "current": 5.0,
        "target": 12.0,
        "forecast_at_due": 15.0,
        "rate_per_day": 0.357,
        "due_date": "2026-12-21",
    }
    assert hit.message == (
        "KR1 Meetings of G1 (Outbound) is on course for 15 by 2026-12-21 at 0.357/day, 3 past "
        "its target of 12 (125% of the way from its baseline 0). Raise the target to 15."
    )


async def test_a_new_key_result_without_outcomes_is_left_alone(world: Store) -> None:
    await goal(
        world, {"metric": "Meetings", "baseline": 0, "target": 12, "direction": "up", "start_date": "2026-11-23"}
    )
    assert await found(world, "goal_target") == []
    assert await found(world, "routine_add") == []  # in its grace period: not at risk, not behind


# --- routine_add ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("routine", "fires"), [(None, True), ("active", False), ("paused", True)])
async def test_a_lagging_key_result_without_an_active_routine_gets_one(
    world: Store, routine: str | None, fires: bool
) -> None:
    await goal(world, {"metric": "Meetings", "unit": "meetings", "baseline": 0, "target": 12, "direction": "up"})
    if routine:
        async with world.write() as tx:
            view = await routines.add_routine(
                tx, OPERATOR_CLI, agency="Outbound", title="Book", schedule="daily", key_result="KR1"
            )
            if routine == "paused":
                await routines.set_active(tx, OPERATOR_CLI, view.id, active=False)
    hits = await found(world, "routine_add")
    assert len(hits) == int(fires)
    if fires:
        # Day 14 of 42: 4 expected, 0 done.
        assert hits[0].subject == "KR1"
        assert hits[0].evidence == {"pace": "behind", "behind_by": 4.0}  # nothing logged: no forecast
        assert hits[0].adjustment.model_dump() == {
            "tool": "add_routine",
            "arguments": {
                "agency": "Outbound",
                "title": "Move Meetings toward 12 meetings",
                "priority": "P1",
                "schedule": "weekdays",
                "goal_id": "G1",
                "key_result_id": "KR1",
            },
        }


@pytest.mark.parametrize(("delta", "fires"), [(3.8, True), (4, False)])
async def test_a_key_result_on_the_line_but_forecast_short_gets_a_routine(
    world: Store, delta: float, fires: bool
) -> None:
    await goal(world, {"metric": "Meetings", "baseline": 0, "target": 12, "direction": "up"})
    await log_points(world, "KR1", delta)
    hits = await found(world, "routine_add")
    # 3.8 is within 5% of the 4 expected (on the line) but forecasts 11.4 < 12: at risk; 4 forecasts 12.
    assert [(h.evidence["pace"], h.evidence["forecast_at_due"]) for h in hits] == ([("at_risk", 11.4)] if fires else [])
    assert all(h.adjustment.arguments["title"] == "Move Meetings toward 12" for h in hits)


# --- routine_drop --------------------------------------------------------------------------------


async def _routine_runs(store: Store, clock: FixedClock, results: Sequence[str]) -> None:
    """A daily routine from 20 November; one task a day, closed as told (oldest first)."""
    clock.set(utc(20))
    async with store.write() as tx:
        await routines.add_routine(tx, OPERATOR_CLI, agency="Outbound", title="Research 20 leads", schedule="daily")
    for offset, result in enumerate(results):
        clock.set(utc(24 - len(results) + offset))
        async with store.write() as tx:
            assert await routines.materialize_routines(tx, AGENCY) == 1
        label = f"T{offset + 1}"
        if result == "cancelled":
            async with store.write() as tx:
                await inbox.update_task(tx, AGENCY, label, status="cancelled")
        elif result != "open":
            await complete(store, label, result)
    clock.set(START)


async def test_a_routine_whose_last_four_runs_never_ended_done_is_paused(world: Store, clock: FixedClock) -> None:
    await _routine_runs(world, clock, ["failure", "cancelled", "failure", "open"])
    [hit] = await found(world, "routine_drop")
    assert hit.subject == "RT1"
    assert hit.evidence == {"runs": 4, "done": 0, "statuses": "open,failed,cancelled,failed"}
    assert hit.adjustment.model_dump() == {"tool": "set_routine", "arguments": {"routine_id": "RT1", "active": False}}


@pytest.mark.parametrize("results", [["failure", "success", "failure", "open"], ["failure", "failure", "open"]])
async def test_one_done_run_or_fewer_than_four_runs_keep_a_routine(
    world: Store, clock: FixedClock, results: list[str]
) -> None:
    await _routine_runs(world, clock, results)
    assert await found(world, "routine_drop") == []


# --- role_retire ---------------------------------------------------------------------------------


async def _researcher(store: Store, clock: FixedClock, age: timedelta) -> None:
    clock.set(START - age)
    async with store.write() as tx:
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="Researcher", charter="Finds leads")
    clock.set(START)


async def test_a_role_idle_for_four_weeks_is_retired(world: Store, clock: FixedClock) -> None:
    await _researcher(world, clock, timedelta(days=28))
    [hit] = await found(world, "role_retire")
    assert hit.subject == "R2"
    assert hit.evidence == {"idle_days": 28, "unfinished_tasks": 0, "outcomes": 0}
    assert hit.adjustment.model_dump() == {
        "tool": "set_role",
        "arguments": {"agency": "Outbound", "name": "Researcher", "status": "retired"},
    }


@pytest.mark.parametrize(
    ("worked_at", "fires"),
    [
        (datetime(2026, 10, 26, 8, 0, tzinfo=UTC), False),  # in the quarter hour 28 days back: counts
        (datetime(2026, 10, 26, 7, 59, tzinfo=UTC), True),  # the quarter hour before: idle
    ],
)
async def test_an_outcome_in_the_last_four_weeks_keeps_a_role(
    world: Store, clock: FixedClock, worked_at: datetime, fires: bool
) -> None:
    await _researcher(world, clock, timedelta(days=40))
    clock.set(worked_at)
    await log(world, role="Researcher")
    # 08:10 now: 28 days back is 26 October 08:10, in the rollup's quarter hour 08:00-08:15.
    clock.set(START + timedelta(minutes=10))
    assert len(await found(world, "role_retire")) == int(fires)


@pytest.mark.parametrize(("status", "fires"), [("open", False), ("blocked", False), ("cancelled", True)])
async def test_an_unfinished_task_keeps_a_role(world: Store, clock: FixedClock, status: str, fires: bool) -> None:
    await _researcher(world, clock, timedelta(days=40))
    task_id = await task(world, role="Researcher")
    if status != "open":
        async with world.write() as tx:
            await inbox.update_task(tx, AGENCY, task_id, status=status)
    assert len(await found(world, "role_retire")) == int(fires)


async def test_a_role_younger_than_four_weeks_is_kept(world: Store, clock: FixedClock) -> None:
    await _researcher(world, clock, timedelta(days=27, hours=23))
    assert await found(world, "role_retire") == []


# --- role_add ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("open_tasks", "recent", "fires"), [(15, 5, True), (14, 0, False), (15, 6, False)])
async def test_a_backlog_three_weeks_deep_proposes_a_role(
    world: Store, clock: FixedClock, open_tasks: int, recent: int, fires: bool
) -> None:
    clock.set(utc(16, 12))  # 16 November in Berlin: outside the last 7 local days (17..23)
    await log(world, 10)
    clock.set(utc(17, 12))
    await log(world, recent)
    clock.set(START)
    for _ in range(open_tasks):
        await task(world)
    hits = await found(world, "role_add")
    assert len(hits) == int(fires)
    if fires:
        assert hits[0].subject == "A1"
        assert hits[0].evidence == {"open_tasks": 15, "outcomes_7d": 5}
        assert hits[0].adjustment.model_dump() == {
            "tool": "set_role",
            "arguments": {"agency": "Outbound", "name": "Backlog", "charter": BACKLOG_CHARTER},
        }


async def test_the_backlog_role_takes_a_free_name(world: Store) -> None:
    async with world.write() as tx:
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="backlog", charter="Old")
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="Backlog 2", charter="Old")
    for _ in range(15):
        await task(world)
    [hit] = await found(world, "role_add")
    assert hit.adjustment.arguments["name"] == "Backlog 3"


async def test_today_anchors_the_backlog_week(world: Store, clock: FixedClock) -> None:
    clock.set(utc(16, 12))
    await log(world, 6)
    clock.set(START)
    for _ in range(15):
        await task(world)
    assert len(await found(world, "role_add")) == 1  # today: the 6 outcomes are outside 17..23
    assert await found(world, "role_add", today=date(2026, 11, 22)) == []  # 16..22 holds them: 15 < 3 x 6


# --- all kinds together --------------------------------------------------------------------------


@pytest.fixture
async def busy(store: Store, clock: FixedClock) -> Store:
    """Every kind fires once: GR1 widen, GR2 narrow, KR1 target, KR2 routine, RT1 drop, A1 role, R1 retire."""
    clock.set(START - timedelta(days=30))
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="Researcher", charter="Finds leads")
    await _routine_runs(store, clock, ["failure", "failure", "failure", "open"])
    await goal(
        store,
        {"metric": "Meetings", "baseline": 0, "target": 12, "direction": "up"},
        {"metric": "Demos", "baseline": 0, "target": 6, "direction": "up"},
    )
    await log_points(store, "KR1", 5)
    await grant(store, mode="approve")
    await ask(store, [True] * 5)
    await grant(store, capability="crm.update", mode="auto")
    for _ in range(3):
        task_id = await task(store)
        await act_for(store, task_id, "crm.update")
        await complete(store, task_id, "failure")
    for _ in range(26):  # with RT1's open run: 27 open, 3 x the week's 9 outcomes (3 + 3 routine + 3 logged)
        await task(store)
    return store


async def test_proposals_come_by_kind_then_subject(busy: Store) -> None:
    found_all = await found(busy)
    assert [(p.kind, p.subject) for p in found_all] == [
        ("grant_widen", "GR1"),
        ("grant_narrow", "GR2"),
        ("goal_target", "KR1"),
        ("routine_add", "KR2"),
        ("routine_drop", "RT1"),
        ("role_add", "A1"),
        ("role_retire", "R1"),
    ]


async def test_proposals_write_nothing(busy: Store) -> None:
    async with busy.write() as tx:
        before = (await tx.scalar("SELECT count(*) FROM audit_log"), await tx.scalar("SELECT total_changes()"))
        assert len(await proposals.proposals(tx)) == 7
        after = (await tx.scalar("SELECT count(*) FROM audit_log"), await tx.scalar("SELECT total_changes()"))
    assert after == before


async def test_every_adjustment_is_accepted_as_sent(busy: Store) -> None:
    found_all = await found(busy)
    async with busy.write() as tx:
        for index, proposal in enumerate(found_all):
            tool, arguments = proposal.adjustment.tool, proposal.adjustment.arguments
            parsed = adjustments.parse_arguments(tool, arguments, f"proposals[{index}]")
            await adjustments.apply(tx, OPERATOR_CLI, tool, parsed)
    # Accepted, each one is answered: only the backlog remains (and the new Backlog role is taken).
    [left] = await found(busy)
    assert (left.kind, left.adjustment.arguments["name"]) == ("role_add", "Backlog 2")


async def test_a_backlog_role_accepted_in_a_review_has_its_week_before_another_is_proposed(
    world: Store, clock: FixedClock
) -> None:
    for _ in range(15):
        await task(world)
    [first] = await found(world, "role_add")
    async with world.write() as tx:
        await changesets.record_review(tx, OPERATOR_CLI, adjustments=[first.adjustment])
    assert await found(world, "role_add") == []  # the new role has its week
    clock.advance(timedelta(days=7, seconds=1))
    [again] = await found(world, "role_add")
    assert again.adjustment.arguments["name"] == "Backlog 2"
    async with world.write() as tx:  # undone, the role is gone again: the backlog is proposed at once
        await changesets.record_review(tx, OPERATOR_CLI, adjustments=[again.adjustment])
        await changesets.revert_change_set(tx, OPERATOR_CLI, "CS2")
    assert [p.adjustment.arguments["name"] for p in await found(world, "role_add")] == ["Backlog 3"]


BIG_TABLES = (
    "outcomes",
    "outcome_metrics",
    "authorizations",
    "tasks",
    "decisions",
    "audit_log",
    "agency_days",
    "key_result_days",
    "role_quarter_hours",
)


async def test_proposals_never_scan_a_big_table(busy: Store) -> None:
    statements: list[str] = []
    async with busy.write() as tx:
        tx.trace(statements.append)
        await proposals.proposals(tx)
        tx.trace(None)
        plans = {sql: await _plan(tx, sql) for sql in statements if sql.startswith("SELECT")}
    aliases = {"t", "o", "d", "q"}  # tasks, outcomes, agency_days and role_quarter_hours as the queries name them
    scans = {
        sql[:60]: line
        for sql, lines in plans.items()
        for line in lines
        if (m := re.match(r"SCAN (\w+)", line)) and (m.group(1) in BIG_TABLES or m.group(1) in aliases)
    }
    assert len(plans) >= 10 and scans == {}


async def _plan(tx: Tx, sql: str) -> list[str]:
    return [row["detail"] for row in await tx.all("EXPLAIN QUERY PLAN " + sql)]
