"""The inbox: tasks and routines, claimed with a lease and completed with an outcome.

Wiring only: each handler opens one unit of work and calls the domain; the input model
validates the arguments. Operator acts take `confirm`; see chief_of_staff.domain.trust.
"""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import Field

from chief_of_staff.core.db import Store, Tx
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.core.fields import (
    Details,
    GoalRef,
    LocalDate,
    Model,
    Name,
    NameOrId,
    Note,
    TaskPriority,
    Title,
    View,
)
from chief_of_staff.domain import goals, inbox, outcomes, routines, task_fields
from chief_of_staff.mcp.caller import Caller, RoutineRef, TaskRef
from chief_of_staff.mcp.subscriptions import BRIEF, GOALS, INBOX
from chief_of_staff.mcp.toolkit import CONFIRM, ToolSpec
from chief_of_staff.mcp.tools.outcomes import OutcomeFields

_TASKS = (BRIEF, INBOX)
_OUTCOMES = (BRIEF, GOALS, INBOX)


class AddTaskIn(Model):
    title: Title
    details: Details = ""
    agency: NameOrId | None = None
    role: NameOrId | None = None
    goal_id: GoalRef | None = None
    key_result_id: goals.KeyResultRef | None = None
    priority: TaskPriority = "P2"
    due_on: LocalDate | None = None
    depends_on: list[TaskRef] = Field(default_factory=list, max_length=20, description="Tasks done first")


async def _add_task(store: Store, caller: Caller, args: AddTaskIn) -> inbox.TaskView:
    async with store.write() as tx:
        return await inbox.add_task(
            tx,
            caller.actor,
            title=args.title,
            details=args.details,
            agency=args.agency,
            role=args.role,
            goal=args.goal_id,
            key_result=args.key_result_id,
            priority=args.priority,
            due_on=args.due_on,
            depends_on=args.depends_on,
            source="agency",
        )


class ClaimIn(Model):
    agency: NameOrId | None = None
    role: NameOrId | None = None
    lease_minutes: int = Field(60, ge=1, le=1440, description="Yours this long")


class ClaimOut(View):
    task: inbox.TaskView | None
    message: str


async def _claim_next_task(store: Store, caller: Caller, args: ClaimIn) -> ClaimOut:
    async with store.write() as tx:
        task = await inbox.claim_next_task(
            tx,
            caller.actor,
            agency=args.agency,
            role=args.role,
            lease_minutes=args.lease_minutes,
        )
    if task is None:
        return ClaimOut(task=None, message="Nothing is ready. Hand off to the operator or add tasks.")
    return ClaimOut(task=task, message=f"Claimed {task.id} until {task.lease_expires_at}.")


class UpdateTaskIn(Model):
    task_id: TaskRef
    status: Literal["open", "blocked", "cancelled"] | None = Field(None, description="open: unclaims it")
    priority: TaskPriority | None = None
    due_on: LocalDate | None = None
    note: Note | None = None
    title: Title | None = None
    details: Details | None = None
    renew_lease_minutes: int | None = Field(None, ge=1, le=1440, description="Keep it this long more")
    to_agency: Name | None = Field(None, description="Move it to this agency (operator act)")
    to_role: Name | None = Field(None, description="Move it to this role (operator act); null: any role")
    goal_id: GoalRef | None = Field(None, description="null clears it")
    key_result_id: goals.KeyResultRef | None = Field(None, description="KR id or metric name; null clears it")
    depends_on: list[TaskRef] | None = Field(None, max_length=20, description="Replaces the list; [] clears it")
    confirm: bool = CONFIRM


def _link(args: Model, field: str) -> task_fields.LinkChange:
    """A link as sent: left out keeps it, null clears it (to_agency is never cleared: work has an agency)."""
    value = getattr(args, field)
    if field not in args.model_fields_set or (value is None and field == "to_agency"):
        return task_fields.KEEP
    return cast(str | None, value)


async def _update_task(store: Store, caller: Caller, args: UpdateTaskIn) -> inbox.TaskView:
    async with store.write() as tx:
        return await inbox.update_task(
            tx,
            caller.actor,
            args.task_id,
            status=args.status,
            priority=args.priority,
            due_on=args.due_on,
            note=args.note,
            title=args.title,
            details=args.details,
            renew_lease_minutes=args.renew_lease_minutes,
            agency=_link(args, "to_agency"),
            role=_link(args, "to_role"),
            goal=_link(args, "goal_id"),
            key_result=_link(args, "key_result_id"),
            depends_on=args.depends_on,
        )


class CompleteTaskIn(OutcomeFields):
    task_id: TaskRef


class CompleteOut(View):
    task: inbox.TaskView
    outcome: outcomes.OutcomeView


async def _complete_task(store: Store, caller: Caller, args: CompleteTaskIn) -> CompleteOut:
    async with store.write() as tx:
        task, outcome = await inbox.complete_task(
            tx,
            caller.actor,
            args.task_id,
            result=args.result,
            summary=args.summary,
            metrics=args.metrics,
            cost_cents=args.cost_cents,
            minutes_saved=args.minutes_saved,
            evidence=args.evidence,
            lesson=args.lesson,
            idempotency_key=args.idempotency_key,
        )
    return CompleteOut(task=task, outcome=outcome)


