"""MCP tools of the agency's work loop: orient, inbox, authorize/settle/release, outcomes, asking.

Wiring only: each handler validates nothing itself (the input model does), opens one
unit of work and calls the domain. Every tool here is the agency's side of the trust
line: none of them can widen authority.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from chief_of_staff.core.audit import SYSTEM
from chief_of_staff.core.fields import Cents, LocalDate, Model, Name, Priority, ShortText, Text, View
from chief_of_staff.core.ids import parse_id
from chief_of_staff.domain import agencies, brief, decisions, goals, inbox, outcomes, routines
from chief_of_staff.domain.agencies import AgencyView, LessonView
from chief_of_staff.domain.authority import ledger
from chief_of_staff.domain.review.adjustments import AddRoutineArgs
from chief_of_staff.mcp.subscriptions import BRIEF, DECISIONS, GOALS, INBOX
from chief_of_staff.mcp.toolkit import Ref, ToolSpec, agency_actor, require_own, store_of

Summary = Annotated[str, Field(min_length=1, max_length=2000)]
Link = Annotated[str, Field(min_length=1, max_length=500)]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=100)]


# --- orient ---------------------------------------------------------------------------------------


class BriefIn(Model):
    viewer: Name = Field("operator", description='"operator", or "agency:Outbound/SDR" for a role')
    mark_seen: bool = Field(True, description="Move this viewer's 'since you last looked' mark to now")


async def _brief(ctx: Context[Any, Any], args: BriefIn) -> brief.Brief:
    async with store_of(ctx).write() as tx:
        await brief.housekeeping(tx, SYSTEM)  # the server's chores, whoever happens to look
        return await brief.build_brief(tx, args.viewer, mark_seen=args.mark_seen)


class GoalsIn(Model):
    agency: Name | None = None
    include_closed: bool = False


class GoalList(View):
    goals: list[goals.GoalView]


async def _list_goals(ctx: Context[Any, Any], args: GoalsIn) -> GoalList:
    async with store_of(ctx).read() as tx:
        return GoalList(goals=await goals.list_goals(tx, agency=args.agency, include_closed=args.include_closed))


class RosterIn(Model):
    agency: Name | None = Field(None, description="Include this agency's playbook")
    playbook_limit: int = Field(10, ge=1, le=50)


class RosterOut(View):
    agencies: list[AgencyView]
    playbook: list[LessonView]


async def _roster(ctx: Context[Any, Any], args: RosterIn) -> RosterOut:
    async with store_of(ctx).read() as tx:
        view = await agencies.roster(tx)
        lessons = await agencies.playbook(tx, args.agency, limit=args.playbook_limit) if args.agency else []
        return RosterOut(agencies=view.agencies, playbook=lessons)


# --- inbox ----------------------------------------------------------------------------------------


class AddTaskIn(Model):
    title: ShortText
    details: Text = ""
    agency: Name | None = None
    role: Name | None = None
    goal_id: Ref | None = None
    key_result_id: Ref | None = None
    priority: Priority = "P2"
    due_on: LocalDate | None = None
    depends_on: list[Ref] = Field(default_factory=list, max_length=20)


async def _add_task(ctx: Context[Any, Any], args: AddTaskIn) -> inbox.TaskView:
    async with store_of(ctx).write() as tx:
        return await inbox.add_task(
            tx, agency_actor(args.agency, args.role), title=args.title, details=args.details,
            agency=args.agency, role=args.role, goal=args.goal_id, key_result=args.key_result_id,
            priority=args.priority, due_on=args.due_on, depends_on=args.depends_on, source="agency",
        )


class ClaimIn(Model):
    agency: Name | None = None
    role: Name | None = None
    lease_minutes: int = Field(60, ge=1, le=1440)


class ClaimOut(View):
    task: inbox.TaskView | None
    message: str


async def _claim_next_task(ctx: Context[Any, Any], args: ClaimIn) -> ClaimOut:
    async with store_of(ctx).write() as tx:
        task = await inbox.claim_next_task(
            tx, agency_actor(args.agency, args.role), agency=args.agency, role=args.role,
            lease_minutes=args.lease_minutes,
        )
    if task is None:
        return ClaimOut(task=None, message="Nothing is ready. Hand off to the operator or add tasks.")
    return ClaimOut(task=task, message=f"Claimed {task.id} until {task.lease_expires_at}.")


class UpdateTaskIn(Model):
    task_id: Ref
    status: Literal["open", "blocked", "waiting", "cancelled"] | None = None
    priority: Priority | None = None
    due_on: LocalDate | None = None
    note: Text | None = None
    title: ShortText | None = None
    details: Text | None = None
    renew_lease_minutes: int | None = Field(None, ge=1, le=1440)


async def _update_task(ctx: Context[Any, Any], args: UpdateTaskIn) -> inbox.TaskView:
    async with store_of(ctx).write() as tx:
        await require_own(tx, "task", args.task_id, field="task_id")
        return await inbox.update_task(
            tx, agency_actor(), args.task_id, status=args.status, priority=args.priority,
            due_on=args.due_on, note=args.note, title=args.title, details=args.details,
            renew_lease_minutes=args.renew_lease_minutes,
        )


class OutcomeFields(Model):
    summary: Summary
    result: Literal["success", "partial", "failure"]
    metrics: list[outcomes.MetricDelta] = Field(default_factory=list, max_length=10)
    cost_cents: Cents = 0
    minutes_saved: int = Field(0, ge=0, le=100_000)
    evidence: list[Link] = Field(default_factory=list, max_length=10)
    lesson: Text | None = None


class CompleteTaskIn(OutcomeFields):
    task_id: Ref


class CompleteOut(View):
    task: inbox.TaskView
    outcome: outcomes.OutcomeView


async def _complete_task(ctx: Context[Any, Any], args: CompleteTaskIn) -> CompleteOut:
    async with store_of(ctx).write() as tx:
        await require_own(tx, "task", args.task_id, field="task_id")
        task, outcome = await inbox.complete_task(
            tx, agency_actor(), args.task_id, result=args.result, summary=args.summary,
            metrics=args.metrics, cost_cents=args.cost_cents, minutes_saved=args.minutes_saved,
            evidence=args.evidence, lesson=args.lesson,
        )
    return CompleteOut(task=task, outcome=outcome)


class ListTasksIn(Model):
    status: Literal["unfinished", "open", "claimed", "blocked", "waiting", "done", "failed", "cancelled"] = (
        "unfinished"
    )
    agency: Name | None = None
    limit: int = Field(20, ge=1, le=100)


class TaskList(View):
    tasks: list[inbox.TaskView]


async def _list_tasks(ctx: Context[Any, Any], args: ListTasksIn) -> TaskList:
    async with store_of(ctx).read() as tx:
        return TaskList(tasks=await inbox.list_tasks(tx, status=args.status, agency=args.agency, limit=args.limit))


class AddRoutineIn(AddRoutineArgs):
    pass


async def _add_routine(ctx: Context[Any, Any], args: AddRoutineIn) -> routines.RoutineView:
    async with store_of(ctx).write() as tx:
        return await routines.add_routine(
            tx, agency_actor(args.agency, args.role), agency=args.agency, role=args.role, title=args.title,
            details=args.details, priority=args.priority, schedule=args.schedule, goal=args.goal_id,
            key_result=args.key_result_id,
        )


# --- authority, the agency's side ---------------------------------------------------------------


class CheckIn(Model):
    agency: Name
    role: Name | None = None
    capability: ShortText = Field(..., description="Dotted action kind, e.g. email.send")
    amount_cents: Cents = 0
    target: ShortText | None = Field(None, description="Who or what the action touches, e.g. jane@acme.com")
    task_id: Ref | None = None


async def _check(ctx: Context[Any, Any], args: CheckIn) -> ledger.CheckView:
    task_id = parse_id("task", args.task_id, field="task_id") if args.task_id else None
    # A write unit because check runs authorize's own steps and undoes them (see authority.check);
    # a trial one, rolled back whole, so not even the pages those steps touched reach the file.
    async with store_of(ctx).trial() as tx:
        return await ledger.check(
            tx, agency_actor(args.agency, args.role), agency=args.agency, role=args.role,
            capability=args.capability, amount_cents=args.amount_cents, target=args.target, task_id=task_id,
        )


class AuthorizeIn(CheckIn):
    idempotency_key: IdempotencyKey | None = None


async def _authorize(ctx: Context[Any, Any], args: AuthorizeIn) -> ledger.AuthorizationView:
    task_id = parse_id("task", args.task_id, field="task_id") if args.task_id else None
    async with store_of(ctx).write() as tx:
        return await ledger.authorize(
            tx, agency_actor(args.agency, args.role), agency=args.agency, role=args.role,
            capability=args.capability, amount_cents=args.amount_cents, target=args.target,
            task_id=task_id, idempotency_key=args.idempotency_key,
        )


class SettleIn(Model):
    authorization_id: Ref
    actual_cents: Cents


async def _settle(ctx: Context[Any, Any], args: SettleIn) -> ledger.AuthorizationView:
    async with store_of(ctx).write() as tx:
        await require_own(tx, "authorization", args.authorization_id, field="authorization_id")
        return await ledger.settle(tx, agency_actor(), args.authorization_id, actual_cents=args.actual_cents)


class ReleaseIn(Model):
    authorization_id: Ref


async def _release(ctx: Context[Any, Any], args: ReleaseIn) -> ledger.AuthorizationView:
    async with store_of(ctx).write() as tx:
        await require_own(tx, "authorization", args.authorization_id, field="authorization_id")
        return await ledger.release(tx, agency_actor(), args.authorization_id)


# --- outcomes and asking --------------------------------------------------------------------------


class LogOutcomeIn(OutcomeFields):
    agency: Name
    role: Name | None = None
    task_id: Ref | None = None


async def _log_outcome(ctx: Context[Any, Any], args: LogOutcomeIn) -> outcomes.OutcomeView:
    task_id = parse_id("task", args.task_id, field="task_id") if args.task_id else None
    async with store_of(ctx).write() as tx:
        return await outcomes.log_outcome(
            tx, agency_actor(args.agency, args.role), agency=args.agency, role=args.role, task_id=task_id,
            summary=args.summary, result=args.result, metrics=args.metrics, cost_cents=args.cost_cents,
            minutes_saved=args.minutes_saved, evidence=args.evidence, lesson=args.lesson,
        )


class RequestDecisionIn(Model):
    agency: Name
    role: Name | None = None
    kind: Literal["proposal", "question"]
    title: ShortText
    details: Text = ""
    amount_cents: Cents | None = None


async def _request_decision(ctx: Context[Any, Any], args: RequestDecisionIn) -> decisions.DecisionView:
    async with store_of(ctx).write() as tx:
        return await decisions.request_decision(
            tx, agency_actor(args.agency, args.role), agency=args.agency, role=args.role, kind=args.kind,
            title=args.title, details=args.details, amount_cents=args.amount_cents,
        )


# What each kind of act changes, for subscribers (the brief shows a bit of everything).
_TASKS = (BRIEF, INBOX)
_OUTCOMES = (BRIEF, GOALS, INBOX)
_ASKING = (BRIEF, DECISIONS)

WORK_TOOLS: list[ToolSpec[Any, Any]] = [
    ToolSpec("brief", "Brief",
             "Start every session here: changes since this viewer last looked, goal pace, inbox, "
             "authority used, decisions waiting for the operator.",
             BriefIn, brief.Brief, _brief),
    ToolSpec("list_goals", "List goals", "Goals with key results, progress and pace (computed from outcomes).",
             GoalsIn, GoalList, _list_goals, read_only=True, idempotent=True),
    ToolSpec("roster", "Roster",
             "Agencies with their charters, operating specs and roles; with an agency, its playbook of lessons.",
             RosterIn, RosterOut, _roster, read_only=True, idempotent=True),
    ToolSpec("add_task", "Add task", "Add a task to the inbox. Priority P0 (drop everything) to P3 (someday).",
             AddTaskIn, inbox.TaskView, _add_task, changes=_TASKS),
    ToolSpec("claim_next_task", "Claim next task",
             "Claim the most urgent ready task (priority, then due date) with a lease. Ready: open or lease "
             "expired, dependencies done.",
             ClaimIn, ClaimOut, _claim_next_task, changes=_TASKS),
    ToolSpec("update_task", "Update task",
             "Reopen, block, wait on the operator, cancel, re-prioritise, note or renew a task's lease.",
             UpdateTaskIn, inbox.TaskView, _update_task, destructive=True, changes=_TASKS),
    ToolSpec("complete_task", "Complete task",
             "Finish a task and log its outcome: success or partial closes it done, failure closes it failed.",
             CompleteTaskIn, CompleteOut, _complete_task, changes=_OUTCOMES),
    ToolSpec("list_tasks", "List tasks", "Tasks by status (default: unfinished, in claim order).",
             ListTasksIn, TaskList, _list_tasks, read_only=True, idempotent=True),
    ToolSpec("add_routine", "Add routine",
             "A recurring task: the server adds one task on each scheduled day in the workspace timezone.",
             AddRoutineIn, routines.RoutineView, _add_routine, changes=_TASKS),
    ToolSpec("authorize", "Authorize",
             "Ask before acting. Answers allowed (a reservation is held: act, then settle or release), "
             "needs_approval (a decision is opened for the operator) or denied (with the grant and limit hit). "
             "Actions no grant covers are never allowed silently. Amounts are whole cents.",
             AuthorizeIn, ledger.AuthorizationView, _authorize, changes=_ASKING),
    ToolSpec("check", "Check", "Can I? What authorize would answer now; reserves, opens and writes nothing.",
             CheckIn, ledger.CheckView, _check, read_only=True, idempotent=True),
    ToolSpec("settle", "Settle", "After acting: record the actual amount (at most the reserved amount).",
             SettleIn, ledger.AuthorizationView, _settle, idempotent=True, changes=(BRIEF,)),
    ToolSpec("release", "Release", "Nothing happened: return an allowed reservation to the budget.",
             ReleaseIn, ledger.AuthorizationView, _release, idempotent=True, changes=(BRIEF,)),
    ToolSpec("log_outcome", "Log outcome",
             "Record what happened (append-only): result, metric deltas per key result, cost in cents, "
             "minutes saved, evidence, lesson. Goal progress moves with the deltas.",
             LogOutcomeIn, outcomes.OutcomeView, _log_outcome, changes=_OUTCOMES),
    ToolSpec("request_decision", "Request decision",
             "Ask the operator: a proposal (raise a limit, change a goal, add a role) or a question.",
             RequestDecisionIn, decisions.DecisionView, _request_decision, changes=_ASKING),
]
