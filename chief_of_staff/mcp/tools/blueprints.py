"""Blueprints: starter agencies, stood up in one call (an operator act).

Wiring only: each handler opens one unit of work and calls the domain; the input model
validates the arguments. Operator acts take `confirm`; see chief_of_staff.domain.trust.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from chief_of_staff.core.db import Store
from chief_of_staff.core.fields import Name, View
from chief_of_staff.domain.blueprints import loader
from chief_of_staff.mcp.caller import Caller
from chief_of_staff.mcp.subscriptions import EVERYTHING
from chief_of_staff.mcp.toolkit import CONFIRM, NoArguments, ToolSpec


class BlueprintList(View):
    blueprints: list[loader.BlueprintSummary]


async def _list_blueprints(store: Store, caller: Caller, args: NoArguments) -> BlueprintList:
    return BlueprintList(blueprints=loader.list_blueprints())


class ApplyBlueprintIn(loader.Answers):
    name: Name = Field(..., description='A blueprint name from list_blueprints, e.g. "outbound"')
    agency_name: Name | None = Field(None, description="Name the new agency differently")
    dry_run: bool = Field(True, description="Show what would be created without creating it")
    confirm: bool = CONFIRM


async def _apply_blueprint(store: Store, caller: Caller, args: ApplyBlueprintIn) -> loader.BlueprintPlan:
    answers = loader.Answers.model_validate(args.model_dump(include=set(loader.Answers.model_fields)))
    if args.dry_run:
        async with store.read() as tx:
            return await loader.plan_blueprint(tx, args.name, agency_name=args.agency_name, answers=answers)
    async with store.write() as tx:
        return await loader.apply_blueprint(tx, caller.actor, args.name, agency_name=args.agency_name, answers=answers)


TOOLS: list[ToolSpec[Any, Any]] = [
    ToolSpec(
        "list_blueprints",
        "List blueprints",
        "Starter agencies that can be stood up in one call.",
        NoArguments,
        BlueprintList,
        _list_blueprints,
        read_only=True,
        idempotent=True,
    ),
    ToolSpec(
        "apply_blueprint",
        "Apply blueprint",
        "Operator act. Stand up an agency from a blueprint: roles, goals, grants, routines, playbook, with "
        "the operator's own numbers in place of its defaults. The default dry run shows what it would create.",
        ApplyBlueprintIn,
        loader.BlueprintPlan,
        _apply_blueprint,
        operator_act=True,
        asks_operator=lambda args: not args.dry_run,
        changes=EVERYTHING,
    ),
]
