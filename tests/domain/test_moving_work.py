"""Moving work already in the queue: a task's or a routine's goal, key result, role, agency and dependencies."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput, OperatorActRefused
from chief_of_staff.domain import agencies, goals, inbox, routines
from chief_of_staff.domain.goals import KeyResultSpec
from chief_of_staff.domain.inbox import TaskView

pytestmark = pytest.mark.anyio

AGENCY = Actor("agency:Outbound", "agency")
CHAT = Actor("operator", "chat")


@pytest.fixture
async def world(store: Store) -> Store:
    """Outbound (A1: SDR R1, Researcher R2; goal G1 with KR1 "meetings" and KR2 "emails sent") and Content (A2:
    Writer R3; goal G2 with KR3 "posts"). Tasks T1..T3 of Outbound's SDR; T3 depends on T2, T2 on T1."""
    async with store.write() as tx:
        for name, metrics in (("Outbound", ["meetings", "emails sent"]), ("Content", ["posts"])):
            await agencies.create_agency(tx, OPERATOR_CLI, name=name, purpose=f"{name} work")
            specs = [
                KeyResultSpec(metric=m, baseline=0, target=10, direction="up", due_date=date(2027, 6, 30))
                for m in metrics
            ]
            await goals.create_goal(tx, OPERATOR_CLI, agency=name, title=f"{name} goal", key_results=specs)
        for agency, role in (("Outbound", "SDR"), ("Outbound", "Researcher"), ("Content", "Writer")):
            await agencies.set_role(tx, OPERATOR_CLI, agency=agency, name=role, charter="Works")
        previous: list[str] = []
        for title in ("Find leads", "Write", "Send"):
            task = await inbox.add_task(tx, AGENCY, title=title, agency="Outbound", role="SDR", depends_on=previous)
            previous = [task.id]
    return store


async def update(store: Store, task: str = "T1", actor: Actor = AGENCY, **changes: Any) -> TaskView:
    async with store.write() as tx:
        return await inbox.update_task(tx, actor, task, **changes)


async def last_audit(store: Store) -> tuple[str, str, dict[str, Any]]:
    async with store.read() as tx:
        row = await tx.one("SELECT action, channel, detail FROM audit_log ORDER BY id DESC LIMIT 1")
    assert row is not None
    return row["action"], row["channel"], json.loads(row["detail"])


async def test_a_key_result_by_name_moves_the_goal_with_it(world: Store) -> None:
    view = await update(world, key_result="emails sent")
    assert (view.goal, view.key_result) == ("G1", "KR2")
    assert await last_audit(world) == ("task.update", "agency", {"goal_id": "G1", "key_result_id": "KR2"})
    cleared = await update(world, key_result=None)
    assert (cleared.goal, cleared.key_result) == ("G1", None)


async def test_moving_a_task_to_another_role_is_an_operator_act(world: Store) -> None:
    async with world.write() as tx:
        with pytest.raises(
            OperatorActRefused, match=r"Moving T1 to another agency or role \(requests that name a task"
        ):
            await inbox.update_task(tx, AGENCY, "T1", role="Researcher")
        with pytest.raises(OperatorActRefused, match="operator decision"):
            await inbox.update_task(tx, AGENCY, "T1", role=None)  # any role may then act on it: a move too
    moved = await update(world, actor=CHAT, role="Researcher")
    assert moved.role == "Researcher"
    assert await last_audit(world) == ("task.update", "chat", {"role_id": "R2"})


async def test_moving_to_another_agency_takes_that_agencys_role_and_goal(world: Store) -> None:
    async with world.write() as tx:
        with pytest.raises(InvalidInput, match=r"role: T1 has R1, which belongs to Outbound; moving it to Content"):
            await inbox.update_task(tx, OPERATOR_CLI, "T1", agency="Content")
    moved = await update(world, actor=OPERATOR_CLI, agency="Content", role="Writer", key_result="posts")
    assert (moved.agency, moved.role, moved.goal, moved.key_result) == ("Content", "Writer", "G2", "KR3")
    async with world.write() as tx:
        with pytest.raises(InvalidInput, match=r"goal_id: T1 has G2, which belongs to Content; moving it to Outbound"):
            await inbox.update_task(tx, OPERATOR_CLI, "T1", agency="Outbound", role="SDR")


