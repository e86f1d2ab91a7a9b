"""MCP tools of the operator's side: goals, roster, grants, decisions, blueprints.

Operator-only acts take `confirm`. Without it the call runs as the agency and the
domain refuses it with a message that tells the model to ask the operator. With
it, the act comes through the chat channel and must stay under the workspace's
chat ceiling; above it, the domain names the terminal command instead.
"""

from __future__ import annotations

from typing import Any, Literal

from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

from chief_of_staff import agencies, authority, blueprints, decisions, goals, grants
from chief_of_staff.errors import InvalidInput, NotFound
from chief_of_staff.models import LongText, Model, Name, ShortText, Text
from chief_of_staff.notifications import AUTHORITY_LETTER, BRIEF, DECISIONS, EVERYTHING, GOALS
from chief_of_staff.toolkit import Ref, ToolSpec, agency_actor, caller, store_of

__all__ = ["OPERATOR_TOOLS"]

CONFIRM = Field(False, description="true only once the operator said yes to this exact change here")


class CreateGoalIn(Model):
    agency: Name
    title: ShortText
    description: Text = ""
    key_results: list[goals.KeyResultSpec] = Field(..., min_length=1, max_length=10)
    confirm: bool = CONFIRM


async def _create_goal(ctx: Context[Any, Any], args: CreateGoalIn) -> goals.GoalView:
    async with store_of(ctx).write() as tx:
        return await goals.create_goal(
            tx, caller(args.confirm), agency=args.agency, title=args.title, description=args.description,
            key_results=args.key_results,
        )


class AdjustGoalIn(Model):
    goal_id: Ref
    title: ShortText | None = None
    description: Text | None = None
    status: Literal["active", "achieved", "dropped"] | None = None
    key_results: list[goals.KeyResultChange] | None = Field(None, max_length=10)
    confirm: bool = CONFIRM


async def _adjust_goal(ctx: Context[Any, Any], args: AdjustGoalIn) -> goals.GoalView:
    async with store_of(ctx).write() as tx:
        return await goals.adjust_goal(
            tx, caller(args.confirm), args.goal_id, title=args.title, description=args.description,
            status=args.status, key_results=args.key_results,
        )


class SetAgencyIn(Model):
    name: Name
    purpose: Text | None = Field(None, description="Required when creating")
    operating_spec: LongText | None = None
    status: Literal["active", "retired"] | None = None
    confirm: bool = CONFIRM


async def _set_agency(ctx: Context[Any, Any], args: SetAgencyIn) -> agencies.AgencyView:
    actor = caller(args.confirm)
    async with store_of(ctx).write() as tx:
        try:
            await agencies.resolve_agency(tx, args.name, field="name")
        except NotFound:
            return await agencies.create_agency(
                tx, actor, name=args.name, purpose=args.purpose or "", operating_spec=args.operating_spec or "",
            )
        return await agencies.update_agency(
            tx, actor, args.name, purpose=args.purpose, operating_spec=args.operating_spec, status=args.status,
        )


class SetRoleIn(Model):
    agency: Name
    name: Name
    charter: Text | None = Field(None, description="Required when creating")
    status: Literal["active", "retired"] | None = None
    confirm: bool = CONFIRM


async def _set_role(ctx: Context[Any, Any], args: SetRoleIn) -> agencies.RoleView:
    async with store_of(ctx).write() as tx:
        return await agencies.set_role(
            tx, caller(args.confirm), agency=args.agency, name=args.name, charter=args.charter, status=args.status,
        )


class GrantIn(authority.GrantSpec):
    confirm: bool = CONFIRM


async def _grant(ctx: Context[Any, Any], args: GrantIn) -> authority.GrantView:
    spec = authority.GrantSpec.model_validate(args.model_dump(exclude={"confirm"}))
    async with store_of(ctx).write() as tx:
        return await authority.create_grant(tx, caller(args.confirm), spec)


class RevokeIn(Model):
    grant_id: Ref
    reason: Text = ""


