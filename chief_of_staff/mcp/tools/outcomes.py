"""Outcomes: what happened, appended to the log; goal progress moves with the deltas.

Wiring only: each handler opens one unit of work and calls the domain; the input model
validates the arguments. Operator acts take `confirm`; see chief_of_staff.domain.trust.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from chief_of_staff.core.db import Store
from chief_of_staff.core.fields import Cents, IdempotencyKey, LocalDate, Model, NameOrId, ShortText, Text
from chief_of_staff.core.ids import parse_id
from chief_of_staff.domain import goals, outcomes
from chief_of_staff.mcp.caller import Caller, TaskRef
from chief_of_staff.mcp.subscriptions import BRIEF, GOALS, INBOX
from chief_of_staff.mcp.toolkit import Ref, ToolSpec

_OUTCOMES = (BRIEF, GOALS, INBOX)


Summary = Annotated[str, Field(min_length=1, max_length=2000, description="What happened")]


Link = Annotated[str, Field(min_length=1, max_length=500)]


class OutcomeFields(Model):
    summary: Summary
    result: Literal["success", "partial", "failure"] = Field(description="How it went")
    metrics: list[outcomes.MetricDelta] = Field(default_factory=list, max_length=10, description="Key results moved")
    cost_cents: Cents = 0
    minutes_saved: int = Field(0, ge=0, le=100_000, description="The operator's time it saved")
    evidence: list[Link] = Field(default_factory=list, max_length=10, description="Links or short notes")
    lesson: Text | None = Field(None, description="For the playbook")
    idempotency_key: IdempotencyKey | None = None


class LogOutcomeIn(OutcomeFields):
    agency: NameOrId
    role: NameOrId | None = None
    task_id: TaskRef | None = None


async def _log_outcome(store: Store, caller: Caller, args: LogOutcomeIn) -> outcomes.OutcomeView:
    task_id = parse_id("task", args.task_id, field="task_id") if args.task_id else None
    async with store.write() as tx:
        return await outcomes.log_outcome(
            tx,
            caller.actor,
            agency=args.agency,
            role=args.role,
            task_id=task_id,
            summary=args.summary,
            result=args.result,
            metrics=args.metrics,
            cost_cents=args.cost_cents,
            minutes_saved=args.minutes_saved,
            evidence=args.evidence,
            lesson=args.lesson,
            idempotency_key=args.idempotency_key,
        )


class ListOutcomesIn(Model):
    agency: NameOrId | None = None
    role: NameOrId | None = None
    key_result: goals.KeyResultRef | None = None
    result: Literal["success", "partial", "failure"] | None = Field(None, description="Only this result")
    since: LocalDate | None = Field(None, description="First local day")
    until: LocalDate | None = Field(None, description="Last local day")
    text: ShortText | None = Field(None, description="In summary or lesson")
    before: Ref | None = Field(None, description="The last answer's next: the page after it")
    limit: int = Field(20, ge=1, le=100, description="At most this many")


async def _list_outcomes(store: Store, caller: Caller, args: ListOutcomesIn) -> outcomes.OutcomePage:
    async with store.read() as tx:
        return await outcomes.list_outcomes(
            tx,
            agency=args.agency,
            role=args.role,
            key_result=args.key_result,
            result=args.result,
            since=args.since,
            until=args.until,
            text=args.text,
            before=args.before,
            limit=args.limit,
        )


TOOLS: list[ToolSpec[Any, Any]] = [
    ToolSpec(
        "log_outcome",
        "Log outcome",
        "Record what happened (append-only): result, per key result a delta (cumulative) or value (level), "
        "cost in cents, minutes saved, evidence, lesson. Goal progress moves with them.",
        LogOutcomeIn,
        outcomes.OutcomeView,
        _log_outcome,
        changes=_OUTCOMES,
    ),
    ToolSpec(
        "list_outcomes",
        "List outcomes",
        "Search the outcome log, newest first, a page at a time (next: send it as before).",
        ListOutcomesIn,
        outcomes.OutcomePage,
        _list_outcomes,
        read_only=True,
        idempotent=True,
    ),
]