class ListTasksIn(Model):
    status: Literal["unfinished", "open", "claimed", "blocked", "waiting", "done", "failed", "cancelled"] = Field(
        "unfinished", description="Which ones"
    )
    agency: NameOrId | None = None
    limit: int = Field(20, ge=1, le=100, description="At most this many")


class TaskList(View):
    tasks: list[inbox.TaskView]


async def _list_tasks(store: Store, caller: Caller, args: ListTasksIn) -> TaskList:
    async with store.read() as tx:
        return TaskList(tasks=await inbox.list_tasks(tx, status=args.status, agency=args.agency, limit=args.limit))


class RoutinesIn(Model):
    action: Literal["list", "add", "edit", "pause", "resume"] = Field("list", description="What to do")
    routine_id: RoutineRef | None = Field(None, description="edit, pause, resume: which routine")
    agency: NameOrId | None = Field(None, description="list: filter; add: owner; edit: move it (operator act)")
    role: NameOrId | None = Field(None, description="add: for this role; edit: move it (operator act), null: any")
    title: Title | None = None
    details: Details | None = None
    priority: TaskPriority | None = None
    schedule: str | None = Field(None, max_length=60, description=routines.SCHEDULE_FORMS)
    goal_id: GoalRef | None = Field(None, description="edit: null clears it")
    key_result_id: goals.KeyResultRef | None = Field(None, description="KR id or metric name; edit: null clears it")
    confirm: bool = CONFIRM


class RoutinesOut(View):
    routines: list[routines.RoutineView]


async def _routines(store: Store, caller: Caller, args: RoutinesIn) -> RoutinesOut:
    if args.action == "list":
        async with store.read() as tx:
            return RoutinesOut(routines=await routines.list_routines(tx, agency=args.agency))
    async with store.write() as tx:
        if args.action == "add":
            return RoutinesOut(routines=[await _add_routine(tx, caller, args)])
        if args.routine_id is None:
            raise InvalidInput(f'routine_id: {args.action} needs the routine, e.g. "RT2"; action list shows them.')
        if args.action == "edit":
            return RoutinesOut(routines=[await _edit_routine(tx, caller, args, args.routine_id)])
        view = await routines.set_active(tx, caller.actor, args.routine_id, active=args.action == "resume")
        return RoutinesOut(routines=[view])


async def _add_routine(tx: Tx, caller: Caller, args: RoutinesIn) -> routines.RoutineView:
    if args.agency is None or args.title is None or args.schedule is None:
        raise InvalidInput('add: send agency, title and schedule, e.g. schedule "weekdays".')
    return await routines.add_routine(
        tx,
        caller.actor,
        agency=args.agency,
        role=args.role,
        title=args.title,
        details=args.details or "",
        priority=args.priority or "P2",
        schedule=args.schedule,
        goal=args.goal_id,
        key_result=args.key_result_id,
    )


async def _edit_routine(tx: Tx, caller: Caller, args: RoutinesIn, routine: str) -> routines.RoutineView:
    # An agency token's agency and role are filled in whatever it sends, and it never moves work (an
    # operator act), so for it they are no move at all.
    moves = not caller.is_agency_token
    return await routines.edit_routine(
        tx,
        caller.actor,
        routine,
        title=args.title,
        details=args.details,
        priority=args.priority,
        schedule=args.schedule,
        agency=_link(args, "agency") if moves and args.agency is not None else task_fields.KEEP,
        role=_link(args, "role") if moves else task_fields.KEEP,
        goal=_link(args, "goal_id"),
        key_result=_link(args, "key_result_id"),
    )


TOOLS: list[ToolSpec[Any, Any]] = [
    ToolSpec(
        "add_task",
        "Add task",
        "Add a task to the inbox. Priority P0 (drop everything) to P3 (someday).",
        AddTaskIn,
        inbox.TaskView,
        _add_task,
        changes=_TASKS,
    ),
    ToolSpec(
        "claim_next_task",
        "Claim next task",
        "Claim the most urgent ready task (priority, then due date) with a lease. Ready: open or lease "
        "expired, dependencies done.",
        ClaimIn,
        ClaimOut,
        _claim_next_task,
        changes=_TASKS,
    ),
    ToolSpec(
        "update_task",
        "Update task",
        "Reopen, block, cancel, re-prioritise, note or renew a task's lease; change its goal, key result or "
        "dependencies. Moving it to another agency or role is an operator act.",
        UpdateTaskIn,
        inbox.TaskView,
        _update_task,
        destructive=True,
        changes=_TASKS,
    ),
    ToolSpec(
        "complete_task",
        "Complete task",
        "Finish a task and log its outcome: success or partial closes it done, failure closes it failed.",
        CompleteTaskIn,
        CompleteOut,
        _complete_task,
        changes=_OUTCOMES,
    ),
    ToolSpec(
        "list_tasks",
        "List tasks",
        "Tasks by status (default: unfinished, in claim order).",
        ListTasksIn,
        TaskList,
        _list_tasks,
        read_only=True,
        idempotent=True,
    ),
    ToolSpec(
        "routines",
        "Routines",
        "Recurring tasks: the server adds one task on each scheduled day (workspace timezone). Actions: list; "
        "add; edit (fields left out stay); pause; resume.",
        RoutinesIn,
        RoutinesOut,
        _routines,
        changes=_TASKS,
        acts=lambda args: args.action != "list",
    ),
]