async def _revoke(ctx: Context[Any, Any], args: RevokeIn) -> authority.GrantView:
    async with store_of(ctx).write() as tx:
        return await authority.revoke_grant(tx, agency_actor(), args.grant_id, reason=args.reason)


class UpdateGrantIn(Model):
    grant_id: Ref
    mode: Literal["auto", "notify", "approve"] | None = None
    per_action_cap_cents: int | None = Field(None, description="null removes the cap")
    budgets: list[authority.BudgetSpec] | None = Field(None, description="Replaces all; kept periods keep usage")
    scope_allow: list[str] | None = None
    scope_deny: list[str] | None = None
    expires_on: str | None = Field(None, description="YYYY-MM-DD; null removes the end date")
    on_timeout: Literal["deny", "approve"] | None = None
    rationale: Text | None = None
    restore_version: int | None = Field(None, description="Instead: bounds as they were at this version")
    confirm: bool = CONFIRM


async def _update_grant(ctx: Context[Any, Any], args: UpdateGrantIn) -> authority.GrantView:
    # Sent as null means "remove" for the cap and the end date; left out means "keep". Narrowing needs
    # nobody's approval, so the operator's prompt (asks_operator) comes only with confirm=true.
    given = {name: getattr(args, name) for name in args.model_fields_set - {"grant_id", "confirm"}}
    async with store_of(ctx).write() as tx:
        if given.keys() == {"restore_version"}:
            return await grants.restore_version(tx, caller(args.confirm), args.grant_id, given["restore_version"])
        if "restore_version" in given:
            raise InvalidInput("restore_version: send it alone, without other bounds, or leave it out.")
        return await grants.update_grant(tx, caller(args.confirm), args.grant_id, **given)


class ListGrantsIn(Model):
    agency: Name | None = None
    include_revoked: bool = False
    letter: bool = Field(False, description="Also return the grants as a delegation-of-authority letter")


class GrantList(BaseModel):
    grants: list[authority.GrantView]
    letter: str | None = None


async def _list_grants(ctx: Context[Any, Any], args: ListGrantsIn) -> GrantList:
    async with store_of(ctx).read() as tx:
        grants = await authority.list_grants(tx, agency=args.agency, include_revoked=args.include_revoked)
        letter = await authority.authority_letter(tx) if args.letter else None
    return GrantList(grants=grants, letter=letter)


class ListDecisionsIn(Model):
    status: Literal["pending", "approved", "denied", "expired", "redeemed", "all"] = "pending"
    limit: int = Field(20, ge=1, le=100)


class DecisionList(BaseModel):
    decisions: list[decisions.DecisionView]


async def _list_decisions(ctx: Context[Any, Any], args: ListDecisionsIn) -> DecisionList:
    async with store_of(ctx).read() as tx:
        return DecisionList(decisions=await decisions.list_decisions(tx, status=args.status, limit=args.limit))


class DecideIn(Model):
    decision_id: Ref
    approve: bool
    note: Text = ""
    confirm: bool = CONFIRM


async def _decide(ctx: Context[Any, Any], args: DecideIn) -> decisions.DecisionView:
    async with store_of(ctx).write() as tx:
        return await decisions.decide(tx, caller(args.confirm), args.decision_id, approve=args.approve, note=args.note)


class NoArguments(Model):
    pass


class BlueprintList(BaseModel):
    blueprints: list[blueprints.BlueprintSummary]


async def _list_blueprints(ctx: Context[Any, Any], args: NoArguments) -> BlueprintList:
    return BlueprintList(blueprints=blueprints.list_blueprints())


class ApplyBlueprintIn(Model):
    name: Name = Field(..., description='A blueprint name from list_blueprints, e.g. "outbound"')
    agency_name: Name | None = Field(None, description="Name the new agency differently")
    dry_run: bool = Field(True, description="Show what would be created without creating it")
    confirm: bool = CONFIRM