async def test_a_goal_of_another_agency_is_a_move_and_needs_the_operator(world: Store) -> None:
    async with world.write() as tx:
        with pytest.raises(InvalidInput, match="role: T1 has R1, which belongs to Outbound"):
            await inbox.update_task(tx, AGENCY, "T1", goal="G2")
        with pytest.raises(OperatorActRefused, match="Moving T1 to another agency or role"):
            await inbox.update_task(tx, AGENCY, "T1", goal="G2", role=None)


async def test_dependencies_are_replaced_and_never_make_a_cycle(world: Store) -> None:
    async with world.write() as tx:
        with pytest.raises(InvalidInput, match=r"depends_on: T3 already waits on T1 \(directly or through other"):
            await inbox.update_task(tx, AGENCY, "T1", depends_on=["T3"])
        with pytest.raises(InvalidInput, match="T2 cannot depend on itself"):
            await inbox.update_task(tx, AGENCY, "T2", depends_on=["T2"])
    freed = await update(world, "T3", depends_on=[])
    assert (freed.depends_on, freed.blocked_by) == ([], [])
    assert await last_audit(world) == ("task.update", "agency", {"depends_on": []})
    turned = await update(world, "T1", depends_on=["T3"])  # T3 no longer waits on anything: no cycle now
    assert turned.blocked_by == ["T3"]


async def test_sending_what_a_task_already_has_changes_nothing(world: Store) -> None:
    before = await last_audit(world)
    view = await update(world, "T2", depends_on=["T1"], role="SDR", agency="Outbound")
    assert view.depends_on == ["T1"]
    assert await last_audit(world) == before


# --- routines ---------------------------------------------------------------------------------------


async def add_routine(store: Store, **fields: Any) -> routines.RoutineView:
    async with store.write() as tx:
        return await routines.add_routine(tx, AGENCY, **{"agency": "Outbound", "title": "Research", **fields})


async def test_routines_are_listed_per_agency_and_by_state(world: Store) -> None:
    await add_routine(world, schedule="weekdays", role="Researcher")
    await add_routine(world, agency="Content", title="Post", schedule="weekly:mon", key_result="posts")
    async with world.write() as tx:
        await routines.set_active(tx, AGENCY, "RT1", active=False)
        every = await routines.list_routines(tx)
        content = await routines.list_routines(tx, agency="Content")
        paused = await routines.list_routines(tx, active=False)
    assert [(r.id, r.agency, r.role, r.active) for r in every] == [
        ("RT1", "Outbound", "Researcher", False),
        ("RT2", "Content", None, True),
    ]
    assert (content[0].goal, content[0].key_result) == ("G2", "KR3")
    assert [r.id for r in paused] == ["RT1"]


async def test_a_routine_is_edited_outside_a_review(world: Store) -> None:
    await add_routine(world, schedule="daily")
    async with world.write() as tx:
        view = await routines.edit_routine(
            tx, AGENCY, "RT1", schedule="Weekly: Thu, Mon", priority="P1", key_result="meetings"
        )
    assert (view.schedule, view.priority, view.goal, view.key_result) == ("weekly:mon,thu", "P1", "G1", "KR1")
    assert await last_audit(world) == (
        "routine.edit",
        "agency",
        {"schedule": "weekly:mon,thu", "priority": "P1", "goal_id": "G1", "key_result_id": "KR1"},
    )


async def test_moving_a_routine_to_another_role_or_agency_is_an_operator_act(world: Store) -> None:
    await add_routine(world, schedule="daily", role="SDR")
    async with world.write() as tx:
        with pytest.raises(OperatorActRefused, match=r"Moving RT1 to another agency or role.*chief-of-staff routine"):
            await routines.edit_routine(tx, AGENCY, "RT1", role="Researcher")
        with pytest.raises(InvalidInput, match="agency: a routine belongs to an agency"):
            await routines.edit_routine(tx, OPERATOR_CLI, "RT1", agency=None)
        moved = await routines.edit_routine(tx, OPERATOR_CLI, "RT1", agency="Content", role="Writer")
    assert (moved.agency, moved.role) == ("Content", "Writer")


async def test_an_edit_with_nothing_to_change_says_what_it_takes(world: Store) -> None:
    await add_routine(world, schedule="daily")
    async with world.write() as tx:
        with pytest.raises(InvalidInput, match="Nothing to change: send title, details, priority, schedule"):
            await routines.edit_routine(tx, AGENCY, "RT1")
        with pytest.raises(InvalidInput, match="schedule: 'fortnightly' is not a schedule"):
            await routines.edit_routine(tx, AGENCY, "RT1", schedule="fortnightly")
