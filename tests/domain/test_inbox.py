"""The inbox: claim order, dependencies, leases, routines, completion through the outcome log."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import anyio
import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound
from chief_of_staff.domain import agencies, deciding, goals, inbox, routines
from chief_of_staff.domain.goals import KeyResultSpec
from chief_of_staff.domain.inbox import TaskView
from chief_of_staff.domain.outcomes import MetricDelta

pytestmark = pytest.mark.anyio

SDR = Actor("outbound-sdr", "agency")
RESEARCHER = Actor("outbound-researcher", "agency")


@pytest.fixture
async def world(store: Store) -> Store:
    """Outbound (A1) with roles SDR (R1) and Researcher (R2), goal G1 with KR1; Content (A2) with goal G2/KR2."""
    async with store.write() as tx:
        for name in ("Outbound", "Content"):
            await agencies.create_agency(tx, OPERATOR_CLI, name=name, purpose=f"{name} work")
            await goals.create_goal(
                tx,
                OPERATOR_CLI,
                agency=name,
                title=f"{name} goal",
                key_results=[
                    KeyResultSpec(metric="meetings", baseline=0, target=10, direction="up", due_date=date(2026, 12, 31))
                ],
            )
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", charter="Books meetings")
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="Researcher", charter="Finds leads")
    return store


async def add(store: Store, title: str, **fields: Any) -> TaskView:
    fields.setdefault("agency", "Outbound")
    async with store.write() as tx:
        return await inbox.add_task(tx, SDR, title=title, **fields)


async def claim(store: Store, actor: Actor = SDR, **filters: Any) -> TaskView | None:
    async with store.write() as tx:
        return await inbox.claim_next_task(tx, actor, **filters)


async def claim_all(store: Store, **filters: Any) -> list[str]:
    claimed = []
    while (task := await claim(store, **filters)) is not None:
        claimed.append(task.id)
    return claimed


async def complete(store: Store, task: str, result: str = "success", **fields: Any) -> TaskView:
    async with store.write() as tx:
        view, _ = await inbox.complete_task(tx, SDR, task, result=result, summary="Did it", **fields)
    return view


async def audit_rows(store: Store, action: str | None = None) -> list[dict[str, Any]]:
    async with store.read() as tx:
        rows = await tx.all("SELECT action, subject, actor, detail FROM audit_log ORDER BY id")
    return [dict(r) | {"detail": json.loads(r["detail"])} for r in rows if action in (None, r["action"])]


async def refused(store: Store, error: type[Exception], match: str, call: Callable[[Tx], Awaitable[Any]]) -> None:
    """The call raises `error` and leaves the audit log (so every change) as it was."""
    before = len(await audit_rows(store))
    with pytest.raises(error, match=match):
        async with store.write() as tx:
            await call(tx)
    assert len(await audit_rows(store)) == before


# --- claim order and dependencies --------------------------------------------------------------------


async def test_claim_order_is_priority_then_due_date_then_age(world: Store) -> None:
    await add(world, "P2 undated")  # T1
    await add(world, "P1 due later", priority="P1", due_on="2026-12-01")  # T2
    await add(world, "P1 due soon", priority="P1", due_on="2026-11-25")  # T3
    await add(world, "P1 undated", priority="P1")  # T4
    await add(world, "P0 due late", priority="P0", due_on="2027-01-31")  # T5
    await add(world, "P1 due soon too", priority="P1", due_on=date(2026, 11, 25))  # T6
    assert await claim_all(world) == ["T5", "T3", "T6", "T2", "T4", "T1"]


async def test_claim_skips_tasks_with_unfinished_dependencies(world: Store) -> None:
    await add(world, "Research leads", priority="P3")
    blocked = await add(world, "Write emails", priority="P0", depends_on=["T1"])
    assert blocked.depends_on == ["T1"] and blocked.blocked_by == ["T1"]
    first = await claim(world)
    assert first is not None and first.id == "T1"
    assert await claim(world) is None
    await complete(world, "T1")
    second = await claim(world)
    assert second is not None and second.id == "T2" and second.blocked_by == []


async def test_a_failed_dependency_keeps_blocking(world: Store) -> None:
    await add(world, "Research leads")
    await add(world, "Write emails", depends_on=["T1"])
    await claim(world)
    await complete(world, "T1", result="failure")
    assert await claim(world) is None


async def test_two_concurrent_claims_never_get_the_same_task(world: Store) -> None:
    await add(world, "One")
    await add(world, "Two")
    await add(world, "Three", priority="P3")
    got: list[TaskView | None] = []

    async def claim_once(actor: Actor) -> None:
        async with world.write() as tx:
            got.append(await inbox.claim_next_task(tx, actor))

    async with anyio.create_task_group() as group:
        for actor in (SDR, RESEARCHER, SDR, RESEARCHER):
            group.start_soon(claim_once, actor)
    claimed = sorted(task.id for task in got if task is not None)
    assert claimed == ["T1", "T2", "T3"]
    assert got.count(None) == 1


async def test_role_filter_takes_that_roles_tasks_and_tasks_for_no_role(world: Store) -> None:
    await add(world, "Research", role="Researcher", priority="P0")
    await add(world, "Anyone", priority="P1")
    await add(world, "Call", role="SDR", priority="P2")
    await add(world, "Content work", agency="Content", priority="P0")
    assert await claim_all(world, agency="Outbound", role="SDR") == ["T2", "T3"]
    assert await claim_all(world, agency="A2") == ["T4"]


async def test_claim_validates_its_filters_and_lease(world: Store) -> None:
    await add(world, "One")
    await refused(
        world, InvalidInput, "role: a role belongs to an agency", lambda tx: inbox.claim_next_task(tx, SDR, role="SDR")
    )
    await refused(world, NotFound, "no agency 'Sales'", lambda tx: inbox.claim_next_task(tx, SDR, agency="Sales"))
    for minutes in (0, 1441, True):
        await refused(
            world, InvalidInput, "lease_minutes", partial(inbox.claim_next_task, actor=SDR, lease_minutes=minutes)
        )


# --- leases --------------------------------------------------------------------------------------------


async def test_an_expired_lease_is_reclaimed_and_the_previous_owner_audited(world: Store, clock: FixedClock) -> None:
    await add(world, "One")
    first = await claim(world, SDR, lease_minutes=30)
    assert first is not None and first.lease_owner == "outbound-sdr"
    assert first.lease_expires_at == "2026-11-23T08:30:00.000000Z"
    clock.advance(timedelta(minutes=29))
    assert await claim(world, RESEARCHER) is None
    clock.advance(timedelta(minutes=1))
    again = await claim(world, RESEARCHER)
    assert again is not None and again.id == "T1" and again.lease_owner == "outbound-researcher"
    claims = await audit_rows(world, "task.claim")
    assert "reclaimed_from" not in claims[0]["detail"]
    assert claims[1]["detail"]["reclaimed_from"] == "outbound-sdr"
    assert claims[1]["actor"] == "outbound-researcher"


async def test_renewing_a_lease_keeps_the_task_from_others(world: Store, clock: FixedClock) -> None:
    await add(world, "One")
    await claim(world, SDR, lease_minutes=30)
    clock.advance(timedelta(minutes=20))
    async with world.write() as tx:
        view = await inbox.update_task(tx, SDR, "T1", renew_lease_minutes=60)
    assert view.lease_expires_at == "2026-11-23T09:20:00.000000Z"
    clock.advance(timedelta(minutes=30))
    assert await claim(world, RESEARCHER) is None


async def test_unclaiming_reopens_the_task_without_a_lease(world: Store) -> None:
    await add(world, "One")
    await claim(world, SDR)
    async with world.write() as tx:
        view = await inbox.update_task(tx, SDR, "T1", status="open")
    assert (view.status, view.lease_owner, view.lease_expires_at) == ("open", None, None)
    again = await claim(world, RESEARCHER)
    assert again is not None and again.id == "T1"
    assert "reclaimed_from" not in (await audit_rows(world, "task.claim"))[-1]["detail"]


# --- adding --------------------------------------------------------------------------------------------


async def test_a_key_result_implies_its_goal_and_agency(world: Store) -> None:
    task = await add(world, "Book a meeting", agency=None, key_result="KR2", role=None)
    assert (task.agency, task.goal, task.key_result, task.source) == ("Content", "G2", "KR2", "agency")
    with_role = await add(world, "Call", agency=None, goal="G1", role="SDR", due_on="2026-11-30")
    assert (with_role.agency, with_role.role, with_role.due_on) == ("Outbound", "SDR", date(2026, 11, 30))
    detail = (await audit_rows(world, "task.add"))[-1]["detail"]
    assert detail == {
        "title": "Call",
        "priority": "P2",
        "source": "agency",
        "agency": "Outbound",
        "role": "SDR",
        "goal": "G1",
        "due_on": "2026-11-30",
    }


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"title": "  "}, InvalidInput, "title: must not be empty"),
        ({"title": "x" * 201}, InvalidInput, "title: 201 characters"),
        ({"details": "x" * 4001}, InvalidInput, "details: 4001 characters"),
        ({"priority": "urgent"}, InvalidInput, "priority: 'urgent'"),
        ({"due_on": "next week"}, InvalidInput, "due_on: send a date as YYYY-MM-DD"),
        ({"due_on": "9999-12-31"}, InvalidInput, "due_on: 9999-12-31 is out of range; send a date from 1900-01-01"),
        ({"source": "robot"}, InvalidInput, "source: 'robot'"),
        ({"depends_on": ["T1"] * 21}, InvalidInput, "depends_on: send a list of at most 20"),
        ({"depends_on": ["T1", "T9"]}, NotFound, "depends_on: there is no task T9"),
        ({"depends_on": ["G1"]}, InvalidInput, "depends_on: 'G1' is not a task id"),
        ({"depends_on": ["T2"]}, InvalidInput, "depends_on: T2 is cancelled and will never be done"),
        ({"agency": "Old"}, Conflict, "agency: Old is retired"),
        ({"agency": None, "role": "SDR"}, InvalidInput, "role: a role belongs to an agency"),
        ({"role": "Closer"}, NotFound, "has no role 'Closer'"),
        ({"goal": "G2"}, InvalidInput, "goal: G2 belongs to agency Content, not Outbound"),
        ({"goal": "G1", "key_result": "KR2"}, InvalidInput, "key_result: KR2 belongs to goal G2, not G1"),
        ({"key_result": "KR9"}, NotFound, "no key result KR9"),
    ],
)
async def test_add_task_refuses_bad_input_and_writes_nothing(
    world: Store, fields: dict[str, Any], error: type[Exception], match: str
) -> None:
    await add(world, "Existing")
    await add(world, "Dropped")
    async with world.write() as tx:
        await inbox.update_task(tx, SDR, "T2", status="cancelled")
        await agencies.create_agency(tx, OPERATOR_CLI, name="Old", purpose="Gone")
        await agencies.update_agency(tx, OPERATOR_CLI, "Old", status="retired")
    arguments = {"title": "New", "agency": "Outbound", **fields}
    await refused(world, error, match, lambda tx: inbox.add_task(tx, SDR, **arguments))


# --- updating ------------------------------------------------------------------------------------------


async def test_update_audits_only_the_fields_that_changed(world: Store) -> None:
    await add(world, "One", priority="P1")
    async with world.write() as tx:
        view = await inbox.update_task(
            tx, SDR, "T1", status="blocked", priority="P1", note="Needs a price list", due_on="2026-11-27"
        )
    assert (view.status, view.note, view.due_on) == ("blocked", "Needs a price list", date(2026, 11, 27))
    assert (await audit_rows(world, "task.update"))[-1]["detail"] == {
        "status": "blocked",
        "note": "Needs a price list",
        "due_on": "2026-11-27",
    }
    async with world.write() as tx:
        await inbox.update_task(tx, SDR, "T1", priority="P1")
    assert len(await audit_rows(world, "task.update")) == 1


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"status": "done"}, InvalidInput, "only through complete_task"),
        ({"status": "failed"}, InvalidInput, "only through complete_task"),
        ({"status": "claimed"}, InvalidInput, "claim_next_task"),
        ({"status": "paused"}, InvalidInput, "status: 'paused' is not a status you can set"),
        ({"note": "x" * 2001}, InvalidInput, "note: 2001 characters"),
        ({"title": ""}, InvalidInput, "title: must not be empty"),
        ({"renew_lease_minutes": 30}, Conflict, "T1 is open, not claimed"),
        ({"renew_lease_minutes": 0}, InvalidInput, "renew_lease_minutes"),
        ({}, InvalidInput, "Nothing to change"),
    ],
)
async def test_update_task_refuses_bad_changes_and_writes_nothing(
    world: Store, fields: dict[str, Any], error: type[Exception], match: str
) -> None:
    await add(world, "One")
    await refused(world, error, match, lambda tx: inbox.update_task(tx, SDR, "T1", **fields))


async def test_closed_tasks_cannot_change(world: Store) -> None:
    await add(world, "One")
    await add(world, "Two")
    async with world.write() as tx:
        await inbox.update_task(tx, SDR, "T2", status="cancelled")
    await complete(world, "T1")
    for task in ("T1", "T2"):
        await refused(
            world,
            Conflict,
            "closed tasks do not change",
            partial(inbox.update_task, actor=SDR, task=task, status="open"),
        )
    await refused(world, NotFound, "there is no task T7", lambda tx: inbox.update_task(tx, SDR, "T7", note="x"))


# --- completing ----------------------------------------------------------------------------------------


async def test_completing_a_task_logs_the_outcome_and_moves_the_goal(world: Store) -> None:
    await add(world, "Book meetings", key_result="KR1", role="SDR")
    await claim(world)
    async with world.write() as tx:
        task, outcome = await inbox.complete_task(
            tx,
            SDR,
            "T1",
            result="partial",
            summary="Booked 3 of 5",
            cost_cents=250,
            minutes_saved=40,
            metrics=[MetricDelta(key_result="KR1", delta=3)],
            evidence=["https://crm.example/deal/1"],
        )
    assert (task.status, task.outcome, task.lease_owner, task.lease_expires_at) == ("done", "O1", None, None)
    assert (outcome.task_id, outcome.agency, outcome.role, outcome.result) == ("T1", "Outbound", "SDR", "partial")
    async with world.read() as tx:
        kr = (await goals.list_goals(tx, agency="Outbound"))[0].key_results[0]
        closed_at = await tx.scalar("SELECT closed_at FROM tasks WHERE id = 1")
    assert (kr.current, kr.progress) == (3, 0.3)
    assert closed_at == "2026-11-23T08:00:00.000000Z"
    assert [r["action"] for r in (await audit_rows(world))[-2:]] == ["outcome.log", "task.complete"]
    assert (await audit_rows(world, "task.complete"))[0]["detail"] == {
        "status": "done",
        "result": "partial",
        "outcome": "O1",
    }


async def test_a_failure_result_fails_the_task(world: Store) -> None:
    await add(world, "Send sequence")
    assert (await complete(world, "T1", result="failure")).status == "failed"


async def test_complete_task_refuses_and_writes_nothing(world: Store) -> None:
    await add(world, "Done already")
    await complete(world, "T1")
    await add(world, "No agency", agency=None)
    await add(world, "Waits", depends_on=["T2"])
    await add(world, "Open")

    def completing(task: str, **fields: Any) -> Callable[[Tx], Awaitable[Any]]:
        arguments = {"result": "success", "summary": "Did it", **fields}
        return lambda tx: inbox.complete_task(tx, SDR, task, **arguments)

    await refused(world, Conflict, "T1 is done, and closed tasks do not change", completing("T1"))
    await refused(world, InvalidInput, "T2 belongs to no agency", completing("T2"))
    await refused(world, Conflict, "T3 depends on tasks that are not done yet \\(T2\\)", completing("T3"))
    await refused(world, InvalidInput, "result: 'great'", completing("T4", result="great"))
    await refused(
        world,
        InvalidInput,
        "belongs to another agency",
        completing("T4", metrics=[MetricDelta(key_result="KR2", delta=1)]),
    )
    await refused(world, InvalidInput, "summary", completing("T4", summary=" "))
    async with world.read() as tx:
        assert await tx.scalar("SELECT count(*) FROM outcomes") == 1
        assert await tx.scalar("SELECT status FROM tasks WHERE id = 4") == "open"


# --- listing and the summary ---------------------------------------------------------------------------


async def test_list_tasks_shows_unfinished_in_claim_order_and_closed_newest_first(
    world: Store, clock: FixedClock
) -> None:
    for title, priority in (("A", "P2"), ("B", "P1"), ("C", "P3"), ("D", "P0"), ("E", "P2")):
        await add(world, title, priority=priority)
    await add(world, "Content", agency="Content", priority="P0")
    async with world.write() as tx:
        await inbox.update_task(tx, SDR, "T3", status="blocked")
    await complete(world, "T1")
    clock.advance(timedelta(minutes=5))
    await complete(world, "T5", result="failure")
    clock.advance(timedelta(minutes=5))
    await complete(world, "T2")
    async with world.read() as tx:
        unfinished = [t.id for t in await inbox.list_tasks(tx, agency="Outbound")]
        done = [t.id for t in await inbox.list_tasks(tx, status="done")]
        blocked = [t.id for t in await inbox.list_tasks(tx, status="blocked")]
        first = [t.id for t in await inbox.list_tasks(tx, limit=1)]
    assert unfinished == ["T4", "T3"]
    assert (done, blocked, first) == (["T2", "T1"], ["T3"], ["T4"])


async def test_list_tasks_refuses_bad_filters(world: Store) -> None:
    for arguments, match in (
        ({"status": "closed"}, "status: 'closed' is not a task status"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
    ):
        with pytest.raises(InvalidInput, match=match):
            async with world.read() as tx:
                await inbox.list_tasks(tx, **arguments)


async def test_summary_counts_by_status_overdue_and_local_today(world: Store, clock: FixedClock) -> None:
    await add(world, "Late", due_on="2026-11-22", priority="P3")
    await add(world, "Blocked")
    await add(world, "Waiting")
    await add(world, "Done")
    await add(world, "Failed")
    await add(world, "Ready", priority="P1", depends_on=["T4"])
    async with world.write() as tx:
        await inbox.update_task(tx, SDR, "T2", status="blocked")
        await deciding.request_decision(
            tx, SDR, agency="Outbound", role=None, kind="question", title="Which list?", task="T3"
        )
    clock.set(datetime(2026, 11, 23, 22, 30, tzinfo=UTC))  # 23:30 Monday in Berlin
    await complete(world, "T4")
    await complete(world, "T5", result="failure")
    await claim(world)
    async with world.read() as tx:
        monday = await inbox.inbox_summary(tx)
    assert (monday.open, monday.claimed, monday.blocked, monday.waiting, monday.overdue) == (1, 1, 1, 1, 1)
    assert (monday.done_today, monday.failed_today) == (1, 1)
    assert [t.id for t in monday.next_up] == ["T1"]
    clock.advance(timedelta(hours=1))  # Tuesday 00:30 in Berlin
    async with world.read() as tx:
        tuesday = await inbox.inbox_summary(tx)
    assert (tuesday.done_today, tuesday.failed_today) == (0, 0)


# --- routines ------------------------------------------------------------------------------------------


async def add_routine(store: Store, schedule: str, **fields: Any) -> routines.RoutineView:
    async with store.write() as tx:
        return await routines.add_routine(
            tx, OPERATOR_CLI, agency="Outbound", title="Research 20 leads", schedule=schedule, **fields
        )


async def routine_days(store: Store) -> list[str]:
    async with store.read() as tx:
        return [r[0] for r in await tx.all("SELECT routine_on FROM tasks WHERE routine_id IS NOT NULL ORDER BY id")]


async def test_weekday_routine_makes_one_task_per_berlin_weekday(world: Store, clock: FixedClock) -> None:
    routine = await add_routine(world, "weekdays", role="Researcher", priority="P1", key_result="KR1")
    assert (routine.id, routine.schedule, routine.active, routine.last_run_on) == ("RT1", "weekdays", True, None)
    for _ in range(7):  # Monday 23 to Sunday 29 November
        for _ in range(2):
            async with world.write() as tx:
                await routines.materialize_routines(tx, SDR)
        clock.advance(timedelta(days=1))
    assert await routine_days(world) == ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27"]
    task = await claim(world)
    assert task is not None and (task.source, task.role, task.key_result, task.due_on) == (
        "routine",
        "Researcher",
        "KR1",
        date(2026, 11, 23),
    )
    assert (await audit_rows(world, "task.add"))[0]["detail"]["routine"] == "RT1"


async def test_late_sunday_utc_is_monday_in_berlin(world: Store, clock: FixedClock) -> None:
    clock.set(datetime(2026, 11, 29, 22, 30, tzinfo=UTC))  # Sunday 23:30 in Berlin
    await add_routine(world, "weekly:mon")
    assert await claim(world) is None
    clock.set(datetime(2026, 11, 29, 23, 30, tzinfo=UTC))  # still Sunday in UTC, Monday 00:30 in Berlin
    task = await claim(world)
    assert task is not None and task.due_on == date(2026, 11, 30)
    assert await routine_days(world) == ["2026-11-30"]


async def test_missed_days_are_not_backfilled(world: Store, clock: FixedClock) -> None:
    await add_routine(world, "daily")
    await claim(world)
    clock.advance(timedelta(days=3))
    await claim(world)
    assert await routine_days(world) == ["2026-11-23", "2026-11-26"]


async def test_claim_makes_todays_routine_task_once(world: Store) -> None:
    await add_routine(world, "weekly:thu,MON")
    first = await claim(world)
    assert first is not None and first.title == "Research 20 leads"
    assert await claim(world) is None
    assert len(await audit_rows(world, "task.add")) == 1


async def test_monthly_routine_runs_on_its_day_of_the_month(world: Store, clock: FixedClock) -> None:
    await add_routine(world, "monthly:1")
    for _ in range(10):
        await claim(world)
        clock.advance(timedelta(days=1))
    assert await routine_days(world) == ["2026-12-01"]


@pytest.mark.parametrize(
    ("schedule", "normal"),
    [
        ("Daily", "daily"),
        (" weekdays ", "weekdays"),
        ("weekly: Thu, mon, thu", "weekly:mon,thu"),
        ("MONTHLY:07", "monthly:7"),
    ],
)
async def test_schedules_are_stored_in_normal_form(world: Store, schedule: str, normal: str) -> None:
    assert (await add_routine(world, schedule)).schedule == normal


@pytest.mark.parametrize(
    ("schedule", "match"),
    [
        ("hourly", "'hourly' is not a schedule"),
        ("weekly:", "is not a schedule"),
        ("weekly:monday", "'monday' is not a day name"),
        ("monthly:29", "day from 1 to 28"),
        ("monthly:0", "day from 1 to 28"),
        ("monthly:last", "is not a schedule"),
    ],
)
async def test_bad_schedules_are_refused_and_nothing_written(world: Store, schedule: str, match: str) -> None:
    await refused(
        world,
        InvalidInput,
        match,
        lambda tx: routines.add_routine(tx, OPERATOR_CLI, agency="Outbound", title="Research", schedule=schedule),
    )


async def test_routines_of_a_retired_agency_make_no_tasks(world: Store) -> None:
    await add_routine(world, "daily")
    async with world.write() as tx:
        await agencies.update_agency(tx, OPERATOR_CLI, "Outbound", status="retired")
        assert await routines.materialize_routines(tx, SDR) == 0


# --- query plans ---------------------------------------------------------------------------------------


def _bad_plan_lines(plan: list[str]) -> list[str]:
    """Lines that read every task (a table scan, or a scan of an index over all tasks)."""
    return [
        line
        for line in plan
        if re.match(r"SCAN (t|tasks)\b", line) and not re.search(r"USING INDEX (tasks_ready|tasks_closed)", line)
    ]


async def test_claim_list_and_summary_read_indexes_not_the_task_table(world: Store) -> None:
    await add(world, "Open", priority="P1")
    async with world.write() as tx:
        await tx.run_many(
            "INSERT INTO tasks (title, priority, status, source, agency_id, created_at, updated_at, closed_at) "
            "VALUES ('old', ?, 'done', 'agency', 1, ?, ?, ?)",
            [(n % 4, tx.now_text, tx.now_text, tx.now_text) for n in range(3000)],
        )
    statements: list[str] = []
    async with world.write() as tx:
        tx.trace(statements.append)
        await inbox.claim_next_task(tx, SDR, agency="Outbound", role="SDR")
        await inbox.list_tasks(tx)
        await inbox.list_tasks(tx, status="done", agency="Outbound")
        await inbox.inbox_summary(tx)
        tx.trace(None)
        plans = {
            sql: [row["detail"] for row in await tx.all("EXPLAIN QUERY PLAN " + sql)]
            for sql in statements
            if "tasks" in sql
        }
    claim_plans = [plan for sql, plan in plans.items() if sql.startswith("WITH pick")]
    assert len(claim_plans) == 1 and any("USING INDEX tasks_ready" in line for line in claim_plans[0])
    assert {sql: _bad_plan_lines(plan) for sql, plan in plans.items() if _bad_plan_lines(plan)} == {}


async def test_a_task_waits_on_the_operator_only_through_a_decision(world: Store) -> None:
    await add(world, "Needs a yes")
    async with world.write() as tx:
        with pytest.raises(InvalidInput, match="request_decision"):
            await inbox.update_task(tx, SDR, "T1", status="waiting")
        asked = await deciding.request_decision(
            tx, SDR, agency="Outbound", role=None, kind="question", title="Which list?", task="T1"
        )
    async with world.read() as tx:
        parked = await inbox.get_task(tx, "T1")
    assert (parked.status, parked.waiting_on) == ("waiting", asked.id)
