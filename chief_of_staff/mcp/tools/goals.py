"""Goals: reading them is anyone's; setting and changing them is an operator act.

Wiring only: each handler opens one unit of work and calls the domain; the input model
validates the arguments. Operator acts take `confirm`; see chief_of_staff.domain.trust.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from chief_of_staff.core.db import Store
from chief_of_staff.core.fields import Model, NameOrId, Text, Title, View
from chief_of_staff.domain import goals
from chief_of_staff.domain.review.adjustments import (
    AdjustGoalArgs,
)
from chief_of_staff.mcp.caller import Caller
from chief_of_staff.mcp.subscriptions import BRIEF, GOALS
from chief_of_staff.mcp.toolkit import CONFIRM, ToolSpec

_GOALS = (BRIEF, GOALS)


class GoalsIn(Model):
    agency: NameOrId | None = None
    include_closed: bool = Field(False, description="Also achieved and dropped ones")


class GoalList(View):
    goals: list[goals.GoalView]


async def _list_goals(store: Store, caller: Caller, args: GoalsIn) -> GoalList:
    async with store.read() as tx:
        return GoalList(goals=await goals.list_goals(tx, agency=args.agency, include_closed=args.include_closed))


class CreateGoalIn(Model):
    agency: NameOrId
    title: Title
    description: Text = Field("", description="Why it matters")
    key_results: list[goals.KeyResultSpec] = Field(..., min_length=1, max_length=10, description="1 to 10")
    confirm: bool = CONFIRM


async def _create_goal(store: Store, caller: Caller, args: CreateGoalIn) -> goals.GoalView:
    async with store.write() as tx:
        return await goals.create_goal(
            tx,
            caller.actor,
            agency=args.agency,
            title=args.title,
            description=args.description,
            key_results=args.key_results,
        )


class AdjustGoalIn(AdjustGoalArgs):
    confirm: bool = CONFIRM


async def _adjust_goal(store: Store, caller: Caller, args: AdjustGoalIn) -> goals.GoalView:
    async with store.write() as tx:
        return await goals.adjust_goal(
            tx,
            caller.actor,
            args.goal_id,
            title=args.title,
            description=args.description,
            status=args.status,
            key_results=args.key_results,
        )


TOOLS: list[ToolSpec[Any, Any]] = [
    ToolSpec(
        "list_goals",
        "List goals",
        "Goals with key results, progress and pace (computed from outcomes).",
        GoalsIn,
        GoalList,
        _list_goals,
        read_only=True,
        idempotent=True,
    ),
    ToolSpec(
        "create_goal",
        "Create goal",
        "Operator act. A goal of an agency with key results (metric, unit, baseline, target, direction "
        "up/down, due date). Progress is computed from logged outcomes, never typed in.",
        CreateGoalIn,
        goals.GoalView,
        _create_goal,
        operator_act=True,
        changes=_GOALS,
    ),
    ToolSpec(
        "adjust_goal",
        "Adjust goal",
        "Operator act. Retitle, close (achieved/dropped), change a key result's target or due date, "
        "or add a key result.",
        AdjustGoalIn,
        goals.GoalView,
        _adjust_goal,
        destructive=True,
        operator_act=True,
        changes=_GOALS,
    ),
]