async def _apply_blueprint(ctx: Context[Any, Any], args: ApplyBlueprintIn) -> blueprints.BlueprintPlan:
    if args.dry_run:
        async with store_of(ctx).read() as tx:
            return await blueprints.plan_blueprint(tx, args.name, agency_name=args.agency_name)
    async with store_of(ctx).write() as tx:
        return await blueprints.apply_blueprint(tx, caller(args.confirm), args.name, agency_name=args.agency_name)


# What each kind of act changes, for subscribers (the brief shows a bit of everything).
_GOALS = (BRIEF, GOALS)
_GRANTS = (BRIEF, AUTHORITY_LETTER)

OPERATOR_TOOLS: list[ToolSpec[Any, Any]] = [
    ToolSpec("create_goal", "Create goal",
             "Operator act. A goal of an agency with key results (metric, unit, baseline, target, direction "
             "up/down, due date). Progress is computed from logged outcomes, never typed in.",
             CreateGoalIn, goals.GoalView, _create_goal, operator_act=True, changes=_GOALS),
    ToolSpec("adjust_goal", "Adjust goal",
             "Operator act. Retitle, close (achieved/dropped), change a key result's target or due date, "
             "or add a key result.",
             AdjustGoalIn, goals.GoalView, _adjust_goal, destructive=True, operator_act=True,
             changes=_GOALS),
    ToolSpec("set_agency", "Set agency",
             "Operator act. Create an agency (a business function) or change its purpose, operating spec "
             "or status.",
             SetAgencyIn, agencies.AgencyView, _set_agency, destructive=True, idempotent=True, operator_act=True,
             changes=EVERYTHING),
    ToolSpec("set_role", "Set role", "Operator act. Create a role seat in an agency, or change its charter or status.",
             SetRoleIn, agencies.RoleView, _set_role, destructive=True, idempotent=True, operator_act=True,
             changes=EVERYTHING),
    ToolSpec("grant", "Grant authority",
             "Operator act. Let an agency or role perform one capability within bounds: per-action cap, "
             "day/week/month count and amount budgets, target allow/deny globs (deny wins), expiry, mode "
             "auto (act), notify (act and tell) or approve (ask each time).",
             GrantIn, authority.GrantView, _grant, operator_act=True, changes=_GRANTS),
    ToolSpec("revoke", "Revoke grant", "Withdraw a grant at once. Nothing more is allowed under it.",
             RevokeIn, authority.GrantView, _revoke, destructive=True, idempotent=True, changes=_GRANTS),
    ToolSpec("update_grant", "Change grant",
             "Change a grant's bounds; omitted fields stay. Narrowing needs no confirm; widening is an operator "
             "act. restore_version reverts to an earlier version.",
             UpdateGrantIn, authority.GrantView, _update_grant, destructive=True, idempotent=True,
             operator_act=True, asks_operator=lambda args: args.confirm, changes=_GRANTS),
    ToolSpec("list_grants", "List grants",
             "Grants with budgets used in the current period; optionally as a delegation-of-authority letter.",
             ListGrantsIn, GrantList, _list_grants, read_only=True, idempotent=True),
    ToolSpec("list_decisions", "List decisions", "Decisions waiting for the operator (or past ones by status).",
             ListDecisionsIn, DecisionList, _list_decisions, read_only=True, idempotent=True),
    ToolSpec("decide", "Decide",
             "Operator act. Approve or deny a decision, once. An approved escalation is used by the next "
             "matching authorize.",
             DecideIn, decisions.DecisionView, _decide, operator_act=True, changes=(BRIEF, DECISIONS)),
    ToolSpec("list_blueprints", "List blueprints", "Starter agencies that can be stood up in one call.",
             NoArguments, BlueprintList, _list_blueprints, read_only=True, idempotent=True),
    ToolSpec("apply_blueprint", "Apply blueprint",
             "Operator act. Stand up an agency from a blueprint: roles, goals, grants, routines, playbook. "
             "The default dry run shows what it would create.",
             ApplyBlueprintIn, blueprints.BlueprintPlan, _apply_blueprint, operator_act=True,
             asks_operator=lambda args: not args.dry_run, changes=EVERYTHING),
]
